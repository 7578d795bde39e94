// A convolution synapse's 2-d convolution (randhet/models/neuron.py: RandHetConv.drive) as one
// autograd node, forward and backward. torch's CPU convolution (oneDNN) is slow on the few
// channels of spiking conv layers: on this project's 2-core machine its backward took three
// quarters of a conv training step. Here a block of 16 samples is held side by side, each
// element's 16 samples one vector ("lanes"), so that every tap of every output pixel is one
// vector multiply-add whatever the image size: the forward, the input gradient and the weight
// gradient run as direct convolutions over the taps. The sums are torch's products in another
// order: torch's values where they are exact (weights on SLAYER's 1/64 grid times spikes or
// inputs on a 1/2**bits grid, as a training step has them), equal to rounding otherwise
// (tests/test_conv.py). Only for CPU float32 / float64 tensors, groups 1, no dilation, no
// bias, one stride and one padding for both axes; kernel.py leaves everything else to torch.
#include "randhet.h"

#include <ATen/Parallel.h>

// this file's sums may fuse a * b + c into one rounding (the build's -ffp-contract=off is
// for cuba.cpp's bits); exact sums stay exact either way
#pragma GCC optimize("fp-contract=fast")

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace randhet {

namespace {

constexpr int64_t kSamples = 16;  // samples per block, side by side (one AVX-512 vector of floats)

struct Geometry {
  int64_t channels, height, width, kernel, stride, padding, out_h, out_w;
  int64_t taps() const { return channels * kernel * kernel; }  // K, under one output pixel
  int64_t pixels() const { return out_h * out_w; }            // L, output pixels
};

// A block's samples run side by side: its tensors hold the kSamples samples of an element next
// to each other ("lanes"), so that each tap of each output pixel is one vector operation
// whatever the image size. Lanes past the block's last sample hold zeros.

// A kSamples x kSamples tile transposed in registers (GCC's vector extension): rows[i][j]
// becomes rows[j][i]. Stage b swaps bit b of the row index with bit b of the column index
// between the rows i and i + 2**b.
template <typename T>
struct Tile {
  typedef T Row __attribute__((vector_size(kSamples * sizeof(T))));
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> Index;
  typedef Index Mask __attribute__((vector_size(kSamples * sizeof(T))));
  Row rows[kSamples];

  void load(const T* src, int64_t stride) {  // rows[i] = src[i * stride: + kSamples]
    for (int64_t i = 0; i < kSamples; ++i) std::memcpy(&rows[i], src + i * stride, sizeof(Row));
  }
  void store(T* dst, int64_t stride) const {
    for (int64_t i = 0; i < kSamples; ++i) std::memcpy(dst + i * stride, &rows[i], sizeof(Row));
  }
  template <int s>
  void stage() {
    static_assert(kSamples == 16, "the masks below are for 16 lanes");
    Mask low, high;  // from row i (indices < 16) and row i + s (indices 16 + ...)
    for (int j = 0; j < kSamples; ++j) {
      low[j] = static_cast<Index>((j & s) == 0 ? j : kSamples + j - s);
      high[j] = static_cast<Index>((j & s) == 0 ? j + s : kSamples + j);
    }
    for (int i = 0; i < kSamples; ++i) {
      if (i & s) continue;
      const Row a = rows[i], b = rows[i + s];
      rows[i] = __builtin_shuffle(a, b, low);
      rows[i + s] = __builtin_shuffle(a, b, high);
    }
  }
  void transpose() {
    stage<1>();
    stage<2>();
    stage<4>();
    stage<8>();
  }
};

// x of `count` samples [count, M] into lanes [M, kSamples] (sample s's row at x + s *
// stride): whole tiles through registers, the rest one element at a time
template <typename T>
RANDHET_CLONES void to_lanes(const T* __restrict x, int64_t count, int64_t m,
                                  T* __restrict lanes, int64_t stride) {
  int64_t j0 = 0;
  if (count == kSamples) {
    Tile<T> tile;
    for (; j0 + kSamples <= m; j0 += kSamples) {
      tile.load(x + j0, stride);
      tile.transpose();
      tile.store(lanes + j0 * kSamples, kSamples);
    }
  } else {
    std::fill(lanes, lanes + m * kSamples, T(0));
  }
  for (int64_t j = j0; j < m; ++j) {
    for (int64_t s = 0; s < count; ++s) lanes[j * kSamples + s] = x[s * stride + j];
  }
}

// lanes [M, kSamples] back into `count` samples [count, M]
template <typename T>
RANDHET_CLONES void from_lanes(const T* __restrict lanes, int64_t count, int64_t m,
                                    T* __restrict x) {
  int64_t j0 = 0;
  if (count == kSamples) {
    Tile<T> tile;
    for (; j0 + kSamples <= m; j0 += kSamples) {
      tile.load(lanes + j0 * kSamples, kSamples);
      tile.transpose();
      tile.store(x + j0, m);
    }
  }
  for (int64_t j = j0; j < m; ++j) {
    for (int64_t s = 0; s < count; ++s) x[s * m + j] = lanes[j * kSamples + s];
  }
}

// Where each tap of each output pixel reads its input: taps [L * K], the lane index (c * H +
// iy) * W + ix of tap (c, ky, kx) (the weight's order) under output pixel l, or C * H * W (a
// lane of zeros past the input) where the tap falls on the padding
std::vector<int32_t> tap_lanes(const Geometry& g) {
  const int64_t k = g.kernel, taps = g.taps(), outside = g.channels * g.height * g.width;
  std::vector<int32_t> at(static_cast<size_t>(g.pixels() * taps));
  for (int64_t oy = 0; oy < g.out_h; ++oy) {
    for (int64_t ox = 0; ox < g.out_w; ++ox) {
      int32_t* row = at.data() + (oy * g.out_w + ox) * taps;
      for (int64_t c = 0; c < g.channels; ++c) {
        for (int64_t ky = 0; ky < k; ++ky) {
          for (int64_t kx = 0; kx < k; ++kx) {
            const int64_t iy = oy * g.stride + ky - g.padding;
            const int64_t ix = ox * g.stride + kx - g.padding;
            const bool in = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width;
            row[(c * k + ky) * k + kx] =
                static_cast<int32_t>(in ? (c * g.height + iy) * g.width + ix : outside);
          }
        }
      }
    }
  }
  return at;
}

constexpr int64_t kOuts = 8;  // output channels accumulated in registers at once

template <typename T>
using Lane = typename Tile<T>::Row;

template <typename T>
inline Lane<T> load(const T* p) {
  Lane<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store(T* p, const Lane<T>& v) {
  std::memcpy(p, &v, sizeof(v));
}

// f(o0, OB) for the output channels [o0, o0 + OB), OB a compile-time constant (kOuts, then
// the rest), so that each kernel below keeps its OB accumulators in registers
template <typename F>
void by_outs(int64_t outs, const F& f) {
  int64_t o0 = 0;
  for (; o0 + kOuts <= outs; o0 += kOuts) f(o0, std::integral_constant<int64_t, kOuts>{});
  switch (outs - o0) {
    case 1: return f(o0, std::integral_constant<int64_t, 1>{});
    case 2: return f(o0, std::integral_constant<int64_t, 2>{});
    case 3: return f(o0, std::integral_constant<int64_t, 3>{});
    case 4: return f(o0, std::integral_constant<int64_t, 4>{});
    case 5: return f(o0, std::integral_constant<int64_t, 5>{});
    case 6: return f(o0, std::integral_constant<int64_t, 6>{});
    case 7: return f(o0, std::integral_constant<int64_t, 7>{});
    default: return;
  }
}

// z lanes [O * L, kSamples] for the output channels [o0, o0 + OB): the sum over the taps (in
// the weight's order) of w[o][tap] times the x lanes [C * H * W + 1, kSamples] under the tap,
// for each pixel l: a block's convolution, every lane one sample
template <typename T, int64_t OB>
RANDHET_CLONES void convolve(const T* __restrict x, const T* __restrict w,
                                  const int32_t* __restrict at, int64_t o0, int64_t taps,
                                  int64_t pixels, T* __restrict z) {
  const T* __restrict wo = w + o0 * taps;
  for (int64_t l = 0; l < pixels; ++l) {
    const int32_t* __restrict row = at + l * taps;
    Lane<T> acc[OB] = {};
    for (int64_t t = 0; t < taps; ++t) {
      const Lane<T> xv = load(x + row[t] * kSamples);
      for (int64_t o = 0; o < OB; ++o) acc[o] += wo[o * taps + t] * xv;
    }
    for (int64_t o = 0; o < OB; ++o) store(z + ((o0 + o) * pixels + l) * kSamples, acc[o]);
  }
}

// dx lanes [C * H * W + 1, kSamples] += the sum over the output channels [o0, o0 + OB) of
// w[o][tap] times the g lanes [O * L, kSamples] of (o, l), for each tap of each pixel l (the
// last lane takes the padding's share): a block's input gradient, a share of channels at a time
template <typename T, int64_t OB>
RANDHET_CLONES void convolve_back(const T* __restrict g, const T* __restrict w,
                                       const int32_t* __restrict at, int64_t o0,
                                       int64_t taps, int64_t pixels, T* __restrict dx) {
  const T* __restrict wo = w + o0 * taps;
  for (int64_t l = 0; l < pixels; ++l) {
    const int32_t* __restrict row = at + l * taps;
    Lane<T> gv[OB];
    for (int64_t o = 0; o < OB; ++o) gv[o] = load(g + ((o0 + o) * pixels + l) * kSamples);
    for (int64_t t = 0; t < taps; ++t) {
      Lane<T> acc = wo[t] * gv[0];
      for (int64_t o = 1; o < OB; ++o) acc += wo[o * taps + t] * gv[o];
      T* d = dx + row[t] * kSamples;
      store(d, load(d) + acc);
    }
  }
}

// dw lanes [O * K, kSamples] += for the output channels [o0, o0 + OB), the sum over the pixels
// l of the g lanes of (o, l) times the x lanes under tap t of l: a block's weight gradient,
// lane by lane (the lanes are summed once, at the end)
template <typename T, int64_t OB>
RANDHET_CLONES void correlate(const T* __restrict x, const T* __restrict g,
                                   const int32_t* __restrict at, int64_t o0, int64_t taps,
                                   int64_t pixels, T* __restrict dw) {
  for (int64_t t = 0; t < taps; ++t) {
    Lane<T> acc[OB];
    for (int64_t o = 0; o < OB; ++o) acc[o] = load(dw + ((o0 + o) * taps + t) * kSamples);
    for (int64_t l = 0; l < pixels; ++l) {
      const Lane<T> xv = load(x + at[l * taps + t] * kSamples);
      for (int64_t o = 0; o < OB; ++o) {
        acc[o] += load(g + ((o0 + o) * pixels + l) * kSamples) * xv;
      }
    }
    for (int64_t o = 0; o < OB; ++o) store(dw + ((o0 + o) * taps + t) * kSamples, acc[o]);
  }
}

// The weight gradient [O, K] and the input gradient [N, C, H, W] (each where asked) for the
// output gradient gz [N, O, Ho, Wo], per block of kSamples samples held side by side. Blocks
// run in parallel; each task sums its own weight gradient lane by lane, then over its lanes,
// and the tasks' sums are added in order.
// x_lanes: the forward's lanes of x, [blocks, C * H * W + 1, kSamples] (conv_forward), for
// the weight gradient.
std::vector<at::Tensor> conv_backward(const at::Tensor& x_lanes, const at::Tensor& w,
                                      const at::Tensor& gz, const Geometry& g, bool need_dx,
                                      bool need_dw) {
  const int64_t n = gz.size(0), outs = w.size(0), taps = g.taps(), pixels = g.pixels();
  const int64_t in_size = g.channels * g.height * g.width;
  // detached: the parallel tasks' threads do not share the caller's no-grad mode
  const auto w2 = w.detach().contiguous();
  auto dx = need_dx ? at::empty({n, g.channels, g.height, g.width}, gz.options())
                     : at::Tensor();
  const int64_t blocks = (n + kSamples - 1) / kSamples;
  const auto at = tap_lanes(g);
  std::vector<at::Tensor> partial(static_cast<size_t>(std::max<int64_t>(blocks, 1)));
  AT_DISPATCH_FLOATING_TYPES(gz.scalar_type(), "conv_backward", [&] {
    using T = scalar_t;
    const T* xl = need_dw ? x_lanes.data_ptr<T>() : nullptr;
    const T* gp = gz.data_ptr<T>();
    const T* wp = w2.data_ptr<T>();
    T* dxp = need_dx ? dx.data_ptr<T>() : nullptr;
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      const auto opts = gz.options();
      auto g_lanes = at::empty({outs * pixels, kSamples}, opts);
      auto dx_lanes = need_dx ? at::empty({in_size + 1, kSamples}, opts) : at::Tensor();
      auto dw_lanes = need_dw ? at::zeros({outs * taps, kSamples}, opts) : at::Tensor();
      T* gl = g_lanes.data_ptr<T>();
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t first = b * kSamples, count = std::min(kSamples, n - first);
        to_lanes(gp + first * outs * pixels, count, outs * pixels, gl, outs * pixels);
        if (need_dw) {
          const T* xb = xl + b * (in_size + 1) * kSamples;
          by_outs(outs, [&](int64_t o0, auto ob) {
            correlate<T, decltype(ob)::value>(xb, gl, at.data(), o0, taps, pixels,
                                              dw_lanes.data_ptr<T>());
          });
        }
        if (need_dx) {
          T* dl = dx_lanes.data_ptr<T>();
          std::fill(dl, dl + (in_size + 1) * kSamples, T(0));
          by_outs(outs, [&](int64_t o0, auto ob) {
            convolve_back<T, decltype(ob)::value>(gl, wp, at.data(), o0, taps, pixels, dl);
          });
          from_lanes(dl, count, in_size, dxp + first * in_size);
        }
      }
      if (need_dw) partial[static_cast<size_t>(b0)] = dw_lanes.sum(1);
    });
  });
  at::Tensor dw;
  if (need_dw) {
    for (const auto& p : partial) {
      if (!p.defined()) continue;
      dw = dw.defined() ? dw.add_(p) : p;
    }
    dw = dw.defined() ? dw.reshape(w.sizes()) : at::zeros_like(w);
  }
  return {dx, dw};
}

// The convolution z [N, O, Ho, Wo] of x [N, C, H, W] with w [O, C, k, k], per block of
// kSamples samples held side by side: each output the sum over the taps in the weight's order
// (torch's values where the sums are exact, as they are for weights on a 1/64 grid times
// spikes or inputs on a 1/2**bits grid; equal to rounding otherwise). x_lanes [blocks, C * H
// * W + 1, kSamples] receives every block's lanes (the last lane zeros), which the weight
// gradient reads again.
at::Tensor conv_forward(const at::Tensor& x, const at::Tensor& w, const Geometry& g,
                        at::Tensor& x_lanes) {
  const int64_t n = x.size(0), outs = w.size(0), taps = g.taps(), pixels = g.pixels();
  const int64_t in_size = g.channels * g.height * g.width;
  const auto w2 = w.detach().contiguous();
  auto z = at::empty({n, outs, g.out_h, g.out_w}, x.options());
  const int64_t blocks = (n + kSamples - 1) / kSamples;
  const auto at = tap_lanes(g);
  x_lanes = at::empty({blocks, in_size + 1, kSamples}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_forward", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    T* xl = x_lanes.data_ptr<T>();
    const T* wp = w2.data_ptr<T>();
    T* zp = z.data_ptr<T>();
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      auto z_lanes = at::empty({outs * pixels, kSamples}, x.options());
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t first = b * kSamples, count = std::min(kSamples, n - first);
        T* xb = xl + b * (in_size + 1) * kSamples;
        to_lanes(xp + first * in_size, count, in_size, xb, in_size);
        std::fill(xb + in_size * kSamples, xb + (in_size + 1) * kSamples, T(0));  // padding
        by_outs(outs, [&](int64_t o0, auto ob) {
          convolve<T, decltype(ob)::value>(xb, wp, at.data(), o0, taps, pixels,
                                           z_lanes.data_ptr<T>());
        });
        from_lanes(z_lanes.data_ptr<T>(), count, outs * pixels, zp + first * outs * pixels);
      }
    });
  });
  return z;
}

}  // namespace

}  // namespace randhet

// at global scope: autograd names the node after it (CppNode<Conv2dNode>)
using namespace randhet;  // NOLINT: this file's own names

struct Conv2dNode : public torch::autograd::Function<Conv2dNode> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, int64_t stride, int64_t padding) {
    const int64_t k = w.size(2);
    const Geometry g{x.size(1), x.size(2), x.size(3), k, stride, padding,
                     (x.size(2) + 2 * padding - k) / stride + 1,
                     (x.size(3) + 2 * padding - k) / stride + 1};
    TORCH_CHECK(g.out_h > 0 && g.out_w > 0, "conv2d_node: the kernel is larger than the input");
    at::Tensor x_lanes;
    auto z = conv_forward(x, w, g, x_lanes);
    // the weight gradient reads x as lanes: those are kept instead of x (the same size)
    ctx->save_for_backward({w.requires_grad() ? x_lanes : at::Tensor(), w});
    ctx->saved_data["geometry"] = c10::List<int64_t>({g.channels, g.height, g.width, stride,
                                                      padding});
    return z;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x_lanes = saved[0];
    const auto& w = saved[1];
    const auto gz = grads[0].contiguous();
    const auto geo = ctx->saved_data["geometry"].toIntList();
    const Geometry g{geo[0], geo[1], geo[2], w.size(2), geo[3], geo[4], gz.size(2), gz.size(3)};
    auto out = conv_backward(x_lanes, w, gz, g, ctx->needs_input_grad(0),
                             ctx->needs_input_grad(1));
    return {out[0], out[1], at::Tensor(), at::Tensor()};
  }
};

namespace randhet {

// x [N, C, H, W] and w [O, C, k, k], contiguous, one dtype (float32 or float64), on the CPU
at::Tensor conv2d_node(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4 && x.is_contiguous() && w.is_contiguous() &&
                  x.scalar_type() == w.scalar_type() && x.size(1) == w.size(1) &&
                  w.size(2) == w.size(3) && stride > 0 && padding >= 0,
              "conv2d_node: contiguous x [N, C, H, W] and w [O, C, k, k] of one dtype");
  return Conv2dNode::apply(x, w, stride, padding);
}

}  // namespace randhet
