"""The inputs of a network that names no data set (a stock netx file): the user's file, or a
synthetic workload that the report names.

A network that starts with netx's input layer takes one value ``x`` per input neuron and
sample; each neuron's bias mantissa is ``round(weight * x + bias)`` (the transform in the file),
held for the sample's T steps. lava-dl's PilotNet tutorials map a frame's [0, 1] pixels to
``x = 2 * pixel - 1``, so the synthetic workload draws ``x`` uniform in [-1, 1]. A network
without an input layer reads binary spikes [S, *input, T]; the synthetic workload sends each
input a spike with probability 0.2 per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from randhet.errors import UserError
from randhet.network import ExportedNetwork
from randhet.spec import InputSpec

SYNTHETIC_SPIKE_RATE = 0.2
SYNTHETIC_SAMPLES = 16  # a synthetic workload's size when --samples is 0 ("all")
BIAS_MANTISSA = (-(1 << 12), (1 << 12) - 1)  # Loihi's 13-bit signed bias mantissa


@dataclass(frozen=True)
class Workload:
    """Integer inputs [S, *input, T] and where they came from (one line for the report)."""

    inputs: np.ndarray
    source: str


def inputs_help() -> str:
    """What ``--inputs`` holds, for the CLI's help."""
    return ("a .npy array of inputs for a stock netx file: [N, *input shape] (C, H, W as the "
            "file's first layer; or [N, *shape, T]); for netx's input layer the values x set "
            "each neuron's bias mantissa round(weight * x + bias), otherwise 0/1 spikes. "
            "Without it a synthetic workload is used and named in the report")


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"--inputs {path}: not a readable .npy array ({exc})") from None


def _with_time(x: np.ndarray, shape: tuple[int, ...], steps: int, path: Path) -> np.ndarray:
    if tuple(x.shape[1:]) == shape:
        return np.repeat(x[..., None], steps, axis=-1)
    if tuple(x.shape[1:]) == (*shape, steps):
        return x
    raise UserError(f"--inputs {path}: shape {tuple(x.shape)}, expected [N, "
                    f"{', '.join(map(str, shape))}] or [N, {', '.join(map(str, shape))}, {steps}]")


def _biases(spec: InputSpec, x: np.ndarray, what: str) -> np.ndarray:
    b = np.rint(spec.weight * x.astype(np.float64) + spec.bias).astype(np.int64)
    if b.min(initial=0) < BIAS_MANTISSA[0] or b.max(initial=0) > BIAS_MANTISSA[1]:
        raise UserError(f"{what}: round(weight * x + bias) leaves the 13-bit bias mantissa "
                        f"{BIAS_MANTISSA[0]}..{BIAS_MANTISSA[1]} (weight {spec.weight}, bias "
                        f"{spec.bias})")
    return b


def stock_workload(net: ExportedNetwork, inputs: str | Path | None, samples: int,
                   seed: int) -> Workload:
    """``samples`` inputs for ``net`` from the ``inputs`` file (at most its length; 0: all of
    it) or drawn from ``seed`` (0: :data:`SYNTHETIC_SAMPLES`)."""
    steps = net.spec.encoding.timesteps
    first = net.spec.layers[0]
    shape = tuple(net.spec.input_shape)
    if inputs is None:
        if samples < 0:
            raise UserError(f"--samples must be >= 0, got {samples}")
        samples = samples or SYNTHETIC_SAMPLES
        rng = np.random.default_rng(seed)
        if isinstance(first, InputSpec):
            x = rng.uniform(-1.0, 1.0, (samples, *shape))
            return Workload(_with_time(_biases(first, x, "synthetic"), shape, steps, Path()),
                            f"synthetic: x uniform in [-1, 1] per input neuron (seed {seed}), "
                            "the input layer's bias mantissa round(weight * x + bias)")
        spikes = (rng.random((samples, *shape, steps)) < SYNTHETIC_SPIKE_RATE).astype(np.int64)
        return Workload(spikes, f"synthetic: binary spikes with probability "
                                f"{SYNTHETIC_SPIKE_RATE} per input and step (seed {seed})")
    path = Path(inputs)
    x = _load(path)
    if samples < 0 or x.ndim < 2:
        raise UserError(f"--inputs {path}: needs samples >= 0 and an array [N, ...], got "
                        f"--samples {samples} and shape {tuple(x.shape)}")
    n = min(samples or len(x), len(x))
    x, name = x[:n], f"{path} (the first {n} of its {len(x)} samples)"
    if isinstance(first, InputSpec):
        return Workload(_with_time(_biases(first, x, f"--inputs {path}"), shape, steps, path),
                        f"{name}: the input layer's bias mantissa round(weight * x + bias)")
    if not np.isin(x, (0, 1)).all():
        raise UserError(f"--inputs {path}: a network without netx's input layer reads 0/1 "
                        "spikes")
    return Workload(_with_time(x.astype(np.int64), shape, steps, path), f"{name}: spikes")
