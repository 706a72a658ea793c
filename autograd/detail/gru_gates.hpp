#pragma once
// The arithmetic of one GRU step's gates over B rows, shared by gru_cell (one step) and
// gru_sequence (every step of a layer). Included by those two op files only.
//   r = sigmoid(xp_r + hp_r),  z = sigmoid(xp_z + hp_z),  n = tanh(xp_n + r hp_n)
//   h' = (1 - z) n + z h
// With g = dL/dh':  da_n = g (1 - z)(1 - n^2),  da_r = da_n hp_n r (1 - r),
//   da_z = g (h - n) z (1 - z);  dxp = [da_r, da_z, da_n],  dhp = [da_r, da_z, da_n r],  dh = g z.

#include <cstddef>

#include "autograd/detail/kernels.hpp"

namespace xgrad::detail {

// next (B, H) from xp, hp (B, 3H) and h (B, H); gates (B, 4H) keeps r, z, n and hp_n per row for
// the backward. exp and tanh run vectorized over each row's gates (float32).
template <class T>
void gru_gates_forward(const T* xp, const T* hp, const T* h, std::size_t B, std::size_t H, T* next,
                       T* gates) {
  for (std::size_t b = 0; b < B; ++b) {
    const T* x = xp + b * 3 * H;
    const T* p = hp + b * 3 * H;
    T* s = gates + b * 4 * H;  // r, z, n, hp_n
    // r and z: 1 / (1 + e^-a), the exponentials of both gates in one vectorized pass
    for (std::size_t j = 0; j < 2 * H; ++j) s[j] = -(x[j] + p[j]);
    exp_in_place(s, 2 * H);
    for (std::size_t j = 0; j < 2 * H; ++j) s[j] = T{1} / (T{1} + s[j]);
    for (std::size_t j = 0; j < H; ++j) {
      s[2 * H + j] = x[2 * H + j] + s[j] * p[2 * H + j];
      s[3 * H + j] = p[2 * H + j];
    }
    tanh_in_place(s + 2 * H, H);
    for (std::size_t j = 0; j < H; ++j) {
      const T z = s[H + j], n = s[2 * H + j];
      next[b * H + j] = n + z * (h[b * H + j] - n);
    }
  }
}

// dxp, dhp (B, 3H) and dh (B, H) from g = dL/dh' (B, H), the state h and the saved gates.
template <class T>
void gru_gates_backward(const T* g, const T* h, const T* gates, std::size_t B, std::size_t H,
                        T* dxp, T* dhp, T* dh) {
  for (std::size_t b = 0; b < B; ++b) {
    const T* s = gates + b * 4 * H;  // r, z, n, hp_n
    T* x = dxp + b * 3 * H;
    T* y = dhp + b * 3 * H;
    for (std::size_t j = 0; j < H; ++j) {
      const T r = s[j], z = s[H + j], n = s[2 * H + j], hn = s[3 * H + j];
      const T gv = g[b * H + j], hv = h[b * H + j];
      const T da_n = gv * (T{1} - z) * (T{1} - n * n);
      const T da_r = da_n * hn * r * (T{1} - r);
      const T da_z = gv * (hv - n) * z * (T{1} - z);
      x[j] = y[j] = da_r;
      x[H + j] = y[H + j] = da_z;
      x[2 * H + j] = da_n;
      y[2 * H + j] = da_n * r;
      dh[b * H + j] = gv * z;
    }
  }
}

}  // namespace xgrad::detail
