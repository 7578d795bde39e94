// A convolution synapse's 2-d convolution (randhet/models/neuron.py: RandHetConv.drive) as one
// autograd node whose forward is torch's own conv2d (the same values) and whose backward
// computes the weight and input gradients with im2col and two matmuls per block of samples.
// torch's CPU backward (oneDNN) is slow on the few channels of spiking conv layers: on this
// project's 2-core machine it took three quarters of a conv training step. The gradients are
// sums of the same products in another order, so they agree with torch's to rounding
// (tests/test_conv.py). Only for CPU float32 / float64 tensors, groups 1, no dilation, no
// bias, one stride and one padding for both axes; kernel.py leaves everything else to torch.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// AVX-512, AVX2 and baseline builds of the copy loops, one picked at load (as cuba.cpp's)
#define RANDHET_CONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define RANDHET_CONV_CLONES
#endif

namespace {

constexpr int64_t kSamples = 16;  // samples per block, side by side (one AVX-512 vector of floats)

struct Geometry {
  int64_t channels, height, width, kernel, stride, padding, out_h, out_w;
  int64_t taps() const { return channels * kernel * kernel; }  // K, a row of im2col
  int64_t pixels() const { return out_h * out_w; }            // L, rows per sample
};

// A block's samples run side by side: its tensors hold the kSamples samples of an element next
// to each other ("lanes"), so that im2col and col2im move whole lanes (vector loads and stores)
// whatever the image size. Lanes past the block's last sample hold zeros.

// out[0:kSamples] += in[0:kSamples], one vector add (GCC's vector extension)
template <typename T>
inline void add_lane(T* out, const T* in) {
  typedef T Lanes __attribute__((vector_size(kSamples * sizeof(T))));
  Lanes a, b;
  std::memcpy(&a, out, sizeof(Lanes));
  std::memcpy(&b, in, sizeof(Lanes));
  a += b;
  std::memcpy(out, &a, sizeof(Lanes));
}

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
RANDHET_CONV_CLONES void to_lanes(const T* __restrict x, int64_t count, int64_t m,
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
RANDHET_CONV_CLONES void from_lanes(const T* __restrict lanes, int64_t count, int64_t m,
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

// im2col on lanes: cols [K, L * kSamples], cols[tap][l * kSamples + s] the input (lanes
// [C * H * W, kSamples]) under tap (c, ky, kx) (the weight's order) of output pixel l, zero
// outside the input
template <typename T>
RANDHET_CONV_CLONES void patches(const T* __restrict lanes, const Geometry& g,
                                 T* __restrict cols) {
  const int64_t k = g.kernel, row = g.pixels() * kSamples;
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t ky = 0; ky < k; ++ky) {
      for (int64_t kx = 0; kx < k; ++kx) {
        T* __restrict tap = cols + ((c * k + ky) * k + kx) * row;
        for (int64_t oy = 0; oy < g.out_h; ++oy) {
          const int64_t iy = oy * g.stride + ky - g.padding;
          for (int64_t ox = 0; ox < g.out_w; ++ox) {
            const int64_t ix = ox * g.stride + kx - g.padding;
            T* __restrict out = tap + (oy * g.out_w + ox) * kSamples;
            if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) {
              std::memset(out, 0, kSamples * sizeof(T));
            } else {
              std::memcpy(out, lanes + ((c * g.height + iy) * g.width + ix) * kSamples,
                          kSamples * sizeof(T));
            }
          }
        }
      }
    }
  }
}

// col2im on lanes: adds cols [K, L * kSamples] (patches' layout) into lanes [C * H * W,
// kSamples]
template <typename T>
RANDHET_CONV_CLONES void add_patches(const T* __restrict cols, const Geometry& g,
                                     T* __restrict lanes) {
  const int64_t k = g.kernel, row = g.pixels() * kSamples;
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t ky = 0; ky < k; ++ky) {
      for (int64_t kx = 0; kx < k; ++kx) {
        const T* __restrict tap = cols + ((c * k + ky) * k + kx) * row;
        for (int64_t oy = 0; oy < g.out_h; ++oy) {
          const int64_t iy = oy * g.stride + ky - g.padding;
          if (iy < 0 || iy >= g.height) continue;
          for (int64_t ox = 0; ox < g.out_w; ++ox) {
            const int64_t ix = ox * g.stride + kx - g.padding;
            if (ix < 0 || ix >= g.width) continue;
            add_lane(lanes + ((c * g.height + iy) * g.width + ix) * kSamples,
                     tap + (oy * g.out_w + ox) * kSamples);
          }
        }
      }
    }
  }
}

// The weight gradient [O, K] and the input gradient [N, C, H, W] (each where asked) for the
// output gradient gz [N, O, Ho, Wo]: per block of kSamples samples, on lanes, im2col P [K, L *
// kSamples] and gz as G [O, L * kSamples]; dW += G P^T, dP = W^T G, and dP added back into dx.
// Blocks run in parallel, each task summing its own dW; the tasks' sums are added in order.
std::vector<at::Tensor> conv_backward(const at::Tensor& x, const at::Tensor& w,
                                      const at::Tensor& gz, const Geometry& g, bool need_dx,
                                      bool need_dw) {
  const int64_t n = x.size(0), outs = w.size(0), taps = g.taps(), pixels = g.pixels();
  const int64_t in_size = g.channels * g.height * g.width, ld = pixels * kSamples;
  // detached: the parallel tasks' threads do not share the caller's no-grad mode
  const auto w2 = w.detach().reshape({outs, taps});
  auto dx = need_dx ? at::empty_like(x) : at::Tensor();
  const int64_t blocks = (n + kSamples - 1) / kSamples;
  std::vector<at::Tensor> partial(static_cast<size_t>(std::max<int64_t>(blocks, 1)));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_backward", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* gp = gz.data_ptr<T>();
    T* dxp = need_dx ? dx.data_ptr<T>() : nullptr;
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      const auto opts = x.options();
      auto x_lanes = need_dw ? at::empty({in_size, kSamples}, opts) : at::Tensor();
      auto cols = need_dw ? at::empty({taps, ld}, opts) : at::Tensor();
      auto grads = at::empty({outs, ld}, opts);
      auto dcols = need_dx ? at::empty({taps, ld}, opts) : at::Tensor();
      auto dx_lanes = need_dx ? at::empty({in_size, kSamples}, opts) : at::Tensor();
      auto dw = need_dw ? at::zeros({outs, taps}, opts) : at::Tensor();
      T* gt = grads.data_ptr<T>();
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t first = b * kSamples, count = std::min(kSamples, n - first);
        for (int64_t o = 0; o < outs; ++o) {  // G[o][l * kSamples + s] = gz[first + s][o][l]
          to_lanes(gp + (first * outs + o) * pixels, count, pixels, gt + o * ld, outs * pixels);
        }
        if (need_dw) {
          to_lanes(xp + first * in_size, count, in_size, x_lanes.data_ptr<T>(), in_size);
          patches(x_lanes.data_ptr<T>(), g, cols.data_ptr<T>());
          dw.addmm_(grads, cols.t());
        }
        if (need_dx) {
          at::mm_out(dcols, w2.t(), grads);  // [K, L * kSamples]
          T* dl = dx_lanes.data_ptr<T>();
          std::fill(dl, dl + in_size * kSamples, T(0));
          add_patches(dcols.data_ptr<T>(), g, dl);
          from_lanes(dl, count, in_size, dxp + first * in_size);
        }
      }
      if (need_dw) partial[static_cast<size_t>(b0)] = dw;
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

}  // namespace

struct Conv2dNode : public torch::autograd::Function<Conv2dNode> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, int64_t stride, int64_t padding) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return at::conv2d(x, w, {}, {stride, stride}, {padding, padding});
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const auto gz = grads[0].contiguous();
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    const Geometry g{x.size(1), x.size(2), x.size(3), w.size(2), stride, padding, gz.size(2),
                     gz.size(3)};
    auto out = conv_backward(x, w, gz, g, ctx->needs_input_grad(0), ctx->needs_input_grad(1));
    return {out[0], out[1], at::Tensor(), at::Tensor()};
  }
};

// x [N, C, H, W] and w [O, C, k, k], contiguous, one dtype (float32 or float64), on the CPU
at::Tensor conv2d_node(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding) {
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4 && x.is_contiguous() && w.is_contiguous() &&
                  x.scalar_type() == w.scalar_type() && x.size(1) == w.size(1) &&
                  w.size(2) == w.size(3) && stride > 0 && padding >= 0,
              "conv2d_node: contiguous x [N, C, H, W] and w [O, C, k, k] of one dtype");
  return Conv2dNode::apply(x, w, stride, padding);
}
