// A training step's small steps around the kernel, each in one call: RandHet's logit-normal
// decay draw (randhet/decays.py: _two_normals, then _logit_normal_no_grad for the current and
// the voltage decays) and SLAYER's 8-bit weight hook as one autograd node
// (randhet/models/neuron.py: _Quantize8bit). The same ATen ops in the same order, so the same
// numbers, without a Python call per op or a Python autograd node (a layer's draw is ~20 small
// ops, most of its cost on small layers). The Python steps stay for machines without the
// extension and for CUDA; tests/test_neuron.py holds the two to the same bits.
#include <torch/extension.h>

#include <cmath>
#include <vector>

namespace {

// _two_normals: float32 normals widened to float64, both from one draw of twice the size
// where the size is a multiple of 16 (torch fills normals in blocks of 16), else two draws
std::vector<torch::Tensor> two_normals(torch::IntArrayRef size,
                                       const std::optional<at::Generator>& gen) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  int64_t n = 1;
  for (const auto s : size) n *= s;
  if (n % 16 != 0) {
    auto a = at::randn(size, gen, f32).to(torch::kDouble);
    auto b = at::randn(size, gen, f32).to(torch::kDouble);
    return {a, b};
  }
  std::vector<int64_t> both{2};
  both.insert(both.end(), size.begin(), size.end());
  auto ab = at::randn(both, gen, f32).to(torch::kDouble);
  return {ab[0], ab[1]};
}

// _logit_normal_no_grad's map: round(4096 * sigmoid(logit + sigma * eps)) within the bounds
torch::Tensor logit_normal(const torch::Tensor& eps, const torch::Tensor& logit, double sigma,
                           int64_t low, int64_t high) {
  auto d = eps.mul(sigma);
  return d.add_(logit).sigmoid_().mul_(4096).round_().clamp_(low, high);
}

}  // namespace

// Fresh current and voltage decays (float64) for noise of ``size``: logit_c, logit_v are the
// means' logits (decays.py's _mean_logit), the bounds the register ranges.
std::vector<torch::Tensor> logit_normal_draw(torch::IntArrayRef size,
                                             const std::optional<at::Generator>& gen,
                                             const torch::Tensor& logit_c,
                                             const torch::Tensor& logit_v, double sigma,
                                             int64_t low_c, int64_t high_c, int64_t low_v,
                                             int64_t high_v) {
  const auto eps = two_normals(size, gen);
  return {logit_normal(eps[0], logit_c, sigma, low_c, high_c),
          logit_normal(eps[1], logit_v, sigma, low_v, high_v)};
}

// at::div(w, step).round_().mul_(step) for contiguous float32 w in one pass, the same bits
// (torch divides and multiplies a float tensor by float(step); its round is round-half-even,
// std::nearbyint's), and whether every q lies strictly inside (lo, hi) (false for NaN)
static torch::Tensor rounded_to_step(const torch::Tensor& w, double step, double lo, double hi,
                                     bool& inside) {
  auto q = torch::empty_like(w);
  const float s = static_cast<float>(step);
  const float* __restrict wp = w.data_ptr<float>();
  float* __restrict qp = q.data_ptr<float>();
  const int64_t n = w.numel();
  int outside = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(wp[i] / s) * s;
    qp[i] = v;
    outside |= !((static_cast<double>(v) > lo) & (static_cast<double>(v) < hi));
  }
  inside = outside == 0;
  return q;
}

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

torch::Tensor quantize_8bit(const torch::Tensor& w, double step, double lo, double hi) {
  return Quantize8bitNode::apply(w, step, lo, hi);
}
