"""Hardware profiles load, match the notes, reject bad files, and give hand-checkable energy."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from randhet.errors import ProfileError
from randhet.hardware import (
    EnergyEstimate,
    HardwareProfile,
    estimate_ann_energy,
    estimate_energy,
    list_profiles,
    load_profile,
    profile_dirs,
)

SHIPPED = Path(__file__).resolve().parents[1] / "hardware_profiles"


def _variant(tmp_path: Path, old: str, new: str, name: str = "broken.toml") -> Path:
    text = (SHIPPED / "loihi1.toml").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_both_shipped_profiles_load() -> None:
    assert {"loihi1", "loihi2"} <= set(list_profiles())
    assert profile_dirs()[0] == SHIPPED
    for name in ("loihi1", "loihi2"):
        profile = load_profile(name)
        assert isinstance(profile, HardwareProfile)
        assert profile.name == name
        assert profile.sources
        assert "lower-bound" in profile.energy.energy_basis


def test_loihi1_numbers_match_notes() -> None:
    p = load_profile("loihi1")
    assert p.energy.synaptic_op_pj == 23.6
    assert p.energy.neuron_update_active_pj == 81
    assert p.energy.neuron_update_inactive_pj == 52
    assert p.energy.spike_in_tile_pj == 1.7
    assert p.energy.synaptic_update_pj == 120
    assert p.energy.static_power_w_per_chip == 0.104
    assert p.core.cores_per_chip == 128
    assert p.core.neurons_per_core == 1024
    assert p.core.neurons_per_chip == 131_072
    assert p.core.synaptic_memory_bytes_per_core == 128 * 1024
    assert p.core.max_fan_in_axons_per_core == 4096
    assert p.core.max_fan_out_per_core == 4096
    assert p.bits.weight_bits == 8
    assert p.bits.weight_range == (-256, 254)
    assert p.bits.decay_bits == 12
    assert p.bits.state_bits == 24
    assert p.bits.threshold_mantissa_bits == 17
    assert p.bits.delay_bits == 6
    assert p.bits.max_delay == 62
    assert p.ann_reference.mac_32bit_float_pj == 4.6
    assert p.ann_reference.ac_pj == 0.9
    assert any("Davies" in s and "2018" in s for s in p.sources.values())


def test_loihi2_numbers_match_notes_and_unknowns_are_absent() -> None:
    p = load_profile("loihi2")
    assert p.core.cores_per_chip == 128
    assert p.core.neurons_per_core == 8192
    assert p.core.neurons_per_chip == 1_048_576
    assert p.core.synapses_per_chip == 120_000_000
    assert p.core.synaptic_memory_bytes_per_core is None
    assert p.core.max_fan_in_axons_per_core is None
    assert p.core.max_fan_out_per_core is None
    assert p.energy.static_power_w_per_chip == 0.232  # lava-dl's PilotNet board run
    assert p.energy.proxy_of == "loihi1"
    assert p.default_timing == "proxy" and "PROXY" in p.timing["proxy"].source
    assert p.timing["proxy"].synaptic_op_ns == pytest.approx(3.5 / 5)  # Intel's ratios
    assert p.placement is not None and p.placement.synaptic_memory_words_per_core == 12000
    assert p.energy.synaptic_op_pj == 23.6
    assert "PROXY" in p.energy.energy_basis
    assert "no public Loihi 2" in p.energy.energy_basis
    assert p.bits.graded_spike_bits == 32
    assert p.bits.lava_cpu_graded_spike_bits == 24


def test_load_by_path(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'name = "loihi1"', 'name = "mychip"', name="mychip.toml")
    p = load_profile(str(path))
    assert p.name == "mychip"
    assert p.path == path


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = _variant(tmp_path, "synaptic_op_pj = 23.6", "")
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    assert str(err.value) == "broken.toml: [energy] synaptic_op_pj is missing"


def test_missing_table_is_named(tmp_path: Path) -> None:
    path = _variant(tmp_path, "[ann_reference]", "[ann_reference_typo]")
    with pytest.raises(ProfileError, match="ann_reference"):
        load_profile(str(path))


def test_negative_energy_is_rejected(tmp_path: Path) -> None:
    path = _variant(tmp_path, "spike_in_tile_pj = 1.7", "spike_in_tile_pj = -1.7")
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    message = str(err.value)
    assert message.startswith("broken.toml: [energy] spike_in_tile_pj")
    assert "\n" not in message


@pytest.mark.parametrize(("old", "new", "message"), [
    ("neurons_per_core = 1024", 'neurons_per_core = "1024"',
     r"broken\.toml: \[core\] neurons_per_core .*integer"),  # a wrong type
    ("cores_per_chip = 128", "cores_per_chip = 0", r"\[core\] cores_per_chip"),  # not > 0
    ("weight_range = [-256, 254]", "weight_range = [254]", r"\[bits\] weight_range"),
    ("ac_pj = 0.9", "ac_pj = 0.9\nacc_pj = 0.9",
     r"\[ann_reference\] acc_pj is not a known field"),  # an unknown field
])
def test_a_bad_field_is_rejected_naming_it(old: str, new: str, message: str,
                                           tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profile(str(_variant(tmp_path, old, new)))


def test_bad_toml_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "garbled.toml"
    path.write_text('name = "x"\n[energy\nsynaptic_op_pj = ')
    with pytest.raises(ProfileError, match=r"garbled\.toml: not valid TOML"):
        load_profile(str(path))


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ProfileError) as err:
        load_profile("loihi9")
    message = str(err.value)
    assert "loihi9" in message
    assert "loihi1" in message and "loihi2" in message


def test_missing_path_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(str(tmp_path / "nope.toml"))


def test_energy_of_three_neuron_example() -> None:
    # 2 inputs -> 3 neurons, T = 4 steps, weight [out, in] = [[2, 0], [0, 0], [6, -8]].
    # Input 0 spikes 3 times (2 nonzero weights), input 1 once (1 nonzero weight):
    #   synops = 3*2 + 1*1 = 7.
    # Neuron updates = 3 neurons * 4 steps = 12, of which 5 active, 7 inactive; 2 output spikes.
    # E = 7*23.6 + 5*81 + 7*52 + 2*1.7 = 165.2 + 405 + 364 + 3.4 = 937.6 pJ.
    p = load_profile("loihi1")
    est = estimate_energy(p, synops=7, neuron_updates=12, active_neuron_updates=5, spikes=2)
    assert isinstance(est, EnergyEstimate)
    assert math.isclose(est.joules_per_sample, 937.6e-12, rel_tol=1e-12)
    assert math.isclose(est.breakdown_joules["synaptic"], 165.2e-12, rel_tol=1e-12)
    assert math.isclose(est.breakdown_joules["neuron_active"], 405e-12, rel_tol=1e-12)
    assert math.isclose(est.breakdown_joules["neuron_inactive"], 364e-12, rel_tol=1e-12)
    assert math.isclose(est.breakdown_joules["spike"], 3.4e-12, rel_tol=1e-12)
    assert est.formula == (
        "E = synops*23.6 pJ + active_updates*81 pJ + inactive_updates*52 pJ + spikes*1.7 pJ"
    )
    assert "loihi1" in est.basis
    assert "static power excluded" in est.basis
    assert "lower-bound" in est.basis
    assert est.counts["inactive_neuron_updates"] == 7
    assert json.loads(json.dumps(est.to_dict()))["joules_per_sample"] == est.joules_per_sample


def test_loihi2_estimate_is_labelled_proxy() -> None:
    est = estimate_energy(
        load_profile("loihi2"), synops=7, neuron_updates=12, active_neuron_updates=5, spikes=2
    )
    assert math.isclose(est.joules_per_sample, 937.6e-12, rel_tol=1e-12)
    assert "PROXY" in est.basis and "loihi2" in est.basis


def test_energy_rejects_bad_counts() -> None:
    p = load_profile("loihi1")
    with pytest.raises(ValueError, match="exceeds"):
        estimate_energy(p, synops=0, neuron_updates=3, active_neuron_updates=4, spikes=0)
    with pytest.raises(ValueError, match="synops"):
        estimate_energy(p, synops=-1, neuron_updates=3, active_neuron_updates=0, spikes=0)


def test_ann_energy_uses_horowitz_mac() -> None:
    # 10 MACs * 4.6 pJ = 46 pJ.
    assert math.isclose(estimate_ann_energy(load_profile("loihi1"), macs=10), 46e-12)


def test_loihi1_timing_bases_match_notes() -> None:
    p = load_profile("loihi1")
    assert p.default_timing == "sanafe" and set(p.timing) == {"sanafe", "davies2018"}
    sanafe, davies = p.timing["sanafe"], p.timing["davies2018"]
    assert (sanafe.neuron_ns, sanafe.neuron_active_extra_ns, sanafe.message_in_ns) == (6.0, 3.7,
                                                                                       16.0)
    assert (sanafe.synaptic_op_pj, sanafe.conv_synaptic_op_pj, sanafe.message_out_pj) == (
        35.5, 24.0, 111.0)
    assert sanafe.barrier_ns == {1: 600.0, 2: 1000.0, 4: 1400.0, 29: 1800.0}
    assert davies.synaptic_op_ns == 3.5 and davies.neuron_ns + davies.neuron_active_extra_ns \
        == pytest.approx(8.4)
    assert davies.barrier(1) == 113.0 and davies.barrier(32) == 465.0


@pytest.mark.parametrize(("old", "new", "message"), [
    ('default = "sanafe"', 'default = "nope"', "default must name one of its bases"),
    ("neuron_ns = 6.0 ", "neuron_nz = 6.0 ", "[timing.sanafe] neuron_nz is not a known field"),
    ("29 = 1800.0", "29 = -1.0", "must map integers >= 1 to numbers >= 0"),
    ('barrier_interpolation = "step"', 'barrier_interpolation = "cubic"', "must be one of"),
])
def test_bad_timing_tables_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message)):
        load_profile(str(_variant(tmp_path, old, new)))
