// gru_sequence: a GRU layer's recurrence over T steps, from the input's projections xp (T, B, 3H)
// (x_t W_ih^T + b_ih for every step t), the initial state h0 (B, H), W_hh (3H, H) and b_hh (3H)
// or none:
//   hp_t = h_{t-1} W_hh^T + b_hh,  h_t = gru_cell(xp_t, hp_t, h_{t-1}),  out = (h_0 .. h_{T-1})
// (h_{-1} = h0). Backward, from G_t = dL/dh_t and the carry c (dL/dh_t through later steps, 0 at
// the last): gru_cell's derivatives at g = G_t + c give dxp_t, dhp_t and g z_t, then
// c = g z_t + dhp_t W_hh. After the loop, with D the (T B, 3H) stack of the dhp_t and P the
// (T B, H) stack of the h_{t-1}:  dW_hh = D^T P,  db_hh = the column sums of D,  dh0 = c.
// Saves xp, h0, W_hh, the states and the gates of every step, and b_hh.
// JVP, step by step from u_h = the tangent of h0:  u_hp,t = u_h W_hh^T + h_{t-1} U_W^T + u_b,
// then gru_cell's JVP at step t (u_xp,t, u_hp,t, u_h) gives the tangent of h_t, the next u_h.
// NOTE: a primitive for speed: the loop of linear and gru_cell recorded two nodes and a slice per
// step, accumulated W_hh's gradient once per step, and summed b_hh's per step; here the steps run
// in one node and W_hh's gradient is one product over all of them. Under create_graph the
// backward is written in ops (the gates recomputed step by step from the saved inputs).
#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/recurrent_gates.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

struct GruSequence final : Node {
  GruSequence(std::size_t steps, std::size_t batch, std::size_t hidden, bool bias)
      : T_(steps), B_(batch), H_(hidden), bias_(bias) {}
  std::string_view name() const override { return "gru_sequence"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (detail::differentiable_backward()) return recorded(g, grads);
    const Tensor h0 = saved(1), w = saved(2), states = saved(3), gates = saved(4);
    const std::size_t T = T_, B = B_, H = H_, rows = B * H, wide = B * 3 * H;
    detail::dispatch(h0.dtype(), [&](auto zero) {
      using V = decltype(zero);
      const V* pg = detail::data<V>(g);
      const V* ph0 = detail::data<V>(h0);
      const V* pw = detail::data<V>(w);
      const V* ps = detail::data<V>(states);
      const V* pgates = detail::data<V>(gates);
      xt::xarray<V> dxp = detail::empty<V>({T, B, 3 * H}), dhp = detail::empty<V>({T, B, 3 * H});
      xt::xarray<V> carry = xt::zeros<V>({B, H});
      std::vector<V> upstream(rows);
      for (std::size_t t = T; t-- > 0;) {
        const V* before = t == 0 ? ph0 : ps + (t - 1) * rows;
        for (std::size_t i = 0; i < rows; ++i) upstream[i] = pg[t * rows + i] + carry.data()[i];
        V* dhp_t = dhp.data() + t * wide;
        // the carry becomes g z (the direct path), then gains dhp_t W_hh (through hp_t)
        detail::gru_gates_backward(upstream.data(), before, pgates + t * B * 4 * H, B, H,
                                   dxp.data() + t * wide, dhp_t, carry.data());
        if (t > 0 || needs_grad(1))  // h0's gradient only when asked for
          detail::gemm(false, false, B, H, 3 * H, V{1}, dhp_t, 3 * H, pw, H, V{1}, carry.data(), H);
      }
      if (needs_grad(0)) grads[0] = Tensor(std::move(dxp));
      if (needs_grad(1)) grads[1] = Tensor(std::move(carry));
      if (needs_grad(2)) {
        xt::xarray<V> dw = detail::empty<V>({3 * H, H});
        detail::recurrent_weight_grad(dhp.data(), ph0, ps, T, B, H, 3 * H, dw.data());
        grads[2] = Tensor(std::move(dw));
      }
      if (bias_ && needs_grad(3)) {
        xt::xarray<V> db = detail::empty<V>({3 * H});
        detail::recurrent_bias_grad(dhp.data(), T * B, 3 * H, db.data());
        grads[3] = Tensor(std::move(db));
      }
    });
  }

  // The same in ops, for create_graph: the gates recomputed step by step from the saved inputs,
  // then the steps walked backward as above.
  void recorded(const Tensor& g, std::span<Tensor> grads) {
    const Tensor xp = saved(0), h0 = saved(1), w = saved(2), b = bias_ ? saved(5) : Tensor();
    struct Step {
      Tensor before, r, z, n, hn;
    };
    std::vector<Step> steps;
    Tensor h = h0;
    for (std::size_t t = 0; t < T_; ++t) {
      const std::vector<Tensor> x3 = chunk(select(xp, 0, std::ptrdiff_t(t)), 3, -1);
      const std::vector<Tensor> h3 = chunk(linear(h, w, b), 3, -1);
      const Tensor r = sigmoid(add(x3[0], h3[0])), z = sigmoid(add(x3[1], h3[1]));
      const Tensor n = tanh(add(x3[2], mul(r, h3[2])));
      steps.push_back({h, r, z, n, h3[2]});
      h = add(n, mul(z, sub(h, n)));
    }
    std::vector<Tensor> dxp(T_), dhp(T_), before(T_);
    Tensor carry;
    for (std::size_t t = T_; t-- > 0;) {
      const Step& s = steps[t];
      const Tensor gt = select(g, 0, std::ptrdiff_t(t));
      const Tensor total = carry.defined() ? add(gt, carry) : gt;
      const Tensor da_n = mul(mul(total, 1.0 - s.z), 1.0 - mul(s.n, s.n));
      const Tensor da_r = mul(mul(da_n, s.hn), mul(s.r, 1.0 - s.r));
      const Tensor da_z = mul(mul(total, sub(s.before, s.n)), mul(s.z, 1.0 - s.z));
      dxp[t] = concat({da_r, da_z, da_n}, -1);
      dhp[t] = concat({da_r, da_z, mul(da_n, s.r)}, -1);
      before[t] = s.before;
      carry = add(mul(total, s.z), mm(dhp[t], w));
    }
    const Tensor d = concat(dhp, 0);
    if (needs_grad(0)) grads[0] = stack(dxp, 0);
    if (needs_grad(1)) grads[1] = carry;
    if (needs_grad(2)) grads[2] = mm(d, concat(before, 0), true, false);
    if (bias_ && needs_grad(3)) grads[3] = sum(d, {0});
  }

  // In ops, the states made again by gru_cell step by step beside their tangents.
  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor &xp = in.primal(0), &w = in.primal(2), b = bias_ ? in.primal(3) : Tensor();
    const Tensor u_b = bias_ ? in.tangent(3) : Tensor();
    Tensor h = in.primal(1), u_h = in.tangent(1);
    std::vector<Tensor> tangents;
    for (std::size_t t = 0; t < T_; ++t) {
      const Tensor xp_t = select(xp, 0, std::ptrdiff_t(t)), hp = linear(h, w, b);
      const Tensor u_xp = in.has(0) ? select(in.tangent(0), 0, std::ptrdiff_t(t)) : Tensor();
      u_h = detail::gru_cell_tangent(xp_t, hp, h, u_xp,
                                     detail::recurrent_tangent(h, w, u_h, in.tangent(2), u_b), u_h);
      h = gru_cell(xp_t, hp, h);
      tangents.push_back(u_h);
    }
    return stack(tangents, 0);
  }

  std::size_t T_, B_, H_;
  bool bias_;
};

}  // namespace

Tensor gru_sequence(const Tensor& xp, const Tensor& h0, const Tensor& weight_hh,
                    const Tensor& bias_hh) {
  const ProfileScope profiled("gru_sequence");
  const char* op = "gru_sequence";
  const bool fits = h0.dim() == 2 && xp.dim() == 3 && xp.size(0) > 0 && xp.size(1) == h0.size(0) &&
                    xp.size(2) == 3 * h0.size(1) &&
                    weight_hh.shape() == Shape{3 * h0.size(1), h0.size(1)} &&
                    (!bias_hh.defined() || bias_hh.shape() == Shape{3 * h0.size(1)});
  if (!fits)
    throw ShapeError(std::string(op) +
                     ": needs projections xp (T, B, 3H) with T > 0, a state h0 (B, H), W_hh "
                     "(3H, H) and b_hh (3H) or none, got " +
                     shape_str(xp.shape()) + ", " + shape_str(h0.shape()) + ", " +
                     shape_str(weight_hh.shape()) + " and " +
                     (bias_hh.defined() ? shape_str(bias_hh.shape()) : std::string("none")));
  detail::check_same_dtype(op, xp, h0);
  detail::check_same_dtype(op, xp, weight_hh);
  if (bias_hh.defined()) detail::check_same_dtype(op, xp, bias_hh);
  const std::size_t T = xp.size(0), B = h0.size(0), H = h0.size(1);
  Tensor gates;
  Tensor out = detail::dispatch(h0.dtype(), [&](auto zero) {
    using V = decltype(zero);
    const V* px = detail::data<V>(xp);
    const V* ph0 = detail::data<V>(h0);
    const V* pw = detail::data<V>(weight_hh);
    const V* pb = bias_hh.defined() ? detail::data<V>(bias_hh) : nullptr;
    xt::xarray<V> states = detail::empty<V>({T, B, H}), saved = detail::empty<V>({T, B, 4 * H});
    std::vector<V> hp(B * 3 * H);
    const detail::RepeatedProduct<V> recurrent(B, 3 * H, H, pw);  // h -> h W_hh^T, every step
    for (std::size_t t = 0; t < T; ++t) {
      const V* before = t == 0 ? ph0 : states.data() + (t - 1) * B * H;
      for (std::size_t r = 0; r < B; ++r)  // hp = b_hh on every row, then += h W_hh^T
        for (std::size_t j = 0; j < 3 * H; ++j) hp[r * 3 * H + j] = pb ? pb[j] : V{0};
      recurrent.add_to(before, hp.data());
      detail::gru_gates_forward(px + t * B * 3 * H, hp.data(), before, B, H,
                                states.data() + t * B * H, saved.data() + t * B * 4 * H);
    }
    gates = Tensor(std::move(saved));
    return Tensor(std::move(states));
  });
  std::vector<const Tensor*> inputs = {&xp, &h0, &weight_hh};
  if (bias_hh.defined()) inputs.push_back(&bias_hh);
  if (auto* node = record_node<GruSequence>(out, inputs, T, B, H, bias_hh.defined())) {
    if (bias_hh.defined())
      node->save({xp, h0, weight_hh, out, gates, bias_hh});
    else
      node->save({xp, h0, weight_hh, out, gates});
  }
  return out;
}

}  // namespace xgrad
