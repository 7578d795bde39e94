// What randhet's C++ extension shares across its files (cuba.cpp: the integer integrators and
// the training neuron; conv.cpp: a convolution synapse; draws.cpp: the decay draw and the
// weight hook; threads.cpp: the threads' floating-point mode; bindings.cpp: the one Python
// module): the build's vectorized clones, the training neuron's options, the layout steps
// between torch's [.., T] tensors and the kernels' 2-d buffers, and every function
// bindings.cpp exposes.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// AVX-512 (x86-64-v4), AVX2 and baseline builds of the hot loops, one picked at load
#define RANDHET_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define RANDHET_CLONES
#endif

namespace randhet {

// The training neuron's options (loihi.cuba_spikes), built once per configuration by
// kernel.neuron_options: the reset threshold as the integrator compares it (th_mode 0 none,
// 1 int64 th_int, 2 float32 / 3 float64 th_float; in 1/4096 units), the spike threshold
// (SLAYER units), the drive grid (0 or a power of two), SLAYER's surrogate (tau, scale; off:
// the straight-through estimator), the gains' dtype (acc_double: float64, else float32) and
// the outputs' (y_double: float64, else float32).
struct NeuronOptions {
  int64_t th_mode = 0;
  int64_t th_int = 0;
  double th_float = 0.0;
  double th_spike = 0.0;
  int64_t grid = 0;
  bool surrogate = false;
  double tau = 1.0;
  double scale = 0.0;
  bool acc_double = false;
  bool y_double = false;
};

// Between torch's [.., T] tensors and the kernels' 2-d buffers ([T, N] "time major" or
// [N, T]); the only place these steps are written (kernel.py and the Triton kernel call them).
namespace layout {
// x [.., T] as a 2-d input: ([T, N], true) where x is stored time major (or copied so),
// ([N, T], false) where it is stored time last
std::pair<torch::Tensor, bool> steps_2d(const torch::Tensor& x);
// the training neuron's drive: steps_2d, except that a drive repeated over time (stride 0 on
// T, as direct encoding gives) is read as it is, [T, N] with strides (0, 1)
std::pair<torch::Tensor, bool> drive_2d(const torch::Tensor& x);
// x [.., T] contiguous in the layout steps_2d chose for its partner
torch::Tensor like(const torch::Tensor& x, bool time_major);
// per-neuron (or per_step: per-neuron-and-step) values broadcast to like_x [.., T], laid out
// beside it: [N], or 2-d as steps_2d chose
torch::Tensor laid_out(const torch::Tensor& values, const torch::Tensor& like_x, bool per_step,
                       bool time_major);
// a [T, N] output as [.., T] (time-major storage)
torch::Tensor from_steps(const torch::Tensor& out, torch::IntArrayRef shape);
// an output laid out as steps_2d's input, as [.., T]
torch::Tensor from_2d(const torch::Tensor& out, torch::IntArrayRef shape, bool time_major);
}  // namespace layout

// cuba.cpp: the integrators (loihi.integrate, loihi.cuba, LeakyIntegrator) and the training
// neuron (loihi.cuba_spikes), on 2-d buffers; neuron_node: the neuron as one autograd node
std::vector<torch::Tensor> integrate_forward(const torch::Tensor& drive, bool drive_time_major,
                                             const torch::Tensor& keep, bool keep_steps,
                                             int64_t clip, int64_t th_mode, int64_t th_int,
                                             double th_float, bool keep_post);
std::vector<torch::Tensor> integrate_backward(const torch::Tensor& a, bool a_steps,
                                              const torch::Tensor& g_out, bool g_time_major,
                                              bool acc_double, const torch::Tensor& post);
std::vector<torch::Tensor> leaky_forward(const torch::Tensor& x, bool x_time_major,
                                         const torch::Tensor& keep, bool keep_steps,
                                         int64_t th_mode, int64_t th_int, double th_float,
                                         bool keep_post, bool y_double);
std::vector<torch::Tensor> cuba_forward(const torch::Tensor& drive, bool time_major,
                                        const torch::Tensor& keep_u, bool u_steps,
                                        const torch::Tensor& keep_v, bool v_steps, int64_t clip_u,
                                        int64_t synaptic_bits, bool saturate_v, int64_t vth);
// the training neuron's forward and backward on 2-d buffers: the flat arguments the Triton
// kernel takes too (kernel_triton.Kernel; tests/triton_interpreted.py holds the two to the
// same bits), unpacked from one NeuronOptions by kernel.py
std::vector<torch::Tensor> neuron_forward(const torch::Tensor& x, bool x_time_major,
                                          const torch::Tensor& d_u, bool u_steps,
                                          const torch::Tensor& d_v, bool v_steps,
                                          int64_t th_mode, int64_t th_int, double th_float,
                                          double th_spike, int64_t grid, bool keep_post,
                                          bool keep_y, bool y_double);
std::vector<torch::Tensor> neuron_backward(const torch::Tensor& g_s, bool g_time_major,
                                           const torch::Tensor& yv, bool surrogate, double th,
                                           double tau, double scale, int64_t grid,
                                           const torch::Tensor& d_u, bool u_steps,
                                           const torch::Tensor& d_v, bool v_steps,
                                           bool acc_double, const torch::Tensor& post_u,
                                           const torch::Tensor& post_v);
torch::Tensor neuron_node(const torch::Tensor& x, const torch::Tensor& du,
                          const torch::Tensor& dv, const NeuronOptions& o);

// draws.cpp
std::vector<torch::Tensor> logit_normal_draw(torch::IntArrayRef size,
                                             const std::optional<at::Generator>& gen,
                                             double logit_c, double logit_v, double sigma,
                                             int64_t low_c, int64_t high_c, int64_t low_v,
                                             int64_t high_v);
torch::Tensor quantize_8bit(const torch::Tensor& w, double step, double lo, double hi);

// threads.cpp
bool flush_subnormals(bool on);

// conv.cpp
torch::Tensor conv2d_node(const torch::Tensor& x, const torch::Tensor& w, int64_t stride,
                          int64_t padding);

}  // namespace randhet
