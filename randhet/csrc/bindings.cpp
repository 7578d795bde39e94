// The extension's one Python module (randhet.kernel loads it): every function of randhet.h,
// the training neuron's options and the layout steps.
#include "randhet.h"

#include <pybind11/stl.h>

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using randhet::NeuronOptions;
  py::class_<NeuronOptions>(m, "NeuronOptions", "the training neuron's options (randhet.h)")
      .def(py::init([](int64_t th_mode, int64_t th_int, double th_float, double th_spike,
                       int64_t grid, bool surrogate, double tau, double scale, bool acc_double,
                       bool y_double) {
             return NeuronOptions{th_mode, th_int, th_float, th_spike, grid,
                                  surrogate, tau,    scale,    acc_double, y_double};
           }),
           py::kw_only(), py::arg("th_mode"), py::arg("th_int"), py::arg("th_float"),
           py::arg("th_spike"), py::arg("grid"), py::arg("surrogate"), py::arg("tau"),
           py::arg("scale"), py::arg("acc_double"), py::arg("y_double"))
      .def_readonly("th_mode", &NeuronOptions::th_mode)
      .def_readonly("th_int", &NeuronOptions::th_int)
      .def_readonly("th_float", &NeuronOptions::th_float)
      .def_readonly("th_spike", &NeuronOptions::th_spike)
      .def_readonly("grid", &NeuronOptions::grid)
      .def_readonly("surrogate", &NeuronOptions::surrogate)
      .def_readonly("tau", &NeuronOptions::tau)
      .def_readonly("scale", &NeuronOptions::scale)
      .def_readonly("acc_double", &NeuronOptions::acc_double)
      .def_readonly("y_double", &NeuronOptions::y_double);
  m.def("steps_2d", &randhet::layout::steps_2d, "[.., T] as the kernels' 2-d input");
  m.def("drive_2d", &randhet::layout::drive_2d,
        "the neuron's drive as a 2-d input; a drive repeated over time read as it is");
  m.def("like", &randhet::layout::like, "[.., T] in the layout steps_2d chose for its partner");
  m.def("laid_out", &randhet::layout::laid_out, "values broadcast and laid out beside [.., T]");
  m.def("from_steps", &randhet::layout::from_steps, "a [T, N] output as [.., T]");
  m.def("from_2d", &randhet::layout::from_2d, "an output laid out as steps_2d's, as [.., T]");
  m.def("integrate_forward", &randhet::integrate_forward, "integer leaky integrator, forward");
  m.def("integrate_backward", &randhet::integrate_backward,
        "integrator input gradient (SLAYER's) and the decay gradient's terms");
  m.def("leaky_forward", &randhet::leaky_forward, "the training neuron's integrator, forward");
  m.def("cuba_forward", &randhet::cuba_forward,
        "a CUBA layer on the integer datapath, both scans");
  m.def("neuron_forward", &randhet::neuron_forward,
        "the training neuron: both integrators, spikes");
  m.def("neuron_backward", &randhet::neuron_backward,
        "the training neuron's backward: surrogate, both integrators, decay terms");
  m.def("neuron_node", &randhet::neuron_node,
        "the training neuron as one autograd node: spikes [.., T] whose backward is the kernel's");
  m.def("logit_normal_draw", &randhet::logit_normal_draw,
        "RandHet's current and voltage decays, logit-normal around the means, one call");
  m.def("quantize_8bit", &randhet::quantize_8bit,
        "SLAYER's 8-bit weight hook as one autograd node: round to the step, clamp");
  m.def("flush_subnormals", &randhet::flush_subnormals,
        "torch's threads flush subnormals (x86 FTZ and DAZ) or stop; whether this one did");
  m.def("conv2d_node", &randhet::conv2d_node,
        "a 2-d convolution on blocks of 16 samples side by side, forward and backward");
}
