// lstm_cell: one LSTM step from the input's projection xp = x W_ih^T + b_ih and the state's
// hp = h W_hh^T + b_hh (each (B, 4H), blocks i, f, g, o as PyTorch's) and the cell state c (B, H):
//   a = xp + hp,  i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
//   c' = f c + i g,  h' = o tanh(c')
// The result is (2, B, H): h' then c' (select(out, 0, k) are contiguous views).
// With G_h, G_c = dL/dh', dL/dc' and t = tanh(c'):
//   dc' = G_c + G_h o (1 - t^2)
//   da_i = dc' g i (1 - i),  da_f = dc' c f (1 - f),  da_g = dc' i (1 - g^2)
//   da_o = G_h t o (1 - o)
//   dxp = dhp = [da_i, da_f, da_g, da_o],  dc = dc' f.
// JVP, from tangents u_x, u_hp, u_c and u = u_x + u_hp (blocks i, f, g, o):
//   di = i (1 - i) u_i,  df = f (1 - f) u_f,  dg = (1 - g^2) u_g,  do = o (1 - o) u_o
//   dc' = df c + f u_c + di g + i dg,  dh' = do t + o (1 - t^2) dc'.
// Saves c and, per row, i, f, g, o and t. The arithmetic is detail/recurrent_gates.hpp's.
// NOTE: a primitive for speed, as gru_cell (PyTorch's LSTM is fused likewise): as ops, a step
// took a sum, four slices, six elementwise ops and their gradients' copies. Under create_graph
// the backward is written in ops.
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/recurrent_gates.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

// The gates and t = tanh(c') recomputed in ops from the inputs (recorded: a backward or a tangent
// made from them can be differentiated).
struct Gates {
  Tensor i, f, g, o, t;
};
Gates gates_in_ops(const Tensor& xp, const Tensor& hp, const Tensor& c) {
  const std::vector<Tensor> a = chunk(add(xp, hp), 4, -1);
  const Tensor i = sigmoid(a[0]), f = sigmoid(a[1]), g = tanh(a[2]);
  return {i, f, g, sigmoid(a[3]), tanh(add(mul(f, c), mul(i, g)))};
}

struct LstmCell final : Node {
  explicit LstmCell(std::size_t hidden) : H_(hidden) {}
  std::string_view name() const override { return "lstm_cell"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (detail::differentiable_backward()) return recorded(g, grads);
    const Tensor c = saved(0), gates = saved(1);
    const std::size_t B = c.size(0), H = H_;
    detail::dispatch(c.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* gh = detail::data<T>(g);
      xt::xarray<T> da = detail::empty<T>({B, 4 * H}), dc = detail::empty<T>({B, H});
      detail::lstm_gates_backward(gh, gh + B * H, detail::data<T>(c), detail::data<T>(gates), B, H,
                                  da.data(), dc.data());
      Tensor dgates(std::move(da));
      if (needs_grad(0)) grads[0] = dgates;
      if (needs_grad(1)) grads[1] = dgates;
      if (needs_grad(2)) grads[2] = Tensor(std::move(dc));
    });
  }

  // The same in ops, for create_graph: the gates recomputed from the inputs.
  void recorded(const Tensor& g, std::span<Tensor> grads) {
    const Tensor c = saved(0);
    const auto [i, f, gg, o, t] = gates_in_ops(saved(2), saved(3), c);
    const Tensor gh = select(g, 0, 0), gc = select(g, 0, 1);
    const Tensor dcn = add(gc, mul(mul(gh, o), 1.0 - mul(t, t)));
    const Tensor da =
        concat({mul(mul(dcn, gg), mul(i, 1.0 - i)), mul(mul(dcn, c), mul(f, 1.0 - f)),
                mul(mul(dcn, i), 1.0 - mul(gg, gg)), mul(mul(gh, t), mul(o, 1.0 - o))},
               -1);
    if (needs_grad(0)) grads[0] = da;
    if (needs_grad(1)) grads[1] = da;
    if (needs_grad(2)) grads[2] = mul(dcn, f);
  }

  Tensor jvp(const ForwardInputs& in) const override {
    const auto [dh, dc] = detail::lstm_cell_tangent(in.primal(0), in.primal(1), in.primal(2),
                                                    in.tangent(0), in.tangent(1), in.tangent(2));
    return stack({dh, dc}, 0);
  }

  std::size_t H_;
};

}  // namespace

detail::LstmTangent detail::lstm_cell_tangent(const Tensor& xp, const Tensor& hp, const Tensor& c,
                                              const Tensor& u_xp, const Tensor& u_hp,
                                              const Tensor& u_c) {
  const auto [i, f, g, o, t] = gates_in_ops(xp, hp, c);
  Tensor dc = u_c.defined() ? mul(f, u_c) : Tensor(), dout;
  if (const Tensor u = add_defined(u_xp, u_hp); u.defined()) {
    const std::vector<Tensor> d = chunk(u, 4, -1);
    const Tensor di = mul(mul(i, 1.0 - i), d[0]), df = mul(mul(f, 1.0 - f), d[1]);
    const Tensor dg = mul(1.0 - mul(g, g), d[2]);
    dc = add_defined(dc, add(mul(df, c), add(mul(di, g), mul(i, dg))));
    dout = mul(mul(mul(o, 1.0 - o), d[3]), t);
  }
  return {add_defined(dout, mul(mul(o, 1.0 - mul(t, t)), dc)), dc};
}

Tensor lstm_cell(const Tensor& xp, const Tensor& hp, const Tensor& c) {
  const ProfileScope profiled("lstm_cell");
  if (c.dim() != 2 || xp.shape() != Shape{c.size(0), 4 * c.size(1)} || hp.shape() != xp.shape())
    throw ShapeError("lstm_cell: needs projections (B, 4H) and a cell state (B, H), got " +
                     shape_str(xp.shape()) + ", " + shape_str(hp.shape()) + " and " +
                     shape_str(c.shape()));
  detail::check_same_dtype("lstm_cell", xp, hp);
  detail::check_same_dtype("lstm_cell", xp, c);
  const std::size_t B = c.size(0), H = c.size(1);
  Tensor gates;
  Tensor out = detail::dispatch(c.dtype(), [&](auto zero) {
    using T = decltype(zero);
    xt::xarray<T> next = detail::empty<T>({2, B, H}), saved = detail::empty<T>({B, 5 * H});
    detail::lstm_gates_forward(detail::data<T>(xp), detail::data<T>(hp), detail::data<T>(c), B, H,
                               next.data(), next.data() + B * H, saved.data());
    gates = Tensor(std::move(saved));
    return Tensor(std::move(next));
  });
  if (auto* node = record<LstmCell>(out, {xp, hp, c}, H)) node->save({c, gates, xp, hp});
  return out;
}

}  // namespace xgrad
