// The integer leaky integrator of randhet/loihi.py, the whole time loop of a layer in one call.
//
// Layout: [N, T], N the batch times the neurons. Inputs come time last ([N, T] contiguous) or
// time major ([T, N] contiguous), each passed as (row stride, step stride); a stride of 0
// repeats a value (a decay with no time axis). Outputs are time major, as the loop's are
// (loihi.py returns [T, ..] storage viewed as [.., T]), so every downstream op sees the same
// strides. Rows run in parallel, in chunks scanned step by step.
// The arithmetic is loihi.py's, written for one neuron:
//   prod = state * keep            keep = 4096 - d, per neuron or per neuron and step
//   state = sign(prod) * (|prod| >> 12) + drive[t]
//   state = wrap / saturate (clip)
//   pre[t] = state; state = 0 where not (state < threshold); post[t] = state
// The threshold comparison is done in the dtype torch compares an int64 tensor with the
// threshold in (float32 for a Python float under the default dtype), so the spikes are the
// same bits. Build with -ffp-contract=off: the backward's a * g + g_out must round twice, as
// torch's two ops do.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kDecayShift = 12;
constexpr int64_t kMaxState = int64_t{1} << 23;
constexpr int64_t kGrain = 256;  // rows per parallel task
constexpr int64_t kChunk = 64;   // rows scanned together, step by step

enum Clip : int64_t { kNone = 0, kWrapLava = 1, kWrapTwos = 2, kSaturate = 3 };
enum Threshold : int64_t { kNoThreshold = 0, kInt = 1, kFloat32 = 2, kFloat64 = 3 };

inline int64_t decayed(int64_t state, int64_t keep) {
  const int64_t prod = state * keep;
  const int64_t neg = prod >> 63;  // all ones where prod < 0: sign(prod) * (|prod| >> 12)
  return ((((prod ^ neg) - neg) >> kDecayShift) ^ neg) - neg;
}

template <int64_t clip>
inline int64_t clipped(int64_t s) {
  switch (clip) {
    case kWrapLava:  // loihi.wrap_current: one wrap into (-2**23, 2**23]
      if (s > kMaxState) s -= 2 * kMaxState;
      if (s <= -kMaxState) s += 2 * kMaxState;
      return s;
    case kWrapTwos:  // loihi.wrap_signed(s, 24)
      return ((s + kMaxState) & (2 * kMaxState - 1)) - kMaxState;
    case kSaturate:  // loihi.saturate_voltage
      return s < -(kMaxState - 1) ? -(kMaxState - 1) : (s > kMaxState - 1 ? kMaxState - 1 : s);
    default:
      return s;
  }
}

template <int64_t mode>
inline bool below(int64_t s, int64_t th_int, float th_f32, double th_f64) {
  switch (mode) {
    case kInt: return s < th_int;
    case kFloat32: return static_cast<float>(s) < th_f32;
    case kFloat64: return static_cast<double>(s) < th_f64;
    default: return true;
  }
}

template <typename T>
struct View {  // element (row, t) of a strided [N, T] tensor
  T* ptr;
  int64_t row_stride, step_stride;
  T& at(int64_t row, int64_t t) const { return ptr[row * row_stride + t * step_stride]; }
};

template <typename T>
View<T> view(const torch::Tensor& x, bool time_major, int64_t rows, bool has_steps) {
  if (!has_steps) return {x.data_ptr<T>(), 1, 0};
  return time_major ? View<T>{x.data_ptr<T>(), 1, rows} : View<T>{x.data_ptr<T>(), x.size(-1), 1};
}

// Rows in parallel, in chunks of kChunk rows scanned together step by step: body(t, r0, n,
// states) with kStates arrays of n states, zero before the first step.
template <int kStates, typename Body>
void chunked_scan(int64_t rows, int64_t steps, const Body& body) {
  at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
    int64_t states[kStates][kChunk];
    for (int64_t r0 = begin; r0 < end; r0 += kChunk) {
      const int64_t n = std::min(end - r0, kChunk);
      for (auto& state : states) std::fill(state, state + n, int64_t{0});
      for (int64_t t = 0; t < steps; ++t) body(t, r0, n, states);
    }
  });
}

// fn(threshold mode as a compile-time constant)
template <typename Fn>
void with_threshold(int64_t th_mode, const Fn& fn) {
  switch (th_mode) {
    case kInt: return fn(std::integral_constant<int64_t, kInt>{});
    case kFloat32: return fn(std::integral_constant<int64_t, kFloat32>{});
    case kFloat64: return fn(std::integral_constant<int64_t, kFloat64>{});
    default: return fn(std::integral_constant<int64_t, kNoThreshold>{});
  }
}

}  // namespace

// One integrator scan over a chunk of rows (loihi.integrate). Integer input (in_t int64) is
// the drive itself; float input is the training neuron's x, the drive int64(x * 4096) in x's
// dtype, truncated. Integer output is the state before reset; float output is
// float(state) / 4096 in out_t (what torch's int64 / int gives). post: the states after reset.
template <typename in_t, typename out_t, int64_t clip, int64_t mode>
void scan(const in_t* __restrict xp, int64_t xr, int64_t xs, const int64_t* __restrict kp,
          int64_t kr, int64_t ks, out_t* __restrict pre, int64_t* __restrict post,
          bool keep_post, int64_t rows, int64_t steps, int64_t th_int, float th_f32,
          double th_f64) {
  const in_t scale = static_cast<in_t>(int64_t{1} << kDecayShift);
  const out_t unity = static_cast<out_t>(int64_t{1} << kDecayShift);
  chunked_scan<1>(rows, steps, [=](int64_t t, int64_t r0, int64_t n, auto& states) {
    int64_t* state = states[0];
    const in_t* __restrict xt = xp + t * xs + r0 * xr;
    const int64_t* __restrict kt = kp + t * ks + r0 * kr;
    out_t* __restrict pt = pre + t * rows + r0;
    int64_t* __restrict qt = keep_post ? post + t * rows + r0 : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      int64_t drive;
      if constexpr (std::is_integral_v<in_t>) {
        drive = xt[i * xr];
      } else {
        const in_t scaled = xt[i * xr] * scale;
        drive = static_cast<int64_t>(scaled);
      }
      int64_t s = clipped<clip>(decayed(state[i], kt[i * kr]) + drive);
      if constexpr (std::is_integral_v<out_t>) {
        pt[i] = s;
      } else {
        pt[i] = static_cast<out_t>(s) / unity;
      }
      s &= -static_cast<int64_t>(below<mode>(s, th_int, th_f32, th_f64));  // reset, no branch
      if (keep_post) qt[i] = s;
      state[i] = s;
    }
  });
}

// drive int64 [N, T] (time last) or [T, N] (``drive_time_major``); keep int64 [N] or, with
// ``keep_steps``, laid out as the drive is. Returns pre and post (empty unless keep_post),
// both [T, N].
std::vector<torch::Tensor> integrate_forward(const torch::Tensor& drive, bool drive_time_major,
                                             const torch::Tensor& keep, bool keep_steps,
                                             int64_t clip, int64_t th_mode, int64_t th_int,
                                             double th_float, bool keep_post) {
  TORCH_CHECK(drive.dim() == 2 && drive.scalar_type() == torch::kInt64 && drive.is_contiguous(),
              "drive: contiguous int64, 2-d");
  TORCH_CHECK(keep.scalar_type() == torch::kInt64 && keep.is_contiguous() &&
                  keep.numel() == (keep_steps ? drive.numel() : drive.size(drive_time_major)),
              "keep: contiguous int64 [N] or laid out as the drive");
  const int64_t rows = drive.size(drive_time_major ? 1 : 0);
  const int64_t steps = drive.size(drive_time_major ? 0 : 1);
  auto pre = torch::empty({steps, rows}, drive.options());
  auto post = keep_post ? torch::empty({steps, rows}, drive.options())
                        : torch::empty({0}, drive.options());
  const auto x = view<int64_t>(drive, drive_time_major, rows, true);
  const auto k = view<int64_t>(keep, drive_time_major, rows, keep_steps);
  const float th_f32 = static_cast<float>(th_float);
  const auto run = [&](auto clip_c) {
    with_threshold(th_mode, [&](auto mode_c) {
      scan<int64_t, int64_t, decltype(clip_c)::value, decltype(mode_c)::value>(
          x.ptr, x.row_stride, x.step_stride, k.ptr, k.row_stride, k.step_stride,
          pre.data_ptr<int64_t>(), keep_post ? post.data_ptr<int64_t>() : nullptr, keep_post,
          rows, steps, th_int, th_f32, th_float);
    });
  };
  switch (clip) {
    case kWrapLava: run(std::integral_constant<int64_t, kWrapLava>{}); break;
    case kWrapTwos: run(std::integral_constant<int64_t, kWrapTwos>{}); break;
    case kSaturate: run(std::integral_constant<int64_t, kSaturate>{}); break;
    default: run(std::integral_constant<int64_t, kNone>{});
  }
  return {pre, post};
}

// SLAYER's input gradient of the integrator: g[t] = a[t+1] * g[t+1] + g_out[t], g[T-1] =
// g_out[T-1]. Each product and sum rounds in the dtype torch promotes the two operands to
// (``acc_double``: float64, else float32; the caller asks torch, whose rule depends on the
// operands' dims), then g rounds to g_out's dtype. g is [T, N]. With ``post`` (int64, the
// states after reset, [T, N]), also the decay gradient's terms dd[t] = (-g[t] * p) / 4096 with
// p = post[t-1] / 4096 in g's dtype (0 at t = 0), [T, N]: loihi.py's expression, rounded
// step by step as torch rounds it.
template <typename acc_t, typename a_t, typename g_t>
void scan_backward(const View<const a_t> a, const View<const g_t> g_out, const View<g_t> g,
                   const int64_t* post, g_t* dd, int64_t rows, int64_t steps) {
  const g_t unity = static_cast<g_t>(int64_t{1} << kDecayShift);
  at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
    const auto decay_term = [&](int64_t r, int64_t t) {
      const g_t prev = t > 0 ? static_cast<g_t>(post[(t - 1) * rows + r]) / unity : g_t(0);
      const g_t term = -g.at(r, t) * prev;
      dd[t * rows + r] = term / unity;
    };
    for (int64_t r = begin; r < end; ++r) {
      g.at(r, steps - 1) = g_out.at(r, steps - 1);
      if (dd) decay_term(r, steps - 1);
    }
    for (int64_t t = steps - 2; t >= 0; --t) {
      for (int64_t r = begin; r < end; ++r) {
        const acc_t prod = static_cast<acc_t>(a.at(r, t + 1)) * static_cast<acc_t>(g.at(r, t + 1));
        const acc_t sum = prod + static_cast<acc_t>(g_out.at(r, t));
        g.at(r, t) = static_cast<g_t>(sum);
        if (dd) decay_term(r, t);
      }
    }
  });
}

// a [N] or, with ``a_steps``, laid out as g_out; g_out [N, T] or [T, N] (``g_time_major``);
// post: int64 [T, N], or empty for no decay terms. Returns g and dd (empty without post).
std::vector<torch::Tensor> integrate_backward(const torch::Tensor& a, bool a_steps,
                                              const torch::Tensor& g_out, bool g_time_major,
                                              bool acc_double, const torch::Tensor& post) {
  TORCH_CHECK(g_out.dim() == 2 && g_out.is_contiguous(), "g_out: contiguous, 2-d");
  const int64_t rows = g_out.size(g_time_major ? 1 : 0);
  const int64_t steps = g_out.size(g_time_major ? 0 : 1);
  TORCH_CHECK(a.is_contiguous() && a.numel() == (a_steps ? g_out.numel() : rows),
              "a: contiguous [N] or laid out as g_out");
  const bool terms = post.numel() > 0;
  TORCH_CHECK(!terms || (post.scalar_type() == torch::kInt64 && post.is_contiguous() &&
                         post.numel() == g_out.numel()),
              "post: contiguous int64 [T, N]");
  auto g = torch::empty({steps, rows}, g_out.options());
  auto dd = terms ? torch::empty({steps, rows}, g_out.options()) : torch::empty({0}, g_out.options());
  if (steps == 0 || rows == 0) return {g, dd};
  AT_DISPATCH_FLOATING_TYPES(g_out.scalar_type(), "integrate_backward_g", [&] {
    using g_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "integrate_backward_a", [&] {
      using a_t = scalar_t;
      const View<const a_t> av{a.data_ptr<a_t>(), 1, 0};
      const auto va = a_steps ? (g_time_major ? View<const a_t>{a.data_ptr<a_t>(), 1, rows}
                                              : View<const a_t>{a.data_ptr<a_t>(), steps, 1})
                              : av;
      const View<const g_t> vg = g_time_major ? View<const g_t>{g_out.data_ptr<g_t>(), 1, rows}
                                              : View<const g_t>{g_out.data_ptr<g_t>(), steps, 1};
      const View<g_t> out{g.data_ptr<g_t>(), 1, rows};
      const int64_t* pp = terms ? post.data_ptr<int64_t>() : nullptr;
      g_t* ddp = terms ? dd.data_ptr<g_t>() : nullptr;
      if (acc_double) {
        scan_backward<double, a_t, g_t>(va, vg, out, pp, ddp, rows, steps);
      } else {
        scan_backward<float, a_t, g_t>(va, vg, out, pp, ddp, rows, steps);
      }
    });
  });
  return {g, dd};
}

// The training neuron's forward (loihi.LeakyIntegrator): the scan with no clip from float x,
// y in ``y_double`` ? float64 : float32 (torch's default dtype), post as integrate_forward's.
std::vector<torch::Tensor> leaky_forward(const torch::Tensor& x, bool x_time_major,
                                         const torch::Tensor& keep, bool keep_steps,
                                         int64_t th_mode, int64_t th_int, double th_float,
                                         bool keep_post, bool y_double) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "x: contiguous, 2-d");
  TORCH_CHECK(keep.scalar_type() == torch::kInt64 && keep.is_contiguous() &&
                  keep.numel() == (keep_steps ? x.numel() : x.size(x_time_major)),
              "keep: contiguous int64 [N] or laid out as x");
  const int64_t rows = x.size(x_time_major ? 1 : 0);
  const int64_t steps = x.size(x_time_major ? 0 : 1);
  const auto ints = x.options().dtype(torch::kInt64);
  auto y = torch::empty({steps, rows}, x.options().dtype(y_double ? torch::kDouble : torch::kFloat));
  auto post = keep_post ? torch::empty({steps, rows}, ints) : torch::empty({0}, ints);
  const int64_t xr = x_time_major ? 1 : steps, xs = x_time_major ? rows : 1;
  const int64_t kr = keep_steps ? xr : 1, ks = keep_steps ? xs : 0;
  const float th_f32 = static_cast<float>(th_float);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leaky_forward", [&] {
    using x_t = scalar_t;
    const auto run = [&](auto y_tag) {
      using y_t = decltype(y_tag);
      with_threshold(th_mode, [&](auto mode_c) {
        scan<x_t, y_t, kNone, decltype(mode_c)::value>(
            x.data_ptr<x_t>(), xr, xs, keep.data_ptr<int64_t>(), kr, ks, y.data_ptr<y_t>(),
            keep_post ? post.data_ptr<int64_t>() : nullptr, keep_post, rows, steps, th_int,
            th_f32, th_float);
      });
    };
    if (y_double) {
      run(double{});
    } else {
      run(float{});
    }
  });
  return {y, post};
}

// One CUBA neuron layer on the integer datapath (loihi.cuba), both scans in one pass:
//   q = wrap(drive, synaptic_bits) (bits 0: none); u = clip_u(decay(u, du) + q);
//   v = clip_v(decay(v, dv) + u); s = v > vth; v = 0 where s.
// clip_u: kNone, kWrapLava or kWrapTwos; saturate_v: the voltage's 24-bit saturation. drive
// int64 [N, T] or [T, N] (``time_major``); keep_u, keep_v int64 [N] or laid out as the drive
// (``u_steps``, ``v_steps``). Returns u, v (before reset) and s (bool), each [T, N].
template <int64_t clip_u>
void scan_cuba(const View<int64_t> x, const View<int64_t> ku, const View<int64_t> kv,
               int64_t* __restrict u_out, int64_t* __restrict v_out, bool* __restrict s_out,
               int64_t rows, int64_t steps, int64_t synaptic_bits, bool saturate_v,
               int64_t vth) {
  const int64_t* __restrict xp = x.ptr;
  const int64_t* __restrict up = ku.ptr;
  const int64_t* __restrict vp = kv.ptr;
  const int64_t xr = x.row_stride, xs = x.step_stride;
  const int64_t ur = ku.row_stride, us = ku.step_stride, vr = kv.row_stride, vs = kv.step_stride;
  const int64_t half = synaptic_bits > 0 ? int64_t{1} << (synaptic_bits - 1) : 0;
  const int64_t mask = synaptic_bits > 0 ? (int64_t{1} << synaptic_bits) - 1 : 0;
  chunked_scan<2>(rows, steps, [=](int64_t t, int64_t r0, int64_t n, auto& states) {
    int64_t* u_state = states[0];
    int64_t* v_state = states[1];
    const int64_t* __restrict xt = xp + t * xs + r0 * xr;
    const int64_t* __restrict kut = up + t * us + r0 * ur;
    const int64_t* __restrict kvt = vp + t * vs + r0 * vr;
    int64_t* __restrict ut = u_out + t * rows + r0;
    int64_t* __restrict vt = v_out + t * rows + r0;
    bool* __restrict st = s_out + t * rows + r0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t q = xt[i * xr];
      if (synaptic_bits > 0) q = ((q + half) & mask) - half;  // loihi.wrap_signed
      const int64_t u = clipped<clip_u>(decayed(u_state[i], kut[i * ur]) + q);
      int64_t v = decayed(v_state[i], kvt[i * vr]) + u;
      if (saturate_v) v = clipped<kSaturate>(v);
      ut[i] = u;
      vt[i] = v;
      const bool spike = v > vth;
      st[i] = spike;
      u_state[i] = u;
      v_state[i] = v & -static_cast<int64_t>(!spike);  // reset, no branch
    }
  });
}

std::vector<torch::Tensor> cuba_forward(const torch::Tensor& drive, bool time_major,
                                        const torch::Tensor& keep_u, bool u_steps,
                                        const torch::Tensor& keep_v, bool v_steps, int64_t clip_u,
                                        int64_t synaptic_bits, bool saturate_v, int64_t vth) {
  TORCH_CHECK(drive.dim() == 2 && drive.scalar_type() == torch::kInt64 && drive.is_contiguous(),
              "drive: contiguous int64, 2-d");
  const int64_t rows = drive.size(time_major ? 1 : 0);
  const int64_t steps = drive.size(time_major ? 0 : 1);
  for (const auto* k : {&keep_u, &keep_v}) {
    const bool per_step = k == &keep_u ? u_steps : v_steps;
    TORCH_CHECK(k->scalar_type() == torch::kInt64 && k->is_contiguous() &&
                    k->numel() == (per_step ? drive.numel() : rows),
                "keep: contiguous int64 [N] or laid out as the drive");
  }
  TORCH_CHECK(synaptic_bits >= 0 && synaptic_bits < 63, "synaptic_bits: 0 (none) .. 62");
  auto u = torch::empty({steps, rows}, drive.options());
  auto v = torch::empty({steps, rows}, drive.options());
  auto s = torch::empty({steps, rows}, drive.options().dtype(torch::kBool));
  const auto x = view<int64_t>(drive, time_major, rows, true);
  const auto ku = view<int64_t>(keep_u, time_major, rows, u_steps);
  const auto kv = view<int64_t>(keep_v, time_major, rows, v_steps);
  const auto run = [&](auto clip_c) {
    scan_cuba<decltype(clip_c)::value>(x, ku, kv, u.data_ptr<int64_t>(), v.data_ptr<int64_t>(),
                                       s.data_ptr<bool>(), rows, steps, synaptic_bits, saturate_v,
                                       vth);
  };
  switch (clip_u) {
    case kWrapLava: run(std::integral_constant<int64_t, kWrapLava>{}); break;
    case kWrapTwos: run(std::integral_constant<int64_t, kWrapTwos>{}); break;
    default: run(std::integral_constant<int64_t, kNone>{});
  }
  return {u, v, s};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("integrate_forward", &integrate_forward, "integer leaky integrator, forward");
  m.def("integrate_backward", &integrate_backward,
        "integrator input gradient (SLAYER's) and the decay gradient's terms");
  m.def("leaky_forward", &leaky_forward, "the training neuron's integrator, forward");
  m.def("cuba_forward", &cuba_forward, "a CUBA layer on the integer datapath, both scans");
}
