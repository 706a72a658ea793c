// gru_cell: the gates of one GRU step, from the input's projection xp = x W_ih^T + b_ih and the
// state's hp = h W_hh^T + b_hh (each (B, 3H), blocks r, z, n) and the state h (B, H):
//   r = sigmoid(xp_r + hp_r),  z = sigmoid(xp_z + hp_z),  n = tanh(xp_n + r hp_n)
//   h' = (1 - z) n + z h
// With g = dL/dh':  dn = g (1 - z),  dz = g (h - n),  dh = g z,
//   da_n = dn (1 - n^2),  da_r = da_n hp_n r (1 - r),  da_z = dz z (1 - z)
//   dxp = [da_r, da_z, da_n],  dhp = [da_r, da_z, da_n r].
// JVP, from tangents u_x, u_hp, u_h (blocks r, z, n as above):
//   dr = r (1 - r) (u_x,r + u_hp,r),  dz = z (1 - z) (u_x,z + u_hp,z),
//   dn = (1 - n^2) (u_x,n + dr hp_n + r u_hp,n),  dh' = (1 - z) dn + dz (h - n) + z u_h.
// Saves h and, per row, r, z, n and hp_n. The arithmetic is detail/recurrent_gates.hpp's.
// NOTE: a primitive for speed (PyTorch's own GRU is fused likewise): as ops, a step took three
// slices of each projection, ten elementwise ops and their gradients' copies. Under create_graph
// the backward is written in ops.
#include <cmath>

#include "autograd/detail/kernels.hpp"
#include "autograd/detail/recurrent_gates.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// The gates recomputed in ops from the projections (recorded: a backward or a tangent made from
// them can be differentiated), and hp's block n.
struct Gates {
  Tensor r, z, n, hp_n;
};
Gates gates_in_ops(const Tensor& xp, const Tensor& hp) {
  const std::vector<Tensor> x3 = chunk(xp, 3, -1), h3 = chunk(hp, 3, -1);
  const Tensor r = sigmoid(add(x3[0], h3[0]));
  return {r, sigmoid(add(x3[1], h3[1])), tanh(add(x3[2], mul(r, h3[2]))), h3[2]};
}

struct GruCell final : Node {
  explicit GruCell(std::size_t hidden) : H_(hidden) {}
  std::string_view name() const override { return "gru_cell"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (detail::differentiable_backward()) return recorded(g, grads);
    const Tensor h = saved(0), gates = saved(1);
    const std::size_t B = h.size(0), H = H_;
    detail::dispatch(h.dtype(), [&](auto zero) {
      using T = decltype(zero);
      xt::xarray<T> dxp = detail::empty<T>({B, 3 * H}), dhp = detail::empty<T>({B, 3 * H});
      xt::xarray<T> dh = detail::empty<T>({B, H});
      detail::gru_gates_backward(detail::data<T>(g), detail::data<T>(h), detail::data<T>(gates), B,
                                 H, dxp.data(), dhp.data(), dh.data());
      if (needs_grad(0)) grads[0] = Tensor(std::move(dxp));
      if (needs_grad(1)) grads[1] = Tensor(std::move(dhp));
      if (needs_grad(2)) grads[2] = Tensor(std::move(dh));
    });
  }

  // The same in ops, for create_graph: the gates recomputed from the inputs.
  void recorded(const Tensor& g, std::span<Tensor> grads) {
    const Tensor h = saved(0);
    const auto [r, z, n, hp_n] = gates_in_ops(saved(2), saved(3));
    const Tensor da_n = mul(mul(g, 1.0 - z), 1.0 - mul(n, n));
    const Tensor da_r = mul(mul(da_n, hp_n), mul(r, 1.0 - r));
    const Tensor da_z = mul(mul(g, sub(h, n)), mul(z, 1.0 - z));
    if (needs_grad(0)) grads[0] = concat({da_r, da_z, da_n}, -1);
    if (needs_grad(1)) grads[1] = concat({da_r, da_z, mul(da_n, r)}, -1);
    if (needs_grad(2)) grads[2] = mul(g, z);
  }

  Tensor jvp(const ForwardInputs& in) const override {
    return detail::gru_cell_tangent(in.primal(0), in.primal(1), in.primal(2), in.tangent(0),
                                    in.tangent(1), in.tangent(2));
  }

  std::size_t H_;
};

}  // namespace

Tensor detail::gru_cell_tangent(const Tensor& xp, const Tensor& hp, const Tensor& h,
                                const Tensor& u_xp, const Tensor& u_hp, const Tensor& u_h) {
  const auto [r, z, n, hp_n] = gates_in_ops(xp, hp);
  const std::vector<Tensor> ux = chunk(u_xp.defined() ? u_xp : zeros_like(xp), 3, -1);
  const std::vector<Tensor> uh = chunk(u_hp.defined() ? u_hp : zeros_like(hp), 3, -1);
  const Tensor dr = mul(mul(r, 1.0 - r), add(ux[0], uh[0]));
  const Tensor dz = mul(mul(z, 1.0 - z), add(ux[1], uh[1]));
  const Tensor dn = mul(1.0 - mul(n, n), add(ux[2], add(mul(dr, hp_n), mul(r, uh[2]))));
  const Tensor out = add(mul(1.0 - z, dn), mul(dz, sub(h, n)));
  return u_h.defined() ? add(out, mul(z, u_h)) : out;
}

Tensor gru_cell(const Tensor& xp, const Tensor& hp, const Tensor& h) {
  const ProfileScope profiled("gru_cell");
  if (h.dim() != 2 || xp.shape() != Shape{h.size(0), 3 * h.size(1)} || hp.shape() != xp.shape())
    throw ShapeError("gru_cell: needs projections (B, 3H) and a state (B, H), got " +
                     shape_str(xp.shape()) + ", " + shape_str(hp.shape()) + " and " +
                     shape_str(h.shape()));
  detail::check_same_dtype("gru_cell", xp, hp);
  detail::check_same_dtype("gru_cell", xp, h);
  const std::size_t B = h.size(0), H = h.size(1);
  Tensor gates;
  Tensor out = detail::dispatch(h.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> next = detail::empty<T>({B, H}), saved = detail::empty<T>({B, 4 * H});
    detail::gru_gates_forward(detail::data<T>(xp), detail::data<T>(hp), detail::data<T>(h), B, H,
                              next.data(), saved.data());
    gates = Tensor(std::move(saved));
    return Tensor(std::move(next));
  });
  if (auto* node = record<GruCell>(out, {xp, hp, h}, H)) node->save({h, gates, xp, hp});
  return out;
}

}  // namespace xgrad
