// A training step's small steps around the kernel, each in one call: RandHet's logit-normal
// decay draw (randhet/decays.py: _two_normals, then _logit_normal_no_grad for the current and
// the voltage decays) and SLAYER's 8-bit weight hook as one autograd node
// (randhet/models/neuron.py: _Quantize8bit). The same arithmetic in the same order, so the
// same numbers, without a Python call per op or a Python autograd node (a layer's draw was ~20
// small ops, most of its cost on small layers): torch's own randn and sigmoid, and fused loops
// for the steps whose results IEEE arithmetic fixes (multiply, add, divide, round half to even,
// clamp; the build keeps a * b + c unfused). The Python steps stay for machines without the
// extension and for CUDA; tests/test_neuron.py holds the two to the same bits.
#include "randhet.h"

#include <cmath>
#include <vector>

namespace randhet {

namespace {

// _two_normals' draw: float32 normals [2, *size], from one draw of twice the size where the
// size is a multiple of 16 (torch fills normals in blocks of 16), else two draws one after the
// other
torch::Tensor two_normals(torch::IntArrayRef size, const std::optional<at::Generator>& gen) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  int64_t n = 1;
  for (const auto s : size) n *= s;
  if (n % 16 != 0) {
    auto a = at::randn(size, gen, f32);
    return at::stack({a, at::randn(size, gen, f32)});
  }
  std::vector<int64_t> both{2};
  both.insert(both.end(), size.begin(), size.end());
  return at::randn(both, gen, f32);
}

// d[i] = double(eps[i]) * sigma + logit: eps.to(float64).mul(sigma).add_(logit), rounded as
// those two ops round (the build keeps a * b + c unfused)
void shifted(const float* __restrict eps, double* __restrict d, int64_t n, double sigma,
             double logit) {
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<double>(eps[i]) * sigma + logit;
}

// d[i] = clamp(round(d[i] * 4096), low, high): mul_(4096).round_().clamp_(low, high) (torch's
// round is round-half-even, std::nearbyint's; NaN stays NaN, as in torch's clamp)
RANDHET_CLONES
void on_the_grid(double* __restrict d, int64_t n, double low, double high) {
  for (int64_t i = 0; i < n; ++i) {
    const double r = std::nearbyint(d[i] * 4096.0);
    d[i] = r < low ? low : (r > high ? high : r);
  }
}

}  // namespace

// Fresh current and voltage decays (float64) for noise of ``size``: logit_c, logit_v are the
// means' logits (decays.py's _mean_logit, one element each, as doubles), the bounds the
// register ranges.
// _logit_normal_no_grad's ops for each decay, round(4096 * sigmoid(logit + sigma * eps))
// within the bounds, as two fused loops around torch's own sigmoid, on one [2, *size] buffer:
// the same bits.
std::vector<torch::Tensor> logit_normal_draw(torch::IntArrayRef size,
                                             const std::optional<at::Generator>& gen,
                                             double logit_c, double logit_v, double sigma,
                                             int64_t low_c, int64_t high_c, int64_t low_v,
                                             int64_t high_v) {
  const auto eps = two_normals(size, gen);
  auto d = torch::empty(eps.sizes(), eps.options().dtype(torch::kDouble));
  const int64_t n = eps.numel() / 2;
  const double logits[2] = {logit_c, logit_v};
  const double bounds[2][2] = {{static_cast<double>(low_c), static_cast<double>(high_c)},
                               {static_cast<double>(low_v), static_cast<double>(high_v)}};
  std::vector<torch::Tensor> out{d[0], d[1]};
  for (int h = 0; h < 2; ++h) {
    double* dh = d.data_ptr<double>() + h * n;
    shifted(eps.data_ptr<float>() + h * n, dh, n, sigma, logits[h]);
    out[h].sigmoid_();  // one call per decay, as before: torch's vector tail falls alike
    on_the_grid(dh, n, bounds[h][0], bounds[h][1]);
  }
  return out;
}

// at::div(w, step).round_().mul_(step) for contiguous float32 w in one pass, the same bits
// (torch divides and multiplies a float tensor by float(step); its round is round-half-even,
// std::nearbyint's), and whether every q lies strictly inside (lo, hi) (false for NaN)
RANDHET_CLONES
static void round_to_step(const float* __restrict wp, float* __restrict qp, int64_t n, float s,
                          double lo, double hi, bool& inside) {
  int outside = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(wp[i] / s) * s;
    qp[i] = v;
    outside |= !((static_cast<double>(v) > lo) & (static_cast<double>(v) < hi));
  }
  inside = outside == 0;
}

static torch::Tensor rounded_to_step(const torch::Tensor& w, double step, double lo, double hi,
                                     bool& inside) {
  auto q = torch::empty_like(w);
  round_to_step(w.data_ptr<float>(), q.data_ptr<float>(), w.numel(), static_cast<float>(step),
                lo, hi, inside);
  return q;
}

}  // namespace randhet

// at global scope: autograd names the node after it (CppNode<Quantize8bitNode>)
using namespace randhet;  // NOLINT: this file's own names

// _Quantize8bit: q = round(w / step) * step, then clamp(lo, hi); its gradient passes as it is
// where every q lies strictly inside the bounds, else it is torch's clamp gradient (asked of
// autograd, as the Python node does)
struct Quantize8bitNode : public torch::autograd::Function<Quantize8bitNode> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& w,
                               double step, double lo, double hi) {
    torch::Tensor q;
    bool inside = true;
    if (w.scalar_type() == torch::kFloat && w.is_contiguous() && !w.is_cuda()) {
      q = rounded_to_step(w, step, lo, hi, inside);
    } else {
      q = at::div(w, step).round_().mul_(step);
      if (q.numel() > 0) {
        const auto [low, high] = at::aminmax(q);
        inside = low.item<double>() > lo && high.item<double>() < hi;  // false for NaN
      }
    }
    ctx->saved_data["lo"] = lo;
    ctx->saved_data["hi"] = hi;
    ctx->save_for_backward({inside ? torch::Tensor() : q});
    return inside ? q : q.clamp(lo, hi);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto q = ctx->get_saved_variables()[0];
    if (!q.defined()) return {grads[0], torch::Tensor(), torch::Tensor(), torch::Tensor()};
    torch::AutoGradMode on(true);
    auto leaf = q.detach().requires_grad_(true);
    auto out = leaf.clamp(ctx->saved_data["lo"].toDouble(), ctx->saved_data["hi"].toDouble());
    auto grad = torch::autograd::grad({out}, {leaf}, {grads[0]})[0];
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

namespace randhet {

torch::Tensor quantize_8bit(const torch::Tensor& w, double step, double lo, double hi) {
  return Quantize8bitNode::apply(w, step, lo, hi);
}

}  // namespace randhet
