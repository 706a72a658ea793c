// A file of the consumer's own with the name of one of xgrad's headers (see nn/layers.hpp).
#error "a consumer's own autograd/ops.hpp was taken for xgrad's"
