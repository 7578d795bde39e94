"""Chip-true Loihi: the profile says what the datapath does, the emulator and Lava follow it
bit for bit, and where a profile does not know, the events a chip could differ on are counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from randhet import loihi
from randhet.decays import DecayDraw, deployment_draws
from randhet.deploy.emulator import chip_events, emulate
from randhet.deploy.lava_backend import run_lava
from randhet.hardware import Arithmetic, load_profile
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import DenseSpec, EncodingSpec, NetworkSpec, NeuronSpec

LOIHI1 = load_profile("loihi1")
EDGE = 1 << 23


def test_profiles_say_what_the_chip_holds_or_that_it_is_unknown() -> None:
    a = LOIHI1.arithmetic
    assert (a.current_decay_range, a.voltage_decay_range) == ((1, 4096), (0, 4095))
    assert (a.synaptic_input_bits, a.current_overflow) == (22, "twos_complement")
    assert LOIHI1.core.compartment_profiles_per_core == 31
    assert LOIHI1.core.threshold_profiles_per_core == 7
    assert "nengoloihi" in LOIHI1.sources
    assert LOIHI1.datapath() == loihi.Datapath(22, "twos_complement")
    loihi2 = load_profile("loihi2")
    assert loihi2.arithmetic == Arithmetic()  # every field "unknown"
    assert loihi2.core.compartment_profiles_per_core is None
    assert loihi2.datapath() == loihi.LAVA


def _edge_drive() -> torch.Tensor:
    """-2**21 four times, then -5120: with du = 1 u reaches exactly -2**23 at step 5."""
    return torch.tensor([[-(1 << 21)] * 4 + [-5120]], dtype=torch.int64)


def test_the_two_wraps_differ_only_at_2pow23() -> None:
    du, dv = torch.tensor([1]), torch.tensor([0])
    u_lava, _, _ = loihi.cuba(_edge_drive(), du, dv, 1 << 16)
    u_chip, _, _ = loihi.cuba(_edge_drive(), du, dv, 1 << 16, datapath=LOIHI1.datapath())
    assert u_lava[0, 4] == EDGE and u_chip[0, 4] == -EDGE  # Lava turns -2**23 into +2**23
    assert torch.equal(u_lava[0, :4], u_chip[0, :4])
    x = torch.tensor([EDGE - 1, EDGE, EDGE + 5, -EDGE, -EDGE - 1, 3 << 24], dtype=torch.int64)
    assert loihi.wrap_current(x, twos_complement=True).tolist() == [
        EDGE - 1, -EDGE, -EDGE + 5, -EDGE, EDGE - 1, 0]
    assert loihi.wrap_current(x).tolist()[:5] == [EDGE - 1, EDGE, -EDGE + 5, EDGE, EDGE - 1]


def test_q0_wraps_to_the_synaptic_input_width() -> None:
    a = torch.tensor([[32767, 32768, -32768, -32769, 40640]], dtype=torch.int64)
    drive = a << loihi.ACT_SHIFT
    full = torch.tensor([4096])
    u_chip, _, _ = loihi.cuba(drive, full, full - 4096, 1 << 16, datapath=LOIHI1.datapath())
    u_lava, _, _ = loihi.cuba(drive, full, full - 4096, 1 << 16)
    assert u_lava[0].tolist() == drive[0].tolist()
    assert u_chip[0].tolist() == [32767 << 6, -(1 << 21), -(1 << 21), (1 << 21) - 64,
                                  (40640 - 65536) << 6]


def _wide_network(n_in: int = 160) -> ExportedNetwork:
    """``n_in`` inputs at weight 254 into 4 neurons whose current decays fully each step, so
    u is the step's q0: 160 x 254 = 40640 > 2**15 - 1 wraps on Loihi 1."""
    vth = 1000
    neuron = NeuronSpec(threshold=vth / 64, current_decay=1.0, voltage_decay=0.5, sigma=0.0)
    spec = NetworkSpec((n_in,), (DenseSpec(n_in, 4),), neuron, EncodingSpec("rate", 6), 4)
    weight = np.full((4, n_in), 254, dtype=np.int64)
    weight[1] = -256
    weight[2, : n_in // 2] = 0
    weight[3, :] = 2
    return ExportedNetwork(spec, (ExportedLayer(spec.layers[0], weight, 4096, 2048, vth),), {},
                           Path("wide.net"))


@pytest.mark.lava
def test_emulator_and_lava_follow_the_loihi1_datapath_bit_for_bit() -> None:
    net = _wide_network()
    rng = np.random.default_rng(0)
    inputs = (rng.random((3, 160, 6)) < 0.9).astype(np.int64)
    draws = deployment_draws(net, 3, seed=0)
    chip = LOIHI1.datapath()
    emu = emulate(net, inputs, draws, datapath=chip)
    lava = run_lava(net, inputs, draws, datapath=chip)
    assert np.array_equal(emu.rasters[0], lava.rasters[0])
    assert np.array_equal(emu.active_steps[0], lava.active_steps[0])
    # neuron 0 (a = 254 x ~144 > 2**15) spikes on Lava's unbounded input and is silenced by
    # the wrapped one on Loihi 1; neuron 3 (a = 2 x ~144) spikes on both
    lava_semantics = emulate(net, inputs, draws).rasters[0]
    assert lava_semantics[:, 0].any() and not emu.rasters[0][:, 0].any()
    assert np.array_equal(lava_semantics[:, 3], emu.rasters[0][:, 3])


def test_events_count_where_a_chip_could_differ() -> None:
    watch = LOIHI1.arithmetic
    drive = torch.tensor([[1 << 21, (1 << 21) - 64, -(1 << 21), -(1 << 21) - 64]],
                         dtype=torch.int64)
    u = torch.tensor([[EDGE, -EDGE, EDGE - 1, 0]], dtype=torch.int64)
    du = torch.tensor([[0, 1, 4096, 0]])
    dv = torch.tensor([[4096, 4095, 0, 7]])
    assert chip_events(drive, u, du, dv, watch) == {
        "q0_beyond_width": 2, "u_at_2pow23": 2, "current_decays_out_of_range": 2,
        "voltage_decays_out_of_range": 1}
    assert chip_events(drive, u, du, dv, Arithmetic()) == {  # a profile that knows nothing
        "q0_beyond_width": 0, "u_at_2pow23": 2, "current_decays_out_of_range": 0,
        "voltage_decays_out_of_range": 0}
    net = _wide_network()
    inputs = np.ones((2, 160, 6), dtype=np.int64)
    draws = [DecayDraw(torch.zeros(2, 4, dtype=torch.float64),
                       torch.full((2, 4), 4096.0, dtype=torch.float64))]
    events = emulate(net, inputs, draws, watch=watch).events
    # neurons 0 and 1 get |a| = 40640 and 40960 > 2**15 every step; the decays are all out
    assert events == [{"q0_beyond_width": 2 * 2 * 6, "u_at_2pow23": 0,
                       "current_decays_out_of_range": 8, "voltage_decays_out_of_range": 8}]
    assert emulate(net, inputs, draws).events is None


@pytest.mark.parametrize("distribution", ["logit_normal", "gaussian"])
@pytest.mark.parametrize("resample", ["forward", "step", "fixed"])
def test_draws_never_leave_the_register_ranges(distribution: str, resample: str) -> None:
    """Extreme spread around edge means: every drawn decay is one Loihi 1's registers hold,
    in the training neuron (which export and the reference use) and in deployment draws."""
    from randhet.decays import draw_layer
    from randhet.models.neuron import RandHetNeuron

    sigma = 50.0 if distribution == "logit_normal" else 2.0
    for current, voltage in ((0.0, 1.0), (1.0, 0.0), (0.5, 0.5)):
        spec = NeuronSpec(current_decay=current, voltage_decay=voltage, sigma=sigma,
                          distribution=distribution, resample=resample)
        ranges = (spec.current_decay_range, spec.voltage_decay_range)
        assert ranges == (LOIHI1.arithmetic.current_decay_range,
                          LOIHI1.arithmetic.voltage_decay_range)
        gen = torch.Generator().manual_seed(0)
        draws = [draw_layer(spec, 64, (200,), gen, steps=4),
                 RandHetNeuron(spec, (200,), gen).draw(64, 4)]
        for draw in draws:
            for d, (lo, hi) in zip((draw.current, draw.voltage), ranges, strict=True):
                assert lo <= d.min() and d.max() <= hi
        if current == 0.5:  # the spread reaches both edges: the clamp is what holds it
            for d, (lo, hi) in zip((draws[0].current, draws[0].voltage), ranges, strict=True):
                assert d.min() == lo and d.max() == hi


def _dense(n: int, resample: str = "forward") -> ExportedNetwork:
    spec = NetworkSpec((4,), (DenseSpec(4, n),), NeuronSpec(sigma=1.0, resample=resample),
                       EncodingSpec("rate", 3), n)
    weight = np.full((n, 4), 2, dtype=np.int64)
    return ExportedNetwork(spec, (ExportedLayer(spec.layers[0], weight, 1024, 123, 80),), {},
                           Path("dense.net"))


def _draw(du: np.ndarray, dv: np.ndarray) -> list[DecayDraw]:
    return [DecayDraw(torch.as_tensor(du, dtype=torch.float64),
                      torch.as_tensor(dv, dtype=torch.float64))]


def test_fit_counts_decay_profiles_per_core_and_cuts_until_they_fit() -> None:
    from randhet.deploy.fit import check_fit

    net = _dense(100)
    ten = 1 + np.arange(100) % 10  # 10 distinct pairs among 100 neurons on one core
    fit = check_fit(net, LOIHI1, _draw(np.stack([ten, ten]), np.zeros((2, 100))))
    layer = fit.layers[0]
    assert fit.fits and layer.neurons_per_core == 100 and layer.decay_profiles == 10
    assert layer.profile_cut is None and fit.profile_limited is None
    assert layer.redraw_writes_per_sample == 2 * 10  # decayU and decayV of 10 profiles

    own = np.stack([1 + np.arange(100), 1 + np.arange(100)[::-1]])  # a pair per neuron
    fit = check_fit(net, LOIHI1, _draw(own, np.zeros((2, 100))))
    layer = fit.layers[0]
    assert not fit.fits and layer.decay_profiles == 100 and layer.decay_profiles_core == 0
    assert layer.profile_cut == {"neurons_per_core": 31, "cores": 4}  # 31 + 31 + 31 + 7
    assert fit.profile_limited == {"cores": 4, "chips": 1}
    assert fit.summary() == ("does not fit loihi1: 0:dense:100: core 0 needs 100 decay "
                             "profiles, the chip has 31; with every core within its decay "
                             "profiles it needs 4 cores, 1 chip(s)")
    assert layer.redraw_writes_per_sample == 2 * 100  # every neuron's pair, every sample
    assert layer.redraw_writes_busiest_core == 2 * 31 and layer.threshold_profiles == 1
    assert fit.redraw()["register_writes_per_sample"] == 200
    assert fit.redraw()["bytes_per_sample"] == 200 * 12 / 8
    assert fit.redraw()["energy_joules_per_sample"] == "unknown"

    # per-step redraws: the worst step counts, every step's profiles are rewritten
    steps = np.ones((1, 100, 3))
    steps[0, :, 1] = 1 + np.arange(100)
    layer = check_fit(_dense(100, "step"), LOIHI1, _draw(steps, np.zeros((1, 100, 3)))).layers[0]
    assert layer.decay_profiles == 100 and layer.profile_cut["neurons_per_core"] == 31
    assert layer.redraw_writes_per_sample == 2 * (4 + 100 + 4)  # 4 cores: 1 + 1 + 1 + 1 pairs

    # a frozen draw is written once: no traffic per sample; a profile without the limit
    frozen = check_fit(_dense(100, "fixed"), LOIHI1, _draw(own[:1], np.zeros((1, 100))))
    assert frozen.layers[0].redraw_writes_per_sample == 0.0
    unknown = check_fit(net, load_profile("loihi2"), _draw(own, np.zeros((2, 100))))
    assert unknown.fits and unknown.layers[0].decay_profiles == 100
    assert unknown.limits["compartment_profiles_per_core"] == "unknown"


@pytest.mark.lava
def test_deploy_runs_the_profile_datapath_on_lava_and_reports_the_events(
    tiny_run: Path, tmp_path: Path
) -> None:
    """A user profile whose q0 is 12 bits wide: Lava and the emulator wrap alike (bit-exact
    with each other), the torch model has no wrap (it differs), and deploy.json counts it."""
    from randhet.deploy.pipeline import deploy

    shipped = Path(__file__).parents[1] / "hardware_profiles" / "loihi1.toml"
    narrow = tmp_path / "narrow.toml"
    narrow.write_text(shipped.read_text().replace("synaptic_input_bits = 22",
                                                  "synaptic_input_bits = 12"))
    report = deploy(tiny_run / "network.net", backend="lava", samples=12, profile=str(narrow),
                    out_dir=tmp_path / "narrow", progress=False).to_dict()
    assert report["emulator_bit_exact_fraction"] == 1.0
    assert report["bit_exact_fraction"] < 1.0
    chip = report["chip"]
    assert chip["applied"] == "loihi1's datapath" and chip["datapath"]["synaptic_input_bits"] == 12
    assert chip["events"][0]["q0_beyond_width"] > 0
    same = deploy(tiny_run / "network.net", backend="emulator", samples=12, profile="loihi2",
                  out_dir=tmp_path / "loihi2", progress=False).to_dict()
    assert same["bit_exact_fraction"] == 1.0  # Lava's semantics, as the torch model
    assert same["chip"]["applied"].startswith("Lava's CPU semantics")
    assert same["chip"]["watched"]["source"]["synaptic_input_bits"].startswith("loihi1")
    assert [ev["q0_beyond_width"] for ev in same["chip"]["events"]] == [0, 0]
    assert same["timing"]["basis"] == "proxy" and same["timing"]["time_per_step_s"] > 0
    assert same["resources"]["redraw"]["register_writes_per_sample"] > 0
