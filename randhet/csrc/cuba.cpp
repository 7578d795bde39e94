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
#include "randhet.h"

#include <ATen/ExpandUtils.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>

namespace randhet {

namespace {

constexpr int64_t kDecayShift = 12;
constexpr int64_t kMaxState = int64_t{1} << 23;
constexpr int64_t kGrain = 256;  // rows per parallel task
// rows scanned together, step by step: a 2 KB run of each [T, N] buffer per step (64 rows,
// 256 B runs, measured up to 1.8x slower, most on large batches)
constexpr int64_t kChunk = 512;

// 1 / x where x is a power of two (dividing by x and multiplying by 1 / x give the same,
// correctly rounded, value), else 0.
template <typename T>
T power_of_two_inverse(T x) {
  int exponent = 0;
  return x > 0 && std::frexp(x, &exponent) == T(0.5) ? T(1) / x : T(0);
}

// What the training neuron keeps for its surrogate: the voltage y itself, or (``on``) SLAYER's
// exponent -|y - th| / tau in y's dtype, rounded as SLAYER's ops round it. The forward writes
// the exponent (the backward then takes its exponential without a pass of its own); the
// pybind backward computes it from a voltage.
struct SurrogateArg {
  bool on = false;
  double th = 0.0, tau = 1.0;
  template <typename T>
  T operator()(T y) const {
    if (!on) return y;
    const T negabs = -std::abs(y - static_cast<T>(th));
    return negabs / static_cast<T>(tau);
  }
};

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

// keep_u, keep_v: contiguous int64, one per row or (``*_steps``) laid out as the input of
// ``numel`` elements
void check_keeps(const torch::Tensor& keep_u, bool u_steps, const torch::Tensor& keep_v,
                 bool v_steps, int64_t numel, int64_t rows) {
  for (const auto* k : {&keep_u, &keep_v}) {
    const bool per_step = k == &keep_u ? u_steps : v_steps;
    TORCH_CHECK(k->scalar_type() == torch::kInt64 && k->is_contiguous() &&
                    k->numel() == (per_step ? numel : rows),
                "keep: contiguous int64 [N] or laid out as the input");
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
  const out_t inv_unity = out_t(1) / static_cast<out_t>(int64_t{1} << kDecayShift);  // exact
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
        pt[i] = static_cast<out_t>(s) * inv_unity;
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
  const g_t inv_unity = g_t(1) / static_cast<g_t>(int64_t{1} << kDecayShift);  // exact
  at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
    const auto decay_term = [&](int64_t r, int64_t t) {
      const g_t prev = t > 0 ? static_cast<g_t>(post[(t - 1) * rows + r]) * inv_unity : g_t(0);
      const g_t term = -g.at(r, t) * prev;
      dd[t * rows + r] = term * inv_unity;
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
  check_keeps(keep_u, u_steps, keep_v, v_steps, drive.numel(), rows);
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

// The training neuron in one pass (loihi.cuba_spikes): the drive floored to Loihi's grid
// (``grid`` > 0: x = floor(z * grid) / grid, the synapse's integer output), LeakyIntegrator
// on the current (no threshold), LeakyIntegrator on the voltage (reset where not V <
// th_reset) and SLAYER's spike function, each value rounded as those ops round it:
//   u = decay(u, ku) + int64(x * 4096);        yu = y_t(u) / 4096
//   v = decay(v, kv) + int64(yu * 4096);       yv = y_t(v) / 4096
//   s = yv >= th_spike;  v = 0 where not (v < th_reset)
// x [N, T] or [T, N] (``x_time_major``), read through its View (a step stride 0: one drive
// for every step); keep_u, keep_v int64 [N] or laid out as x. Returns the spikes (y_t, row and
// step strides sr, ss: laid out as x, or [T, N] for a repeated drive; what the next synapse
// reads without a copy), yv (y_t, [T, N]; null: not written) and, with ``keep_post``, the
// states after reset as the decay gradient reads them (post_u, post_v, [T, N]):
// y_t(state) / 4096, SLAYER units rounded to y_t.
template <typename x_t, typename y_t, int64_t mode>
void scan_neuron(const View<const x_t> x, const View<const int64_t> ku,
                 const View<const int64_t> kv, y_t* __restrict spikes, int64_t sr, int64_t ss,
                 y_t* __restrict yv, y_t* __restrict post_u, y_t* __restrict post_v,
                 bool keep_post, int64_t rows, int64_t steps, int64_t th_int, float th_f32,
                 double th_f64, y_t th_spike, x_t grid, SurrogateArg arg) {
  const x_t x_unity = static_cast<x_t>(int64_t{1} << kDecayShift);
  const y_t y_unity = static_cast<y_t>(int64_t{1} << kDecayShift);
  const y_t y_inv = y_t(1) / y_unity;  // exact: a power of two
  const x_t* __restrict xp = x.ptr;
  const int64_t* __restrict kup = ku.ptr;
  const int64_t* __restrict kvp = kv.ptr;
  const int64_t xr = x.row_stride, xs = x.step_stride, ur = ku.row_stride, us = ku.step_stride,
                vr = kv.row_stride, vs = kv.step_stride;
  chunked_scan<2>(rows, steps, [=](int64_t t, int64_t r0, int64_t n, auto& states) {
    int64_t* __restrict u_state = states[0];
    int64_t* __restrict v_state = states[1];
    const x_t* __restrict xt = xp + t * xs + r0 * xr;
    const int64_t* __restrict kut = kup + t * us + r0 * ur;
    const int64_t* __restrict kvt = kvp + t * vs + r0 * vr;
    y_t* __restrict st = spikes + t * ss + r0 * sr;
    y_t* __restrict yt = yv ? yv + t * rows + r0 : nullptr;
    y_t* __restrict put = keep_post ? post_u + t * rows + r0 : nullptr;
    y_t* __restrict pvt = keep_post ? post_v + t * rows + r0 : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      x_t drive = xt[i * xr];
      if (grid > 0) drive = std::floor(drive * grid) / grid;  // floor_to_drive_grid's ops
      const int64_t u = decayed(u_state[i], kut[i * ur]) + static_cast<int64_t>(drive * x_unity);
      const y_t yu = static_cast<y_t>(u) * y_inv;
      int64_t v = decayed(v_state[i], kvt[i * vr]) + static_cast<int64_t>(yu * y_unity);
      const y_t y = static_cast<y_t>(v) * y_inv;
      if (yt) yt[i] = arg(y);
      st[i * sr] = y >= th_spike ? y_t(1) : y_t(0);
      v &= -static_cast<int64_t>(below<mode>(v, th_int, th_f32, th_f64));  // reset, no branch
      if (keep_post) {
        put[i] = static_cast<y_t>(u) * y_inv;
        pvt[i] = static_cast<y_t>(v) * y_inv;
      }
      u_state[i] = u;
      v_state[i] = v;
    }
  });
}

// (4096 - int64(d)) / 4096 for a decay d, as a double (exact), and whether d lies in 0..4096
// (the keeps the vectorized scan takes: 0..1)
// (int64(d) is trunc(d) there, and 4096 - trunc(d) is exact in a double: the lanes vectorize)
inline double scaled_keep(float d, int& outside) {
  outside |= !((d >= 0.0f) & (d < 4097.0f));  // also NaN
  return (4096.0 - std::trunc(static_cast<double>(d))) * 0x1p-12;
}

constexpr double kExactState = 2199023255552.0;  // 2**41: state * keep (<= 2**12) stays exact

// scan_neuron for float32 x and y, on rows [r0, r0 + n), with the integers
// held in doubles so that the loop over the rows vectorizes: trunc(s * (k / 4096)) is
// sign(p) * (|p| >> 12) for p = s * k, exact while |s| < 2**41 and 0 <= k <= 4096 (s * k / 4096
// is then one exact product, rounded as s * k then scaled: a power of two); every conversion
// rounds as scan_neuron's does, and the steps it takes out are exact: int64(yu * 4096) for
// yu = float(u) / 4096 is float(u), an integer; int64(x * 4096) for x on a grid of 1/grid
// (grid a power of two up to 4096) is x * 4096. Returns false as soon as a state leaves that
// range (or is NaN), or a decay is outside 0..4096: the caller then runs scan_neuron for
// everything. th_double: the reset threshold for kInt and kFloat64 (+inf for none), th_f32 for
// kFloat32. post_u, post_v: the states after reset as scan_neuron writes them, [T, N], or null.
// The vectorized scan's thresholds and grid, from one NeuronOptions.
struct ChunkF32 {
  bool f32_threshold;  // reset compared in float32 (th_f32), else in double (th_double)
  float th_f32;
  double th_double;
  float th_spike;
  float grid;
  SurrogateArg arg;
};

RANDHET_CLONES
bool neuron_chunk_f32(const View<const float> xv, const View<const float> duv,
                      const View<const float> dvv, const View<float> sv_out, float* yv,
                      float* post_u, float* post_v, int64_t rows, int64_t steps, int64_t r0,
                      int64_t n, const ChunkF32& c) {
  const float* x = xv.ptr;
  const float* du = duv.ptr;
  const float* dv = dvv.ptr;
  float* spikes = sv_out.ptr;
  const int64_t xr = xv.row_stride, xs = xv.step_stride, ur = duv.row_stride,
                us = duv.step_stride, vr = dvv.row_stride, vs = dvv.step_stride,
                sr = sv_out.row_stride, ss = sv_out.step_stride;
  const bool f32_threshold = c.f32_threshold;
  const float th_f32 = c.th_f32, th_spike = c.th_spike, grid = c.grid;
  const double th_double = c.th_double;
  const SurrogateArg arg = c.arg;
  double su[kChunk] = {}, sv[kChunk] = {}, kuc[kChunk], kvc[kChunk], drive[kChunk];
  float xin[kChunk], sp[kChunk], yc[kChunk];
  const float grid_inverse = power_of_two_inverse(grid);
  const bool on_grid = grid > 0 && grid <= 4096.0f;  // x * 4096 is then an integer
  const float th_off = f32_threshold ? th_f32 : std::numeric_limits<float>::infinity();
  const double th_on = f32_threshold ? std::numeric_limits<double>::infinity() : th_double;
  for (int64_t t = 0; t < steps; ++t) {
    // time major (xr == 1): the rows are contiguous and read in place; else gathered
    const float* __restrict xt = x + r0 + t * xs;
    if (xr != 1) {
      for (int64_t i = 0; i < n; ++i) xin[i] = x[(r0 + i) * xr + t * xs];
      xt = xin;
    }
    if (on_grid) {  // x / grid is x * (1 / grid): grid is a power of two
      for (int64_t i = 0; i < n; ++i) {
        drive[i] = static_cast<double>((std::floor(xt[i] * grid) * grid_inverse) * 4096.0f);
      }
    } else if (grid > 0) {
      for (int64_t i = 0; i < n; ++i) {
        const float xg = std::floor(xt[i] * grid) * grid_inverse;
        drive[i] = std::trunc(static_cast<double>(xg * 4096.0f));
      }
    } else {
      for (int64_t i = 0; i < n; ++i) drive[i] = std::trunc(static_cast<double>(xt[i] * 4096.0f));
    }
    int outside = 0;
    if (t == 0 || us != 0) {  // a decay with no time axis is read once
      for (int64_t i = 0; i < n; ++i) kuc[i] = scaled_keep(du[(r0 + i) * ur + t * us], outside);
    }
    if (t == 0 || vs != 0) {
      for (int64_t i = 0; i < n; ++i) kvc[i] = scaled_keep(dv[(r0 + i) * vr + t * vs], outside);
    }
    if (outside) return false;
    // written in place where they are contiguous (a chunk that turns out inexact is written
    // over whole by the caller's int64 scan), else through the lanes yc and sp
    float* __restrict yt = yv ? yv + t * rows + r0 : yc;
    float* __restrict st = sr == 1 ? spikes + r0 + t * ss : sp;
    int inexact = 0;
    for (int64_t i = 0; i < n; ++i) {  // one row per lane
      const double u = std::trunc(su[i] * kuc[i]) + drive[i];
      const float fu = static_cast<float>(u);  // yu * 4096 for yu = float(u) / 4096
      const double v = std::trunc(sv[i] * kvc[i]) + static_cast<double>(fu);
      const float vf = static_cast<float>(v);
      const float y = vf * 0x1p-12f;
      yt[i] = arg(y);
      st[i] = y >= th_spike ? 1.0f : 0.0f;
      // below the reset threshold: one of the two comparisons is always true
      const bool below = (vf < th_off) & (v < th_on);
      inexact |= !((std::abs(u) < kExactState) & (std::abs(v) < kExactState));
      su[i] = u;
      sv[i] = below ? v : 0.0;
    }
    if (inexact) return false;
    if (sr != 1) {
      for (int64_t i = 0; i < n; ++i) spikes[(r0 + i) * sr + t * ss] = sp[i];
    }
    if (post_u) {  // the integer (exact in the double) rounded to float, as from int64
      float* __restrict put = post_u + t * rows + r0;
      float* __restrict pvt = post_v + t * rows + r0;
      for (int64_t i = 0; i < n; ++i) put[i] = static_cast<float>(su[i]) * 0x1p-12f;
      for (int64_t i = 0; i < n; ++i) pvt[i] = static_cast<float>(sv[i]) * 0x1p-12f;
    }
  }
  return true;
}

// d_u, d_v: the decays (integer valued, floating point; x's dtype where they come from the
// training neuron), [N] or laid out as x (``*_steps``); the scans keep 4096 - int64(d).
// ``keep_y``: return yv (what the backward's surrogate reads; with ``arg.on`` its exponent,
// SurrogateArg), else an empty tensor. x is contiguous, or time major with step stride 0 (one
// drive for every step: direct encoding), whose spikes come out [T, N] contiguous; other
// spikes are laid out as x.
std::vector<torch::Tensor> neuron_forward_impl(const torch::Tensor& x, bool x_time_major,
                                               const torch::Tensor& d_u, bool u_steps,
                                               const torch::Tensor& d_v, bool v_steps,
                                               const NeuronOptions& o, bool keep_post,
                                               bool keep_y, SurrogateArg arg) {
  const bool repeated = x.dim() == 2 && x_time_major && x.stride(0) == 0 && x.stride(1) == 1;
  TORCH_CHECK(x.dim() == 2 && (x.is_contiguous() || repeated),
              "x: 2-d, contiguous or time major with step stride 0");
  TORCH_CHECK(o.grid == 0 || power_of_two_inverse(static_cast<double>(o.grid)) > 0,
              "grid: 0 or a power of two");
  const int64_t rows = x.size(x_time_major ? 1 : 0);
  const int64_t steps = x.size(x_time_major ? 0 : 1);
  for (const auto* d : {&d_u, &d_v}) {
    const bool per_step = d == &d_u ? u_steps : v_steps;
    TORCH_CHECK(d->is_floating_point() && d->is_contiguous() &&
                    d->numel() == (per_step ? x.numel() : rows),
                "decays: contiguous, floating point, [N] or laid out as x");
  }
  const auto floats = x.options().dtype(o.y_double ? torch::kDouble : torch::kFloat);
  auto spikes = repeated ? torch::empty({steps, rows}, floats) : torch::empty_like(x, floats);
  const int64_t xr = x_time_major ? 1 : steps, xs = x_time_major ? x.stride(0) : 1;
  const int64_t sr = x_time_major ? 1 : steps, ss = x_time_major ? rows : 1;  // the spikes'
  auto yv = keep_y ? torch::empty({steps, rows}, floats) : torch::empty({0}, floats);
  auto post_u = keep_post ? torch::empty({steps, rows}, floats) : torch::empty({0}, floats);
  auto post_v = keep_post ? torch::empty({steps, rows}, floats) : torch::empty({0}, floats);
  const int64_t ur = u_steps ? (x_time_major ? 1 : steps) : 1;  // the decays' strides
  const int64_t us = u_steps ? (x_time_major ? rows : 1) : 0;
  const int64_t vr = v_steps ? (x_time_major ? 1 : steps) : 1;
  const int64_t vs = v_steps ? (x_time_major ? rows : 1) : 0;
  const float th_f32 = static_cast<float>(o.th_float);
  if (x.scalar_type() == torch::kFloat && !o.y_double && d_u.scalar_type() == torch::kFloat &&
      d_v.scalar_type() == torch::kFloat &&
      (o.th_mode != kInt || std::abs(o.th_int) < (int64_t{1} << 52))) {  // the vectorized path
    const ChunkF32 c{o.th_mode == kFloat32, th_f32,
                     o.th_mode == kInt       ? static_cast<double>(o.th_int)
                     : o.th_mode == kFloat64 ? o.th_float
                                             : std::numeric_limits<double>::infinity(),
                     static_cast<float>(o.th_spike), static_cast<float>(o.grid), arg};
    const View<const float> vx{x.data_ptr<float>(), xr, xs};
    const View<const float> vu{d_u.data_ptr<float>(), ur, us};
    const View<const float> vv{d_v.data_ptr<float>(), vr, vs};
    const View<float> vsp{spikes.data_ptr<float>(), sr, ss};
    std::atomic<bool> exact{true};
    at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r0 = begin; r0 < end && exact.load(std::memory_order_relaxed); r0 += kChunk) {
        if (!neuron_chunk_f32(vx, vu, vv, vsp, keep_y ? yv.data_ptr<float>() : nullptr,
                              keep_post ? post_u.data_ptr<float>() : nullptr,
                              keep_post ? post_v.data_ptr<float>() : nullptr, rows, steps, r0,
                              std::min(end - r0, kChunk), c)) {
          exact.store(false, std::memory_order_relaxed);
        }
      }
    });
    if (exact.load()) return {spikes, yv, post_u, post_v};
  }
  // the loop's ops: keep = 4096 - int64(d)
  const auto keep_u = (int64_t{1} << kDecayShift) - d_u.to(torch::kInt64);
  const auto keep_v = (int64_t{1} << kDecayShift) - d_v.to(torch::kInt64);
  const View<const int64_t> cku{keep_u.data_ptr<int64_t>(), ur, us};
  const View<const int64_t> ckv{keep_v.data_ptr<int64_t>(), vr, vs};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "neuron_forward", [&] {
    using x_t = scalar_t;
    const View<const x_t> vx{x.data_ptr<x_t>(), xr, xs};
    const auto run = [&](auto y_tag) {
      using y_t = decltype(y_tag);
      with_threshold(o.th_mode, [&](auto mode_c) {
        scan_neuron<x_t, y_t, decltype(mode_c)::value>(
            vx, cku, ckv, spikes.data_ptr<y_t>(), sr, ss,
            keep_y ? yv.data_ptr<y_t>() : nullptr,
            keep_post ? post_u.data_ptr<y_t>() : nullptr,
            keep_post ? post_v.data_ptr<y_t>() : nullptr, keep_post, rows, steps, o.th_int,
            th_f32, o.th_float, static_cast<y_t>(o.th_spike), static_cast<x_t>(o.grid), arg);
      });
    };
    if (o.y_double) {
      run(double{});
    } else {
      run(float{});
    }
  });
  return {spikes, yv, post_u, post_v};
}

// neuron_forward_impl keeping y itself, from the flat arguments
std::vector<torch::Tensor> neuron_forward(const torch::Tensor& x, bool x_time_major,
                                          const torch::Tensor& d_u, bool u_steps,
                                          const torch::Tensor& d_v, bool v_steps,
                                          int64_t th_mode, int64_t th_int, double th_float,
                                          double th_spike, int64_t grid, bool keep_post,
                                          bool keep_y, bool y_double) {
  const NeuronOptions o{th_mode, th_int, th_float, th_spike, grid,
                        /*surrogate=*/false, /*tau=*/1.0, /*scale=*/0.0,
                        /*acc_double=*/false, y_double};
  return neuron_forward_impl(x, x_time_major, d_u, u_steps, d_v, v_steps, o, keep_post, keep_y,
                             {});
}

// The integrator's gain a = 1 - d / 4096 for a decay d, in the accumulation dtype: the loop's
// ops, (1 - d / 4096) in d's dtype, then widened or narrowed to acc_t
template <typename acc_t, typename d_t>
inline acc_t gain(d_t d) {
  return static_cast<acc_t>(d_t(1) - d / static_cast<d_t>(int64_t{1} << kDecayShift));
}

// The training neuron's backward in one pass over time, as the unfused ops round it:
//   gin = (k * exp(-|yv - th| / tau)) * g_s   SLAYER's surrogate, k = scale / 2 / tau, in g_t
//                                             (gin = g_s: the straight-through estimator)
//   gv[t] = a_v[t+1] * gv[t+1] + gin[t]      the voltage integrator's input gradient
//   gu[t] = a_u[t+1] * gu[t+1] + gv[t]       the current integrator's: dL/dx
//   (gu / grid) * grid                       the grid floor's straight-through (grid > 0)
// the products and sums in acc_t (the dtype torch promotes a and g to), each g rounded to
// g_t; with post_u / post_v, also the decay gradients' terms as scan_backward writes them.
// The exponential runs as torch's exp over a [T, N] buffer: the bits torch gives the same
// tensor (its vectorized exp and its scalar one for a tail differ in the last bit).
// One chunk of rows [r0, r0 + n) of the backward, gathered into contiguous lanes per step so
// that the loops over the rows vectorize (same operations, same order per element).
template <typename acc_t, typename g_t, typename d_t>
RANDHET_CLONES void neuron_backward_chunk(
    const View<const g_t> gsv, const g_t* e, g_t k, const View<const d_t> duv,
    const View<const d_t> dvv, const g_t* post_u, const g_t* post_v, g_t* gx, g_t grid,
    g_t* ddu, g_t* ddv, int64_t rows, int64_t steps, int64_t r0, int64_t n) {
  // gx is laid out as g_s (gsv's strides)
  const g_t* gs = gsv.ptr;
  const d_t* du = duv.ptr;
  const d_t* dv = dvv.ptr;
  const int64_t gr = gsv.row_stride, gt = gsv.step_stride, dur = duv.row_stride,
                dus = duv.step_stride, dvr = dvv.row_stride, dvs = dvv.step_stride;
  const g_t inv_unity = g_t(1) / static_cast<g_t>(int64_t{1} << kDecayShift);  // exact
  const g_t grid_inverse = power_of_two_inverse(grid);
  g_t gv[kChunk], gu[kChunk], gin[kChunk], out[kChunk];
  acc_t auc[kChunk], avc[kChunk];
  for (int64_t t = steps - 1; t >= 0; --t) {
    // time major (gr == 1): the rows are contiguous, read and written in place; else
    // gathered into and scattered from the lanes gin and out
    const g_t* __restrict g_in = gs + r0 + t * gt;
    if (gr != 1) {
      for (int64_t i = 0; i < n; ++i) gin[i] = gs[(r0 + i) * gr + t * gt];
      g_in = gin;
    }
    if (e) {
      const g_t* __restrict et = e + t * rows + r0;
      for (int64_t i = 0; i < n; ++i) gin[i] = (k * et[i]) * g_in[i];
      g_in = gin;
    }
    if (t == steps - 1) {
      for (int64_t i = 0; i < n; ++i) gv[i] = gu[i] = g_in[i];
    } else {
      if (t == steps - 2 || dus != 0) {  // a gain with no time axis is read once
        for (int64_t i = 0; i < n; ++i) auc[i] = gain<acc_t>(du[(r0 + i) * dur + (t + 1) * dus]);
      }
      if (t == steps - 2 || dvs != 0) {
        for (int64_t i = 0; i < n; ++i) avc[i] = gain<acc_t>(dv[(r0 + i) * dvr + (t + 1) * dvs]);
      }
      for (int64_t i = 0; i < n; ++i) {
        gv[i] = static_cast<g_t>(avc[i] * static_cast<acc_t>(gv[i]) +
                                 static_cast<acc_t>(g_in[i]));
        gu[i] = static_cast<g_t>(auc[i] * static_cast<acc_t>(gu[i]) +
                                 static_cast<acc_t>(gv[i]));
      }
    }
    g_t* __restrict g_out = gr == 1 ? gx + r0 + t * gt : out;
    if (grid > 0) {
      for (int64_t i = 0; i < n; ++i) g_out[i] = (gu[i] * grid_inverse) * grid;
    } else {
      for (int64_t i = 0; i < n; ++i) g_out[i] = gu[i];
    }
    if (gr != 1) {
      for (int64_t i = 0; i < n; ++i) gx[(r0 + i) * gr + t * gt] = out[i];
    }
    if (ddu) {
      g_t* __restrict dut = ddu + t * rows + r0;
      g_t* __restrict dvt = ddv + t * rows + r0;
      for (int64_t i = 0; i < n; ++i) {
        const g_t pu = t > 0 ? post_u[(t - 1) * rows + r0 + i] : g_t(0);
        const g_t pv = t > 0 ? post_v[(t - 1) * rows + r0 + i] : g_t(0);
        dut[i] = (-gu[i] * pu) * inv_unity;
        dvt[i] = (-gv[i] * pv) * inv_unity;
      }
    }
  }
}

template <typename acc_t, typename g_t, typename d_t>
void scan_neuron_backward(const View<const g_t> gs, const g_t* e, g_t k,
                          const View<const d_t> du, const View<const d_t> dv,
                          const g_t* post_u, const g_t* post_v, const View<g_t> gx,
                          g_t grid, g_t* ddu, g_t* ddv, int64_t rows, int64_t steps) {
  at::parallel_for(0, rows, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r0 = begin; r0 < end; r0 += kChunk) {
      neuron_backward_chunk<acc_t, g_t, d_t>(gs, e, k, du, dv, post_u, post_v, gx.ptr, grid,
                                             ddu, ddv, rows, steps, r0,
                                             std::min(end - r0, kChunk));
    }
  });
}

// g_s [N, T] or [T, N] (``g_time_major``); yv [T, N] (g_s's dtype); ``surrogate``: SLAYER's
// (th, tau, scale), else the straight-through estimator; ``grid``: the forward's (0: none);
// d_u, d_v: the forward's decays, [N] or laid out as g_s, whose gains 1 - d / 4096 multiply the
// gradient in float64 (``acc_double``) or float32 (the dtype torch promotes the two to);
// post_u, post_v: the forward's states after reset (g_s's dtype, [T, N], as neuron_forward
// writes them) or empty (no decay terms); ``yv_is_exp``: yv holds the surrogate's exponential
// already (exp of the forward's SurrogateArg), not the voltage. Returns dL/dx (laid out as
// g_s) and the decay terms of u and v ([T, N], empty without post).
std::vector<torch::Tensor> neuron_backward_impl(const torch::Tensor& g_s, bool g_time_major,
                                                const torch::Tensor& yv,
                                                const torch::Tensor& d_u, bool u_steps,
                                                const torch::Tensor& d_v, bool v_steps,
                                                const NeuronOptions& o,
                                                const torch::Tensor& post_u,
                                                const torch::Tensor& post_v, bool yv_is_exp) {
  const bool surrogate = o.surrogate, acc_double = o.acc_double;
  const double th = o.th_spike, tau = o.tau, scale = o.scale;
  const int64_t grid = o.grid;
  TORCH_CHECK(g_s.dim() == 2 && g_s.is_contiguous(), "g_s: contiguous, 2-d");
  TORCH_CHECK(grid == 0 || power_of_two_inverse(static_cast<double>(grid)) > 0,
              "grid: 0 or a power of two");
  const int64_t rows = g_s.size(g_time_major ? 1 : 0);
  const int64_t steps = g_s.size(g_time_major ? 0 : 1);
  TORCH_CHECK(yv.scalar_type() == g_s.scalar_type() && yv.is_contiguous() &&
                  yv.numel() == g_s.numel(), "yv: contiguous [T, N] in g_s's dtype");
  // the decays, whose gains (gain()) the chunks compute as they read them
  TORCH_CHECK(d_u.scalar_type() == d_v.scalar_type() && d_u.is_floating_point(),
              "decays: floating point, one dtype");
  for (const auto* d : {&d_u, &d_v}) {
    const bool per_step = d == &d_u ? u_steps : v_steps;
    TORCH_CHECK(d->is_contiguous() && d->numel() == (per_step ? g_s.numel() : rows),
                "decays: contiguous [N] or laid out as g_s");
  }
  const bool terms = post_u.numel() > 0;
  TORCH_CHECK(!terms || (post_u.scalar_type() == g_s.scalar_type() && post_u.is_contiguous() &&
                         post_u.numel() == g_s.numel() &&
                         post_v.scalar_type() == g_s.scalar_type() &&
                         post_v.is_contiguous() && post_v.numel() == g_s.numel()),
              "post_u, post_v: contiguous [T, N] in g_s's dtype");
  auto gx = torch::empty_like(g_s);
  auto ddu = terms ? torch::empty({steps, rows}, g_s.options()) : torch::empty({0}, g_s.options());
  auto ddv = terms ? torch::empty({steps, rows}, g_s.options()) : torch::empty({0}, g_s.options());
  if (steps == 0 || rows == 0) return {gx, ddu, ddv};
  AT_DISPATCH_FLOATING_TYPES(g_s.scalar_type(), "neuron_backward_g", [&] {
    using g_t = scalar_t;
    torch::Tensor e;
    g_t k = 0;
    if (surrogate) {  // SLAYER's tensors: threshold, tau and scale in g_t, 0-d
      const g_t tau_g = static_cast<g_t>(tau);
      k = static_cast<g_t>(static_cast<g_t>(scale) / g_t(2)) / tau_g;
    }
    if (surrogate && yv_is_exp) {
      e = yv;
    } else if (surrogate) {
      SurrogateArg arg;  // the forward's exponent, from the voltage
      arg.on = true;
      arg.th = th;
      arg.tau = tau;
      e = torch::empty({steps, rows}, g_s.options());
      const g_t* y = yv.data_ptr<g_t>();
      g_t* ep = e.data_ptr<g_t>();
      at::parallel_for(0, steps * rows, kGrain * 16, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          ep[j] = arg(y[j]);
        }
      });
      e.exp_();
    }
    const View<const g_t> vg = g_time_major ? View<const g_t>{g_s.data_ptr<g_t>(), 1, rows}
                                            : View<const g_t>{g_s.data_ptr<g_t>(), steps, 1};
    AT_DISPATCH_FLOATING_TYPES(d_u.scalar_type(), "neuron_backward_d", [&] {
      using d_t = scalar_t;
      const auto d_view = [&](const torch::Tensor& d, bool per_step) {
        if (!per_step) return View<const d_t>{d.data_ptr<d_t>(), 1, 0};
        return g_time_major ? View<const d_t>{d.data_ptr<d_t>(), 1, rows}
                            : View<const d_t>{d.data_ptr<d_t>(), steps, 1};
      };
      const auto run = [&](auto acc_tag) {
        scan_neuron_backward<decltype(acc_tag), g_t, d_t>(
            vg, surrogate ? e.data_ptr<g_t>() : nullptr, k, d_view(d_u, u_steps),
            d_view(d_v, v_steps), terms ? post_u.data_ptr<g_t>() : nullptr,
            terms ? post_v.data_ptr<g_t>() : nullptr,
            View<g_t>{gx.data_ptr<g_t>(), vg.row_stride, vg.step_stride},
            static_cast<g_t>(grid), terms ? ddu.data_ptr<g_t>() : nullptr,
            terms ? ddv.data_ptr<g_t>() : nullptr, rows, steps);
      };
      if (acc_double) {
        run(double{});
      } else {
        run(float{});
      }
    });
  });
  return {gx, ddu, ddv};
}

// neuron_backward_impl reading the voltage, from the flat arguments
std::vector<torch::Tensor> neuron_backward(const torch::Tensor& g_s, bool g_time_major,
                                           const torch::Tensor& yv, bool surrogate, double th,
                                           double tau, double scale, int64_t grid,
                                           const torch::Tensor& d_u, bool u_steps,
                                           const torch::Tensor& d_v, bool v_steps,
                                           bool acc_double, const torch::Tensor& post_u,
                                           const torch::Tensor& post_v) {
  const NeuronOptions o{/*th_mode=*/0, /*th_int=*/0, /*th_float=*/0.0, th, grid, surrogate,
                        tau, scale, acc_double, /*y_double=*/false};  // the reset's: unused
  return neuron_backward_impl(g_s, g_time_major, yv, d_u, u_steps, d_v, v_steps, o, post_u,
                              post_v, false);
}

// The layout steps (randhet.h), written once: kernel.py and the Triton kernel call them, and
// the node below runs them without Python.
namespace layout {

std::pair<torch::Tensor, bool> steps_2d(const torch::Tensor& x) {
  const int64_t steps = x.size(-1);
  auto tm = x.movedim(-1, 0);
  if (tm.is_contiguous()) return {tm.reshape({steps, -1}), true};
  if (x.is_contiguous()) return {x.reshape({-1, steps}), false};
  return {tm.contiguous().reshape({steps, -1}), true};
}

std::pair<torch::Tensor, bool> drive_2d(const torch::Tensor& x) {
  if (x.stride(-1) == 0 && x.select(-1, 0).is_contiguous()) {  // one drive for every step
    return {x.movedim(-1, 0).reshape({x.size(-1), -1}), true};  // strides (0, 1)
  }
  return steps_2d(x);
}

torch::Tensor like(const torch::Tensor& x, bool time_major) {
  const int64_t steps = x.size(-1);
  if (time_major) return x.movedim(-1, 0).contiguous().reshape({steps, -1});
  return x.contiguous().reshape({-1, steps});
}

torch::Tensor laid_out(const torch::Tensor& values, const torch::Tensor& like_x, bool per_step,
                       bool time_major) {
  if (per_step) return like(values.expand(like_x.sizes()), time_major);
  const auto rows = like_x.sizes().slice(0, like_x.dim() - 1);
  if (values.sizes() == rows && values.is_contiguous()) return values.view({-1});
  return values.expand(rows).contiguous().reshape({-1});
}

torch::Tensor from_steps(const torch::Tensor& out, torch::IntArrayRef shape) {
  std::vector<int64_t> sizes{shape.back()};
  sizes.insert(sizes.end(), shape.begin(), shape.end() - 1);
  return out.reshape(sizes).movedim(0, -1);
}

torch::Tensor from_2d(const torch::Tensor& out, torch::IntArrayRef shape, bool time_major) {
  return time_major ? from_steps(out, shape) : out.reshape(shape);
}

}  // namespace layout

namespace {

// NeuronOptions kept in an autograd context (its saved_data holds IValues)
void save_options(torch::autograd::AutogradContext* ctx, const NeuronOptions& o) {
  ctx->saved_data["ints"] = c10::List<int64_t>({o.th_mode, o.th_int, o.grid, o.surrogate,
                                                o.acc_double, o.y_double});
  ctx->saved_data["floats"] = c10::List<double>({o.th_float, o.th_spike, o.tau, o.scale});
}

NeuronOptions saved_options(torch::autograd::AutogradContext* ctx) {
  const auto i = ctx->saved_data["ints"].toIntList();
  const auto f = ctx->saved_data["floats"].toDoubleList();
  NeuronOptions o;
  o.th_mode = i[0];
  o.th_int = i[1];
  o.grid = i[2];
  o.surrogate = i[3] != 0;
  o.acc_double = i[4] != 0;
  o.y_double = i[5] != 0;
  o.th_float = f[0];
  o.th_spike = f[1];
  o.tau = f[2];
  o.scale = f[3];
  return o;
}

}  // namespace

}  // namespace randhet

// at global scope: autograd names the node after it (CppNode<NeuronNode>)
using namespace randhet;  // NOLINT: this file's own names

// The training neuron as one autograd node on the CPU (loihi.cuba_spikes): the layout steps,
// the kernel's forward and backward and the gradients' reduction to the decays' shapes
// (torch's sum_to, as loihi's Python node reduces them), so that a training step runs no
// Python between its matmuls. The Triton kernel runs the same steps in loihi._CubaSpikes.
struct NeuronNode : public torch::autograd::Function<NeuronNode> {
  // x [.., T]; du, dv [..] or [.., T] (per step: the last axis matches x's)
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& du, const torch::Tensor& dv,
                               const NeuronOptions& o) {
    const bool keep_post = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);
    const bool u_steps = du.dim() == x.dim() && du.size(-1) == x.size(-1);
    const bool v_steps = dv.dim() == x.dim() && dv.size(-1) == x.size(-1);
    auto [x2, time_major] = layout::drive_2d(x);
    const auto du0 = du.detach(), dv0 = dv.detach();
    // keep the surrogate's exponential, not the voltage: torch's exp of the exponent, in place
    // on the [T, N] buffer the loop's exp would run over (the same bits)
    SurrogateArg arg;
    arg.on = o.surrogate;
    arg.th = o.th_spike;
    arg.tau = o.tau;
    auto out = neuron_forward_impl(
        x2, time_major, layout::laid_out(du0, x, u_steps, time_major), u_steps,
        layout::laid_out(dv0, x, v_steps, time_major), v_steps, o, keep_post, true, arg);
    if (o.surrogate) out[1].exp_();
    const auto shape = x.sizes();
    torch::Tensor pu, pv;
    if (keep_post) {
      pu = layout::from_steps(out[2], shape);
      pv = layout::from_steps(out[3], shape);
    }
    ctx->save_for_backward({layout::from_steps(out[1], shape), du, dv, pu, pv});  // yv: exp
    ctx->saved_data["steps"] = c10::List<bool>({u_steps, v_steps});
    save_options(ctx, o);
    return layout::from_2d(out[0], shape, time_major);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& yv = saved[0];
    const auto& du = saved[1];
    const auto& dv = saved[2];
    const auto steps = ctx->saved_data["steps"].toBoolList();
    const NeuronOptions o = saved_options(ctx);
    const bool u_steps = steps[0], v_steps = steps[1];
    const bool terms = saved[3].defined();
    const auto& g_s = grads[0];
    auto [g2, time_major] = layout::steps_2d(g_s);
    const auto none = g_s.new_empty({0});
    auto out = neuron_backward_impl(
        g2, time_major, layout::like(yv, true),
        layout::laid_out(du.detach(), g_s, u_steps, time_major), u_steps,
        layout::laid_out(dv.detach(), g_s, v_steps, time_major), v_steps, o,
        terms ? layout::like(saved[3], true) : none, terms ? layout::like(saved[4], true) : none,
        true);
    const auto shape = g_s.sizes();
    torch::autograd::tensor_list result(4);
    result[0] = layout::from_2d(out[0], shape, time_major);
    for (int i = 0; i < 2 && terms; ++i) {
      if (!ctx->needs_input_grad(1 + i)) continue;
      const auto& d = i == 0 ? du : dv;
      auto t = layout::from_steps(out[1 + i], shape);
      result[1 + i] = at::sum_to((i == 0 ? u_steps : v_steps) ? t : t.sum(-1), d.sizes());
    }
    return result;
  }
};

namespace randhet {

torch::Tensor neuron_node(const torch::Tensor& x, const torch::Tensor& du, const torch::Tensor& dv,
                          const NeuronOptions& o) {
  return NeuronNode::apply(x, du, dv, o);
}

}  // namespace randhet
