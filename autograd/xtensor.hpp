#pragma once
/// \file
/// The one place where xgrad's public headers include xtensor. xtensor 0.26 moved its headers into
/// subfolders (xtensor/containers/xarray.hpp, ...): upgrading is a change to this file alone.
///
/// XTENSOR_USE_XSIMD is deliberately not defined: it changes the type of xt::xarray, and every
/// translation unit that shares a Tensor would have to agree on it. Hot loops are written over
/// contiguous memory instead, and the compiler vectorizes them.

#include <xtensor/xarray.hpp>
#include <xtensor/xio.hpp>  // so that std::cout << t.value<double>() prints
