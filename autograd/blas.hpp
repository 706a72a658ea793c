#pragma once
/// \file
/// OpenBLAS threads. OpenBLAS uses every core by default, which is slower on small matrices and
/// can change results from run to run; programs and tests set the count they want.

namespace xgrad {

void set_num_threads(int threads);
int num_threads();

}  // namespace xgrad
