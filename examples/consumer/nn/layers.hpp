// A file of the consumer's own with the name of one of xgrad's headers: xgrad's headers must not
// pick it up (they include each other as "xgrad/..."; the install puts only <prefix>/include on
// the compile line).
#error "a consumer's own nn/layers.hpp was taken for xgrad's"
