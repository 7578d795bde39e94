"""Differential test: randhet's Loihi 1 datapath against nengo-loihi's integer emulator.

nengo-loihi 1.1.0 (a test dependency, see requirements/dev.txt) emulates a Loihi 1 compartment
in integers; its authors checked that emulator against the chip. Small dense layers of
hand-built compartments run on it step by step, and must agree exactly with
:func:`randhet.loihi.cuba` (u, v, spikes at every step) and with randhet's emulator and Lava
processes (spike rasters) under ``load_profile("loihi1").datapath()``: register-edge decays,
negative currents, ``u`` wrapping past ``+-2**23`` (and landing exactly on it) and the summed
synaptic input ``q0`` wrapping to 22 bits. A control checks that Lava's own datapath disagrees.

nengo-loihi's units, mapped to randhet's: ``decay_u = du - 1`` and ``decay_v = dv`` (registers),
``vth = vThMant << 6``, weights ``w << 6``; it reads the state after the reset (v = 0 where it
spiked), and a spike given at time ``t + 1`` reaches the compartment at step ``t + 2``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from randhet import loihi
from randhet.decays import DecayDraw
from randhet.deploy.emulator import emulate
from randhet.hardware import load_profile
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import DenseSpec, EncodingSpec, NetworkSpec, NeuronSpec

with warnings.catch_warnings():  # nengo 3.2 imports distutils' LooseVersion
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("nengo_loihi", reason="nengo-loihi (requirements/dev.txt) not installed")

LOIHI1 = load_profile("loihi1").datapath()
EDGE = 1 << 23
Q_HALF = 1 << 21  # q0 = a << 6 wraps to 22 signed bits on Loihi 1
DU_EDGES = (1, 2, 4095, 4096)  # the current decay register holds du - 1 in 0..4095
DV_EDGES = (0, 1, 4095)  # the voltage decay register holds dv in 0..4095


@dataclass(frozen=True)
class Case:
    """One dense layer and S samples: weights [N, n_in] (even, -256..254), threshold mantissa,
    binary input spikes [S, n_in, T] and per-sample, per-neuron decays [S, N]."""

    name: str
    weight: np.ndarray
    vth: int
    x: np.ndarray
    du: np.ndarray
    dv: np.ndarray

    def drive(self) -> torch.Tensor:
        """``a << 6`` [S, N, T] (int64), unbounded."""
        a = np.einsum("oi,sit->sot", self.weight, self.x)
        return torch.as_tensor(a, dtype=torch.int64) << loihi.ACT_SHIFT

    def network(self) -> ExportedNetwork:
        """The case as a deployable network (binary spikes sent as they are)."""
        n_out, n_in = self.weight.shape
        neuron = NeuronSpec(threshold=self.vth / 64, sigma=0.0, resample="fixed")
        spec = NetworkSpec((n_in,), (DenseSpec(n_in, n_out),), neuron,
                           EncodingSpec("rate", self.x.shape[-1]), n_out)
        layer = ExportedLayer(spec.layers[0], self.weight, 1024, 256, self.vth)
        return ExportedNetwork(spec, (layer,), {}, Path(f"{self.name}.net"))

    def draws(self) -> list[DecayDraw]:
        return [DecayDraw(torch.as_tensor(self.du, dtype=torch.float64),
                          torch.as_tensor(self.dv, dtype=torch.float64))]


def _pick(rng: np.random.Generator, edges: tuple[int, ...], lo: int, hi: int,
          size: tuple[int, int]) -> np.ndarray:
    """Decays [S, N]: each register edge at least once, the rest drawn from the edges and two
    uniform values in lo..hi."""
    n = size[0] * size[1]
    choice = np.concatenate([edges, rng.integers(lo, hi + 1, 2)])
    d = rng.choice(choice, n)
    d[: len(edges)] = edges
    return rng.permutation(d).reshape(size)


def random_case(seed: int) -> Case:
    """A random small layer with mixed-sign weights and edge decays."""
    rng = np.random.default_rng(seed)
    n_in, n_out, steps, samples = rng.integers(6, 41), rng.integers(3, 9), rng.integers(12, 21), 3
    weight = 2 * rng.integers(-128, 128, (n_out, n_in))
    x = (rng.random((samples, n_in, steps)) < rng.uniform(0.2, 0.8)).astype(np.int64)
    du = _pick(rng, DU_EDGES, 1, 4096, (samples, n_out))
    dv = _pick(rng, DV_EDGES, 0, 4095, (samples, n_out))
    return Case(f"random{seed}", weight, int(rng.integers(20, 400)), x, du, dv)


def _dec(u: int, du: int) -> int:
    """One integer decay step of ``u`` (sign and magnitude, as Loihi)."""
    return (1 if u >= 0 else -1) * ((abs(u) * (4096 - du)) >> 12)


def _onto_edge(rng: np.random.Generator, sign: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights [54] and spikes [54, T] that drive a du = 1 current exactly onto ``sign * 2**23``
    at some step: 40 "bulk" inputs at 254 (or -256) and 14 "fine" ones at +-2..128 that set the
    last step's input (found by a seeded search: the decayed u must leave a multiple of 128)."""
    bulk = 254 if sign > 0 else -256
    weight = np.concatenate([np.full(40, bulk), sign * np.tile(2 << np.arange(7), 2)])
    most = (40 * abs(bulk) + 508) << loihi.ACT_SHIFT  # the largest |a << 6| of one step
    while True:
        x = (rng.random((54, steps)) < 0.9).astype(np.int64)
        u = 0
        for t in range(steps):
            rest = sign * EDGE - _dec(u, 1)
            if abs(rest) <= most:  # the edge is reachable now: hit it exactly, or start over
                if rest % 128:
                    break
                a = abs(rest) >> loihi.ACT_SHIFT
                k = max(0, -(-(a - 508) // abs(bulk)))  # bulk inputs; the fine ones add <= 508
                f = (a - k * abs(bulk)) // 2
                lo, hi = min(f, 127), f - min(f, 127)
                bits = [(lo >> i) & 1 for i in range(7)] + [(hi >> i) & 1 for i in range(7)]
                x[:, t] = np.concatenate([np.arange(40) < k, bits])
                assert _dec(u, 1) + (int(weight @ x[:, t]) << loihi.ACT_SHIFT) == sign * EDGE
                return weight, x
            u = _dec(u, 1) + (int(weight @ x[:, t]) << loihi.ACT_SHIFT)


def overflow_case(seed: int = 0) -> Case:
    """The Loihi 1 overflows, one neuron each, on 160 + 54 + 54 inputs: q0 beyond 22 bits
    (0: 160 inputs at 254, 1: at -256, fed at 90%), u wrapping past +-2**23 with du = 1 (2: 40
    inputs at 254, 3: 40 at -256), u landing exactly on +2**23 (4) and -2**23 (5), and a
    mixed-sign neuron (6)."""
    rng = np.random.default_rng(seed)
    samples, steps = 2, 20
    weight = np.zeros((7, 268), dtype=np.int64)
    weight[0, :160], weight[1, :160] = 254, -256
    weight[2, :40], weight[3, 40:80] = 254, -256
    weight[6, :160] = 2 * rng.integers(-128, 128, 160)
    x = np.zeros((samples, 268, steps), dtype=np.int64)
    x[:, :160] = rng.random((samples, 160, steps)) < 0.9
    for s in range(samples):
        weight[4, 160:214], x[s, 160:214] = _onto_edge(rng, 1, steps)
        weight[5, 214:], x[s, 214:] = _onto_edge(rng, -1, steps)
    du = np.array([[4096, 4095, 1, 1, 1, 1, 2], [2, 4096, 2, 1, 1, 1, 1024]])
    dv = np.array([[0, 1, 4095, 0, 4095, 4095, 1], [4095, 0, 1, 1, 4095, 4095, 2048]])
    return Case("overflow", weight, 50_000, x, du, dv)


CASES = {c.name: c for c in [*(random_case(seed) for seed in range(5)), overflow_case()]}


@cache
def nengo_loihi_run(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u, v (after the reset) and spikes [S, N, T] of a case, one nengo-loihi run per sample.
    Step t integrates ``x[..., t]``, as in :func:`randhet.loihi.cuba`, the emulator and each
    sample window of the Lava network (whose pipeline delay ``run_lava`` already removes)."""
    from nengo_loihi.block import Axon, LoihiBlock, Synapse
    from nengo_loihi.emulator import EmulatorInterface
    from nengo_loihi.inputs import SpikeInput

    case = CASES[name]
    n_out, n_in = case.weight.shape
    out = []
    for s in range(len(case.x)):
        block = LoihiBlock(n_out)
        c = block.compartment
        c.decay_u = (case.du[s] - 1).astype(np.int32)  # the chip adds 1 to the current decay
        c.decay_v = case.dv[s].astype(np.int32)
        c.vth = np.full(n_out, case.vth << loihi.VTH_SHIFT, dtype=np.int32)  # int32: integers
        c.bias = np.zeros(n_out, dtype=np.int32)
        c.refract_delay = np.zeros(n_out, dtype=np.int32)
        c.scale_u = c.scale_v = False
        c.vmin, c.vmax = -EDGE + 1, EDGE - 1  # nengo-loihi's default vmin is 0
        syn = Synapse(n_in)
        syn.set_weights(case.weight.T.astype(np.float32))
        syn.weights = [(w.astype(np.int32) << loihi.ACT_SHIFT)[None, :] for w in case.weight.T]
        block.add_synapse(syn)
        source = SpikeInput(n_in)
        axon = Axon(n_in)
        axon.target = syn
        source.add_axon(axon)
        for t in range(case.x.shape[-1]):  # a spike given at t + 1 arrives at step t + 2
            idx = np.flatnonzero(case.x[s, :, t])
            if idx.size:
                source.add_spikes(t + 1, list(idx), permanent=True)
        model = SimpleNamespace(blocks=[block], inputs=[source], probes=[], dt=0.001)
        u, v, spiked = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its overflow warnings: overflows are the point
            with EmulatorInterface(model, seed=0) as emu:
                emu.step()  # the first step sees no input
                for _ in range(case.x.shape[-1]):
                    emu.step()
                    u.append(emu.compartment.current.astype(np.int64))
                    v.append(emu.compartment.voltage.astype(np.int64))
                    spiked.append(emu.compartment.spiked.copy())
        out.append([np.stack(r, -1) for r in (u, v, spiked)])
    return tuple(np.stack([o[i] for o in out]) for i in range(3))


def randhet_run(case: Case, datapath: loihi.Datapath) -> tuple[np.ndarray, ...]:
    """:func:`randhet.loihi.cuba`'s u, v after the reset and spikes [S, N, T]."""
    u, v, s = loihi.cuba(case.drive(), torch.as_tensor(case.du), torch.as_tensor(case.dv),
                         case.vth, datapath=datapath)
    return u.numpy(), torch.where(s, 0, v).numpy(), s.numpy()


def test_cases_cover_the_register_edges_signs_and_overflows() -> None:
    du = np.concatenate([c.du.ravel() for c in CASES.values()])
    dv = np.concatenate([c.dv.ravel() for c in CASES.values()])
    assert set(DU_EDGES) <= set(du.tolist()) and set(DV_EDGES) <= set(dv.tolist())
    assert du.min() >= 1 and dv.max() <= 4095  # chip-legal registers only
    assert len(set(du.tolist()) - set(DU_EDGES)) >= 5  # and values in between
    for case in CASES.values():
        assert set(np.unique(case.weight).tolist()) <= set(range(-256, 255, 2))
        _, _, spikes = nengo_loihi_run(case.name)
        assert spikes.any() and not spikes.all(), case.name
    case = CASES["overflow"]
    drive = case.drive()
    assert (drive[:, 0] >= Q_HALF).any() and (drive[:, 1] < -Q_HALF).any()  # q0 wraps
    unbounded, _, _ = loihi.cuba(drive, torch.as_tensor(case.du), torch.as_tensor(case.dv),
                                 case.vth, hardware=False)
    assert (unbounded[:, 2] > EDGE).any() and (unbounded[:, 3] < -EDGE).any()  # u wraps
    u_lava, _, _ = randhet_run(case, loihi.LAVA)  # Lava keeps +2**23 and makes -2**23 positive
    assert (u_lava[:, 4] == EDGE).sum(-1).min() >= 1 and (u_lava[:, 5] == EDGE).sum(-1).min() >= 1
    assert all((r < 0).any() for r in (drive.numpy(), u_lava))  # negative currents


@pytest.mark.parametrize("name", list(CASES))
def test_cuba_on_the_loihi1_datapath_equals_nengo_loihi_at_every_step(name: str) -> None:
    nl_u, nl_v, nl_s = nengo_loihi_run(name)
    u, v, s = randhet_run(CASES[name], LOIHI1)
    assert np.array_equal(u, nl_u)
    assert np.array_equal(v, nl_v)
    assert np.array_equal(s, nl_s)


@pytest.mark.parametrize("name", list(CASES))
def test_the_emulator_on_the_loihi1_datapath_spikes_as_nengo_loihi(name: str) -> None:
    case = CASES[name]
    rasters = emulate(case.network(), case.x, case.draws(), datapath=LOIHI1).rasters
    assert np.array_equal(rasters[0], nengo_loihi_run(name)[2])


@pytest.mark.lava
@pytest.mark.parametrize("name", ["random0", "overflow"])
def test_lava_on_the_loihi1_datapath_spikes_as_nengo_loihi(name: str) -> None:
    from randhet.deploy.lava_backend import run_lava

    case = CASES[name]
    rasters = run_lava(case.network(), case.x, case.draws(), datapath=LOIHI1).rasters
    assert np.array_equal(rasters[0], nengo_loihi_run(name)[2])


def test_control_lavas_datapath_disagrees_with_nengo_loihi_on_overflows() -> None:
    case = CASES["overflow"]
    nl_u, _, nl_s = nengo_loihi_run("overflow")
    u, _, s = randhet_run(case, loihi.LAVA)
    rasters = emulate(case.network(), case.x, case.draws()).rasters[0]
    assert np.array_equal(rasters, s)
    assert ((nl_u[:, 4:6] == -EDGE) & (u[:, 4:6] == EDGE)).any(-1).all()  # the 24-bit register
    for n in (0, 1, 4, 5):  # q0 beyond 22 bits, u on +-2**23: Lava's datapath parts ways
        assert not np.array_equal(u[:, n], nl_u[:, n]), n
        assert not np.array_equal(s[:, n], nl_s[:, n]), n
    for n in (2, 3, 6):  # u past +-2**23 wraps alike on both
        assert np.array_equal(u[:, n], nl_u[:, n]), n
