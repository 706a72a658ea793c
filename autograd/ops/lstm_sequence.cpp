// lstm_sequence: an LSTM layer's recurrence over T steps, from the input's projections xp
// (T, B, 4H) (x_t W_ih^T + b_ih for every step t), the initial states h0, c0 (B, H), W_hh (4H, H)
// and b_hh (4H) or none:
//   hp_t = h_{t-1} W_hh^T + b_hh,  (h_t, c_t) = lstm_cell(xp_t, hp_t, c_{t-1})
// (h_{-1}, c_{-1} = h0, c0). The result is (2, T, B, H): every h_t, then every c_t.
// Backward, from G_h, G_c (the result's gradient) and the carries ch, cc (0 at the last step):
// lstm_cell's derivatives at G_h,t + ch and G_c,t + cc give da_t (= dxp_t = dhp_t) and dc, then
// cc = dc and ch = da_t W_hh. After the loop, with D the (T B, 4H) stack of the da_t and P the
// (T B, H) stack of the h_{t-1}:  dW_hh = D^T P,  db_hh = the column sums of D,  dh0 = ch,
// dc0 = cc. Saves xp, h0, c0, W_hh, the result, the gates of every step, and b_hh.
// JVP, step by step from u_h, u_c = the tangents of h0, c0:  u_hp,t = u_h W_hh^T + h_{t-1} U_W^T
// + u_b, then lstm_cell's JVP at step t (u_xp,t, u_hp,t, u_c) gives the next u_h and u_c.
// NOTE: a primitive for speed, as gru_sequence: one node for every step of a layer, W_hh's
// gradient one product over all of them. Under create_graph the backward is written in ops (the
// gates recomputed step by step from the saved inputs).
#include "autograd/detail/blas.hpp"
#include "autograd/detail/kernels.hpp"
#include "autograd/detail/recurrent_gates.hpp"
#include "autograd/grad_mode.hpp"

namespace xgrad {
namespace {

struct LstmSequence final : Node {
  LstmSequence(std::size_t steps, std::size_t batch, std::size_t hidden, bool bias)
      : T_(steps), B_(batch), H_(hidden), bias_(bias) {}
  std::string_view name() const override { return "lstm_sequence"; }

  void backward(const Tensor& g, std::span<Tensor> grads) override {
    if (detail::differentiable_backward()) return recorded(g, grads);
    const Tensor h0 = saved(1), c0 = saved(2), w = saved(3), out = saved(4), gates = saved(5);
    const std::size_t T = T_, B = B_, H = H_, rows = B * H, wide = B * 4 * H;
    detail::dispatch(h0.dtype(), [&](auto zero) {
      using V = decltype(zero);
      const V* pg = detail::data<V>(g);  // (2, T, B, H): G_h then G_c
      const V* ph0 = detail::data<V>(h0);
      const V* pc0 = detail::data<V>(c0);
      const V* pw = detail::data<V>(w);
      const V* hs = detail::data<V>(out);
      const V* cs = hs + T * rows;
      const V* pgates = detail::data<V>(gates);
      xt::xarray<V> da = detail::empty<V>({T, B, 4 * H});
      xt::xarray<V> carry_h = xt::zeros<V>({B, H}), carry_c = xt::zeros<V>({B, H});
      std::vector<V> gh(rows), gc(rows);
      for (std::size_t t = T; t-- > 0;) {
        const V* c_before = t == 0 ? pc0 : cs + (t - 1) * rows;
        for (std::size_t i = 0; i < rows; ++i) {
          gh[i] = pg[t * rows + i] + carry_h.data()[i];
          gc[i] = pg[(T + t) * rows + i] + carry_c.data()[i];
        }
        V* da_t = da.data() + t * wide;
        detail::lstm_gates_backward(gh.data(), gc.data(), c_before, pgates + t * B * 5 * H, B, H,
                                    da_t, carry_c.data());
        if (t > 0 || needs_grad(1))  // h0's gradient only when asked for
          detail::gemm(false, false, B, H, 4 * H, V{1}, da_t, 4 * H, pw, H, V{0}, carry_h.data(),
                       H);
      }
      if (needs_grad(3)) {
        xt::xarray<V> dw = detail::empty<V>({4 * H, H});
        detail::recurrent_weight_grad(da.data(), ph0, hs, T, B, H, 4 * H, dw.data());
        grads[3] = Tensor(std::move(dw));
      }
      if (bias_ && needs_grad(4)) {
        xt::xarray<V> db = detail::empty<V>({4 * H});
        detail::recurrent_bias_grad(da.data(), T * B, 4 * H, db.data());
        grads[4] = Tensor(std::move(db));
      }
      if (needs_grad(0)) grads[0] = Tensor(std::move(da));
      if (needs_grad(1)) grads[1] = Tensor(std::move(carry_h));
      if (needs_grad(2)) grads[2] = Tensor(std::move(carry_c));
    });
  }

  // The same in ops, for create_graph: the gates recomputed step by step from the saved inputs,
  // then the steps walked backward as above.
  void recorded(const Tensor& g, std::span<Tensor> grads) {
    const Tensor xp = saved(0), h0 = saved(1), c0 = saved(2), w = saved(3);
    const Tensor b = bias_ ? saved(6) : Tensor();
    struct Step {
      Tensor h_before, c_before, i, f, gg, o, t;
    };
    std::vector<Step> steps;
    Tensor h = h0, c = c0;
    for (std::size_t t = 0; t < T_; ++t) {
      const std::vector<Tensor> a =
          chunk(add(select(xp, 0, std::ptrdiff_t(t)), linear(h, w, b)), 4, -1);
      const Tensor i = sigmoid(a[0]), f = sigmoid(a[1]), gg = tanh(a[2]), o = sigmoid(a[3]);
      const Tensor c_next = add(mul(f, c), mul(i, gg));
      const Tensor tc = tanh(c_next);
      steps.push_back({h, c, i, f, gg, o, tc});
      h = mul(o, tc);
      c = c_next;
    }
    const Tensor gh_all = select(g, 0, 0), gc_all = select(g, 0, 1);
    std::vector<Tensor> da(T_), before(T_);
    Tensor carry_h, carry_c;
    for (std::size_t t = T_; t-- > 0;) {
      const Step& s = steps[t];
      Tensor gh = select(gh_all, 0, std::ptrdiff_t(t)), gc = select(gc_all, 0, std::ptrdiff_t(t));
      if (carry_h.defined()) {
        gh = add(gh, carry_h);
        gc = add(gc, carry_c);
      }
      const Tensor dcn = add(gc, mul(mul(gh, s.o), 1.0 - mul(s.t, s.t)));
      da[t] = concat(
          {mul(mul(dcn, s.gg), mul(s.i, 1.0 - s.i)), mul(mul(dcn, s.c_before), mul(s.f, 1.0 - s.f)),
           mul(mul(dcn, s.i), 1.0 - mul(s.gg, s.gg)), mul(mul(gh, s.t), mul(s.o, 1.0 - s.o))},
          -1);
      before[t] = s.h_before;
      carry_c = mul(dcn, s.f);
      carry_h = mm(da[t], w);
    }
    const Tensor d = concat(da, 0);
    if (needs_grad(0)) grads[0] = stack(da, 0);
    if (needs_grad(1)) grads[1] = carry_h;
    if (needs_grad(2)) grads[2] = carry_c;
    if (needs_grad(3)) grads[3] = mm(d, concat(before, 0), true, false);
    if (bias_ && needs_grad(4)) grads[4] = sum(d, {0});
  }

  // In ops, the states made again by lstm_cell step by step beside their tangents.
  Tensor jvp(const ForwardInputs& in) const override {
    const Tensor &xp = in.primal(0), &w = in.primal(3), b = bias_ ? in.primal(4) : Tensor();
    const Tensor u_b = bias_ ? in.tangent(4) : Tensor();
    Tensor h = in.primal(1), c = in.primal(2), u_h = in.tangent(1), u_c = in.tangent(2);
    std::vector<Tensor> hs, cs;
    for (std::size_t t = 0; t < T_; ++t) {
      const Tensor xp_t = select(xp, 0, std::ptrdiff_t(t)), hp = linear(h, w, b);
      const Tensor u_xp = in.has(0) ? select(in.tangent(0), 0, std::ptrdiff_t(t)) : Tensor();
      const auto [dh, dc] = detail::lstm_cell_tangent(
          xp_t, hp, c, u_xp, detail::recurrent_tangent(h, w, u_h, in.tangent(3), u_b), u_c);
      const Tensor next = lstm_cell(xp_t, hp, c);
      h = select(next, 0, 0);
      c = select(next, 0, 1);
      u_h = dh;
      u_c = dc;
      hs.push_back(dh);
      cs.push_back(dc);
    }
    return stack({stack(hs, 0), stack(cs, 0)}, 0);
  }

  std::size_t T_, B_, H_;
  bool bias_;
};

}  // namespace

Tensor lstm_sequence(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& weight_hh,
                     const Tensor& bias_hh) {
  const ProfileScope profiled("lstm_sequence");
  const char* op = "lstm_sequence";
  const bool fits = h0.dim() == 2 && c0.shape() == h0.shape() && xp.dim() == 3 && xp.size(0) > 0 &&
                    xp.size(1) == h0.size(0) && xp.size(2) == 4 * h0.size(1) &&
                    weight_hh.shape() == Shape{4 * h0.size(1), h0.size(1)} &&
                    (!bias_hh.defined() || bias_hh.shape() == Shape{4 * h0.size(1)});
  if (!fits)
    throw ShapeError(std::string(op) +
                     ": needs projections xp (T, B, 4H) with T > 0, states h0 and c0 (B, H), W_hh "
                     "(4H, H) and b_hh (4H) or none, got " +
                     shape_str(xp.shape()) + ", " + shape_str(h0.shape()) + ", " +
                     shape_str(c0.shape()) + ", " + shape_str(weight_hh.shape()) + " and " +
                     (bias_hh.defined() ? shape_str(bias_hh.shape()) : std::string("none")));
  for (const Tensor* t : {&h0, &c0, &weight_hh}) detail::check_same_dtype(op, xp, *t);
  if (bias_hh.defined()) detail::check_same_dtype(op, xp, bias_hh);
  const std::size_t T = xp.size(0), B = h0.size(0), H = h0.size(1), rows = B * H;
  Tensor gates;
  Tensor out = detail::dispatch(h0.dtype(), [&](auto zero) {
    using V = decltype(zero);
    const V* px = detail::data<V>(xp);
    const V* pw = detail::data<V>(weight_hh);
    const V* pb = bias_hh.defined() ? detail::data<V>(bias_hh) : nullptr;
    xt::xarray<V> states = detail::empty<V>({2, T, B, H}), saved = detail::empty<V>({T, B, 5 * H});
    V* hs = states.data();
    V* cs = hs + T * rows;
    std::vector<V> hp(B * 4 * H);
    const detail::RepeatedProduct<V> recurrent(B, 4 * H, H, pw);  // h -> h W_hh^T, every step
    for (std::size_t t = 0; t < T; ++t) {
      const V* h_before = t == 0 ? detail::data<V>(h0) : hs + (t - 1) * rows;
      const V* c_before = t == 0 ? detail::data<V>(c0) : cs + (t - 1) * rows;
      for (std::size_t r = 0; r < B; ++r)  // hp = b_hh on every row, then += h W_hh^T
        for (std::size_t j = 0; j < 4 * H; ++j) hp[r * 4 * H + j] = pb ? pb[j] : V{0};
      recurrent.add_to(h_before, hp.data());
      detail::lstm_gates_forward(px + t * B * 4 * H, hp.data(), c_before, B, H, hs + t * rows,
                                 cs + t * rows, saved.data() + t * B * 5 * H);
    }
    gates = Tensor(std::move(saved));
    return Tensor(std::move(states));
  });
  std::vector<const Tensor*> inputs = {&xp, &h0, &c0, &weight_hh};
  if (bias_hh.defined()) inputs.push_back(&bias_hh);
  if (auto* node = record_node<LstmSequence>(out, inputs, T, B, H, bias_hh.defined())) {
    if (bias_hh.defined())
      node->save({xp, h0, c0, weight_hh, out, gates, bias_hh});
    else
      node->save({xp, h0, c0, weight_hh, out, gates});
  }
  return out;
}

}  // namespace xgrad
