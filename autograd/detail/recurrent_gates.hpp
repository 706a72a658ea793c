#pragma once
// The arithmetic of one recurrent step's gates over B rows, shared by the one-step ops (gru_cell,
// lstm_cell) and the whole-layer ones (gru_sequence, lstm_sequence). Included by those files only.
// GRU:
//   r = sigmoid(xp_r + hp_r),  z = sigmoid(xp_z + hp_z),  n = tanh(xp_n + r hp_n)
//   h' = (1 - z) n + z h
// With g = dL/dh':  da_n = g (1 - z)(1 - n^2),  da_r = da_n hp_n r (1 - r),
//   da_z = g (h - n) z (1 - z);  dxp = [da_r, da_z, da_n],  dhp = [da_r, da_z, da_n r],  dh = g z.

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/vector_math.hpp"

namespace xgrad::detail {

// next (B, H) from xp, hp (B, 3H) and h (B, H); gates (B, 4H) keeps r, z, n and hp_n per row for
// the backward. float32 runs in vector lanes (detail::vec::gru_gates_forward); these loops are
// float64's.
template <class T>
void gru_gates_forward(const T* xp, const T* hp, const T* h, std::size_t B, std::size_t H, T* next,
                       T* gates) {
  if constexpr (std::is_same_v<T, float>)  // in one pass of vector lanes
    return vec::gru_gates_forward(xp, hp, h, B, H, next, gates);
  for (std::size_t b = 0; b < B; ++b) {
    const T* x = xp + b * 3 * H;
    const T* p = hp + b * 3 * H;
    T* s = gates + b * 4 * H;  // r, z, n, hp_n
    // r and z: 1 / (1 + e^-a), the exponentials of both gates in one pass
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
  if constexpr (std::is_same_v<T, float>)  // in vector lanes
    return vec::gru_gates_backward(g, h, gates, B, H, dxp, dhp, dh);
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

// LSTM, from a = xp + hp (B, 4H; blocks i, f, g, o) and the cell state c (B, H):
//   i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g),  c' = f c + i g,  h' = o tanh(c')
// With G_h, G_c = dL/dh', dL/dc' and t = tanh(c'):  dc' = G_c + G_h o (1 - t^2),
//   da = [dc' g i (1 - i), dc' c f (1 - f), dc' i (1 - g^2), G_h t o (1 - o)],  dc = dc' f.

// h_out, c_out (B, H) from xp, hp (B, 4H) and c; gates (B, 5H) keeps i, f, g, o and t per row.
template <class T>
void lstm_gates_forward(const T* xp, const T* hp, const T* c, std::size_t B, std::size_t H,
                        T* h_out, T* c_out, T* gates) {
  if constexpr (std::is_same_v<T, float>)  // in one pass of vector lanes
    return vec::lstm_gates_forward(xp, hp, c, B, H, h_out, c_out, gates);
  for (std::size_t b = 0; b < B; ++b) {
    const T* x = xp + b * 4 * H;
    const T* p = hp + b * 4 * H;
    T* s = gates + b * 5 * H;  // i, f, g, o, t
    // i, f and o: 1 / (1 + e^-a), their exponentials in two passes; g = tanh(a_g)
    for (std::size_t j = 0; j < 4 * H; ++j) s[j] = x[j] + p[j];
    for (std::size_t j = 0; j < 2 * H; ++j) s[j] = -s[j];
    for (std::size_t j = 3 * H; j < 4 * H; ++j) s[j] = -s[j];
    exp_in_place(s, 2 * H);
    exp_in_place(s + 3 * H, H);
    tanh_in_place(s + 2 * H, H);
    for (std::size_t j = 0; j < 2 * H; ++j) s[j] = T{1} / (T{1} + s[j]);
    for (std::size_t j = 3 * H; j < 4 * H; ++j) s[j] = T{1} / (T{1} + s[j]);
    for (std::size_t j = 0; j < H; ++j)
      c_out[b * H + j] = s[H + j] * c[b * H + j] + s[j] * s[2 * H + j];
    std::copy(c_out + b * H, c_out + (b + 1) * H, s + 4 * H);
    tanh_in_place(s + 4 * H, H);
    for (std::size_t j = 0; j < H; ++j) h_out[b * H + j] = s[3 * H + j] * s[4 * H + j];
  }
}

// da (B, 4H) and dc (B, H) from G_h, G_c (B, H), the cell state c and the saved gates.
template <class T>
void lstm_gates_backward(const T* gh, const T* gc, const T* c, const T* gates, std::size_t B,
                         std::size_t H, T* da, T* dc) {
  if constexpr (std::is_same_v<T, float>)  // in vector lanes
    return vec::lstm_gates_backward(gh, gc, c, gates, B, H, da, dc);
  for (std::size_t b = 0; b < B; ++b) {
    const T* s = gates + b * 5 * H;  // i, f, g, o, t
    T* d = da + b * 4 * H;
    for (std::size_t j = 0; j < H; ++j) {
      const std::size_t k = b * H + j;
      const T i = s[j], f = s[H + j], gg = s[2 * H + j], o = s[3 * H + j], t = s[4 * H + j];
      const T dcn = gc[k] + gh[k] * o * (T{1} - t * t);
      d[j] = dcn * gg * i * (T{1} - i);
      d[H + j] = dcn * c[k] * f * (T{1} - f);
      d[2 * H + j] = dcn * i * (T{1} - gg * gg);
      d[3 * H + j] = gh[k] * t * o * (T{1} - o);
      dc[k] = dcn * f;
    }
  }
}

// The recurrent weight's and bias's gradients in a whole-layer op, from D, the (T B, width) stack
// of every step's gate gradients (width = 3H or 4H): dW_hh (width, H) = D^T P, P the (T B, H)
// stack of the states each step started from (h0, then the first T - 1 states, contiguous
// (T - 1, B, H)); db_hh (width) = D's column sums, in double.
// NOTE: where D's rows lie a multiple of 4 KB apart and P's do not (transposed_product_pays: the
// LSTM's at H = 256), dW_hh is made as its transpose P^T D (H, width), then transposed: one
// transpose for both products.
template <class T>
void recurrent_weight_grad(const T* d, const T* h0, const T* states, std::size_t steps,
                           std::size_t B, std::size_t H, std::size_t width, T* dw) {
  if (!transposed_product_pays(width, H, sizeof(T))) {
    gemm(true, false, width, H, B, T{1}, d, width, h0, H, T{0}, dw, H);
    if (steps > 1)
      gemm(true, false, width, H, (steps - 1) * B, T{1}, d + B * width, width, states, H, T{1}, dw,
           H);
    return;
  }
  std::vector<T> dwt(H * width);
  gemm(true, false, H, width, B, T{1}, h0, H, d, width, T{0}, dwt.data(), width);
  if (steps > 1)
    gemm(true, false, H, width, (steps - 1) * B, T{1}, states, H, d + B * width, width, T{1},
         dwt.data(), width);
  transpose(dwt.data(), H, width, dw, H);
}
template <class T>
void recurrent_bias_grad(const T* d, std::size_t rows, std::size_t width, T* db) {
  std::vector<double> sums(width, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < width; ++j) sums[j] += double(d[r * width + j]);
  for (std::size_t j = 0; j < width; ++j) db[j] = static_cast<T>(sums[j]);
}

// Forward mode: one step's tangent, in ops from the step's primals (so that it can be
// differentiated), given its inputs' tangents (an undefined one counts as zeros; a tangent may keep
// a broadcast shape). Each cell's rule, and the sequence ops' rules step by step.
// GRU: the tangent of h' from those of xp, hp and h (gru_cell.cpp gives the formula).
Tensor gru_cell_tangent(const Tensor& xp, const Tensor& hp, const Tensor& h, const Tensor& u_xp,
                        const Tensor& u_hp, const Tensor& u_h);
// LSTM: the tangents of h' and c' from those of xp, hp and c (lstm_cell.cpp gives the formula).
struct LstmTangent {
  Tensor h, c;
};
LstmTangent lstm_cell_tangent(const Tensor& xp, const Tensor& hp, const Tensor& c,
                              const Tensor& u_xp, const Tensor& u_hp, const Tensor& u_c);
// The tangent of hp = h W^T + b from those of h, W and b (undefined when none has one).
inline Tensor recurrent_tangent(const Tensor& h, const Tensor& w, const Tensor& u_h,
                                const Tensor& u_w, const Tensor& u_b) {
  Tensor u = u_h.defined() ? linear(u_h, w, Tensor()) : Tensor();
  if (u_w.defined()) u = add_defined(u, linear(h, u_w, Tensor()));
  return u_b.defined() ? add_defined(u, u_b) : u;
}

}  // namespace xgrad::detail
