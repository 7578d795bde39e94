"""NIR interchange, the mapping: randhet networks out to, and in from, the Neuromorphic
Intermediate Representation (the ``nir`` package, https://neuroir.org).

:mod:`randhet.export.nir_export` writes graphs, :mod:`randhet.export.nir_import` reads them;
this module holds what both share (units, formulas, limits).

Export writes a chain ``Input -> [Flatten] -> Affine | Conv2d -> CubaLIF -> ... -> Output``
holding the deployed network's integers scaled back to float; import reads such a chain (also
with ``Linear``, ``SumPool2d`` or ``AvgPool2d`` synapses), quantizes it to Loihi's widths and
gives an :class:`~randhet.export.netx.ExportedNetwork` that is written as an ordinary
``network.net`` (:func:`~randhet.export.netx.write_network`).

Units and mapping
-----------------
Float values are in SLAYER units: weight ``W = w / 64`` (``w`` the even 8-bit integer weight),
threshold ``v_threshold = vThMant / 64``, states ``I = U / 4096`` and ``v = V / 4096`` (``U``,
``V`` the 24-bit Loihi states), input spikes 1 (binary) or ``x_int / 2**input_bits`` (direct
encoding). Time: ``dt`` is the length of one Loihi step in **seconds** (default
``DEFAULT_DT = 1e-4`` s, the value snnTorch's NIR importer assumes; it is stored in the graph's
and every CubaLIF node's metadata as ``dt``). NIR's CubaLIF is the ODE pair
``tau_syn I' = -I + w_in S``, ``tau_mem v' = (v_leak - v) + r I``, spike ``z = v > v_threshold``,
then ``v = v_reset``. Its forward-Euler step (what snnTorch and Norse run) is::

    I[t] = (1 - dt/tau_syn) I[t-1] + (dt/tau_syn) w_in S[t]
    v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) r I[t]

and Loihi's step (:mod:`randhet.loihi`) is ``U[t] = U[t-1] (4096 - du)/4096 + (a << 6)``,
``V[t] = V[t-1] (4096 - dv)/4096 + U[t]``, spike ``V[t] > vThMant << 6``, then ``V = 0``. They
agree (up to the rounding listed below) with, per neuron::

    tau_syn = dt * 4096 / du        w_in = tau_syn / dt = 4096 / du
    tau_mem = dt * 4096 / dv        r    = tau_mem / dt = 4096 / dv
    v_leak = 0, v_reset = 0, v_threshold = vThMant / 64

so ``(dt/tau_syn) w_in = (dt/tau_mem) r = 1`` (unit gains, as on Loihi). Import inverts it:
``du = round(4096 dt / tau_syn)``, ``dv = round(4096 dt / tau_mem)`` (tau_syn < dt is refused);
other gains ``g = w_in dt / tau_syn`` and ``h = r dt / tau_mem`` and the threshold are folded
into the weights (``W' = W g h / v_threshold``: a neuron with unit gains and threshold 1 spikes
at the same steps), then one common ``vThMant`` is chosen for the whole network (randhet has one
threshold) and ``w = 2 round(W' vThMant / 2)``: the largest ``vThMant <= 2047 * 64`` that keeps
every layer's weights in -256..254. A graph already on randhet's grid (one threshold with
``64 v_threshold`` an integer, every ``64 W g h`` an even integer in range) is taken exactly.
Pooling (randhet's ``pool:K``, a depthwise KxK convolution with stride K and equal weights
``w_p``) is exported as ``AvgPool2d`` (kernel K, stride K, padding 0) with the pool weight folded
into the next CubaLIF's input weight, ``w_in = (tau_syn / dt) K**2 w_p / 64``, so
``avg * (dt/tau_syn) w_in = sum * w_p / 64`` exactly: snnTorch reads ``AvgPool2d`` (not
``SumPool2d``), and NIR's ``Conv2d`` type inference ignores ``groups``, so a depthwise
``Conv2d`` fails ``nir.read``. Import takes ``AvgPool2d`` and ``SumPool2d`` (weights 1/K**2 and
1) and also a depthwise ``Conv2d`` with equal weights. Affine and Conv2d get a zero bias
(snnTorch's importer needs one); a nonzero bias is refused on import.

RandHet decays: the per-neuron arrays hold one named draw (metadata ``randhet_draw``): ``mean``
(every neuron at the mean decay; the default), ``fixed`` (the frozen draw of a resample =
``fixed`` network, the only choice for one) or a seed (``deployment_draws(net, 1, seed)``:
sample 0 of deployment seed ``seed``; for resample = ``step`` its first step). The distribution
is in each CubaLIF node's metadata (``randhet_current_decay``/``randhet_voltage_decay``: the
integer means, ``randhet_sigma``, ``randhet_distribution``, ``randhet_randomize``,
``randhet_granularity``, ``randhet_resample``) and the whole spec and data set config in the
graph's (``randhet_spec``, ``randhet_data``), so a randhet -> NIR -> randhet round trip gives
the same integers and needs no options. A graph without them is imported as a plain network
(sigma = 0; per-neuron decays that differ become a frozen, ``fixed`` draw).

What NIR cannot carry, and how it is approximated
-------------------------------------------------
* Integer rounding. Loihi decays truncate toward zero (``sgn(x) (|x (4096-d)| >> 12)``) and the
  first synapse of a direct-encoded network floors ``sum(w x_int) >> input_bits``; NIR is real
  valued and a float simulator multiplies exactly. Both agree exactly where every Loihi product
  is exact: binary inputs and decays 4096, or 2048 over up to 8 steps (states are multiples of
  2**7 = 128 units: even weights << 6). Otherwise each truncation loses under one state unit
  (``1/4096`` in SLAYER units) per step and neuron, the first-synapse floor under one drive
  unit (``1/64``) per step, and the leaky sums carry these forward; a spike moves only where
  ``v`` comes that close to the threshold. Documented tolerance (tests/test_nir.py): at most
  2 % of the (neuron, step) raster entries of any layer differ and at least 95 % of the samples
  get the same class; measured on the tiny digits test network (direct 4-bit input, decays
  1024 / 123, sigma = 1, one seeded draw, 100 samples): 0.66 % and 0.26 % of the entries of its
  two layers, 100 % of the classes (a one-step layer delay instead: 10.8 % and 4.5 %).
* 24-bit state: ``U`` wraps and ``V`` saturates at +-2**23 (``+-2048`` in SLAYER units); NIR
  states are unbounded. Equal below it; not approximated (a network that reaches it differs).
* Strict threshold: Loihi and NIR both spike at ``v > v_threshold`` (the same).
* Decay 0 (no leak) is ``tau = inf`` with ``w_in = inf``, which no importer can run: export
  writes ``tau = 16384 dt`` (a decay of 1/4 unit, which rounds back to 0; a float simulator
  leaks ``v / 16384`` per step); decay 4096 (no memory) is ``tau = dt``, exact.
* The one-step layer delay: the pipelined Lava network shows layer k a sample one step after
  layer k-1; randhet's emulator and deploy realign each layer's window, so rasters have no delay,
  and neither does a NIR graph (snnTorch runs all layers in the same step). Rasters compare
  step for step; a graph with ``Delay`` nodes is refused.
* Per-step (``step``) and per-sample (``forward``) resampling: NIR holds one fixed array; the
  distribution is only in metadata, which other tools ignore.
* ``dt``: NIR has no time step; the importer must use the exporter's ``dt`` (snnTorch 1.0.0
  hard-codes 1e-4 s and refuses a graph written with another ``--dt``, as its ``r`` check fails).
* The encoder: the graph starts after randhet's input encoding. Feed it the encoded input
  (binary spikes, or the quantized normalised pixel ``x_int / 2**input_bits`` at every step of a
  direct-encoded network); the encoding is only in the metadata.
* snnTorch 1.0.0's importer runs NIR's ``Flatten(start_dim=0)`` as ``torch.nn.Flatten(0, -1)``,
  which also flattens a batch: feed it one unbatched sample at a time (or use 1-D inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from randhet.errors import UserError
from randhet.spec import (
    DECAY_SCALE,
    WEIGHT_SCALE,
)

DEFAULT_DT = 1e-4  # seconds per Loihi step; snnTorch's NIR importer assumes this value
NIR_FORMAT = 1  # version of randhet's metadata in the graph
DECAY_ZERO = 0.25  # a decay of 0 is written as this (tau = 16384 dt); it rounds back to 0
VTH_MAX = 2047 * WEIGHT_SCALE  # largest vThMant randhet configs allow
SUPPORTED = ("Input", "Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten",
             "CubaLIF", "Output")


def load_nir() -> Any:
    try:
        import nir  # the NIR package: only for NIR export and import
    except ImportError:  # pragma: no cover - nir is a runtime dependency
        raise UserError("NIR interchange needs the 'nir' package (pip install nir)") from None
    return nir


def tau_from_decay(d: np.ndarray, dt: float) -> np.ndarray:
    """Time constants (seconds) for integer decays 0..4096: ``dt * 4096 / d`` (d = 0: see
    ``DECAY_ZERO``)."""
    return dt * DECAY_SCALE / np.maximum(np.asarray(d, dtype=np.float64), DECAY_ZERO)


def decay_from_tau(tau: np.ndarray, dt: float) -> np.ndarray:
    """Integer decays ``round(4096 dt / tau)`` (int64; > 4096 where tau < dt)."""
    return np.rint(DECAY_SCALE * dt / np.asarray(tau, dtype=np.float64)).astype(np.int64)


def parse_draw(text: str | int | None) -> str | int | None:
    """``mean``, ``fixed``, a seed (int) or None (the default for the network)."""
    if text is None or isinstance(text, int):
        return text
    if text in ("mean", "fixed"):
        return text
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--draw {text!r}: expected mean, fixed or an integer seed") from None
