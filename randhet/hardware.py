"""Hardware profiles (``hardware_profiles/*.toml``) and per-sample energy estimates.

A profile holds a chip's bit widths, per-core limits, per-operation energies, the compiler's
placement rules and per-event times (``[timing]``), each with a cited source.
:func:`estimate_energy` turns per-sample operation counts into dynamic joules; static energy
needs the chip's time, which :mod:`randhet.deploy.timing` models from the ``[timing]`` bases (the
simulator's wall-clock time says nothing about it).

Each table's dataclass is its schema (:mod:`randhet.schema`): :func:`load_profile` checks a file
by it and :func:`profile_keys` lists every key for the docs.
"""

from __future__ import annotations

import math
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from randhet import schema
from randhet.errors import ProfileError
from randhet.loihi import Datapath
from randhet.schema import UNKNOWN as UNKNOWN  # "unknown": an optional field may say so
from randhet.schema import KeyDoc, internal, key

PJ = 1e-12  # joules per picojoule
REFERENCE_PROFILE = "loihi1"  # the chip whose datapath has a public source (nengo-loihi, Lava)
_MAX_BITS = 64  # the widest bit field a profile may give


@dataclass(frozen=True)
class BitWidths:
    """Fixed-point formats of weights, delays, decays, state and threshold (bits)."""

    weight_bits: int = key("synaptic weight mantissa bits", min=1, max=_MAX_BITS)
    weight_range: tuple[int, int] = key("integer weights the chip holds, [low, high]", kind="range")
    delay_bits: int = key("synaptic delay bits", min=1, max=_MAX_BITS)
    max_delay: int = key("longest synaptic delay (steps; fits in delay_bits)", min=0)
    decay_bits: int = key("current and voltage decay register bits", min=1, max=_MAX_BITS)
    state_bits: int = key("signed bits of the current and voltage state", min=1, max=_MAX_BITS)
    threshold_mantissa_bits: int = key("threshold mantissa (vThMant) bits", min=1,
                                       max=_MAX_BITS)
    threshold_shift: int = key("left shift of the threshold mantissa", min=0)
    bias_mantissa_bits: int = key("bias mantissa bits", min=1, max=_MAX_BITS)
    bias_exponent_bits: int = key("bias exponent bits", min=0, max=_MAX_BITS)
    graded_spike_bits: int | None = key("graded spike payload bits on chip (absent: binary "
                                        "spikes)", None, min=1, max=_MAX_BITS)
    lava_cpu_graded_spike_bits: int | None = key("graded spike bits Lava's CPU models carry",
                                                 None, min=1, max=_MAX_BITS)


@dataclass(frozen=True)
class CoreLimits:
    """Per-chip and per-core resource limits; ``None`` means no public figure is known."""

    cores_per_chip: int = key("neuromorphic cores per chip", min=1)
    neurons_per_core: int = key("neurons (compartments) per core", min=1)
    synaptic_memory_bytes_per_core: int | None = key("synaptic memory per core (bytes)", None,
                                                     min=1)
    max_fan_in_axons_per_core: int | None = key("input axons per core", None, min=1)
    max_fan_out_per_core: int | None = key("core-to-core fan-out edges per core", None, min=1)
    synapses_per_chip: int | None = key("synapses per chip", None, min=1)
    x86_cores_per_chip: int | None = key("embedded x86 cores per chip", None, min=1)
    # a core's neurons point to these shared tables: decays (with refractory delay and noise)
    # and thresholds; a neuron cannot have a decay pair or threshold of its own
    compartment_profiles_per_core: int | None = key(
        "usable compartment (decay) profiles per core, shared by its neurons", None, min=1)
    threshold_profiles_per_core: int | None = key(
        "usable threshold profiles per core, shared by its neurons", None, min=1)

    @property
    def neurons_per_chip(self) -> int:
        """Neurons per chip (cores_per_chip * neurons_per_core)."""
        return self.cores_per_chip * self.neurons_per_core


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation (pJ) and static power (W per chip, ``None`` if unknown)."""

    synaptic_op_pj: float = key("energy of a synaptic spike operation (pJ)", above=0)
    neuron_update_active_pj: float = key("energy of an active neuron update (pJ)", above=0)
    neuron_update_inactive_pj: float = key("energy of an inactive neuron update (pJ)",
                                           above=0)
    spike_in_tile_pj: float = key("energy of a spike delivered within a tile (pJ)", above=0)
    energy_basis: str = key("what the energies are and how far an estimate on them goes",
                            nonempty=True)
    static_power_w_per_chip: float | None = key("static power per chip (W; excluded from "
                                                "estimates)", None, above=0)
    synaptic_update_pj: float | None = key("energy of a learning update (pJ; not used)", None,
                                           above=0)
    hop_east_west_pj: float | None = key("energy per east-west tile hop (pJ; not used)", None,
                                         above=0)
    hop_north_south_pj: float | None = key("energy per north-south tile hop (pJ; not used)",
                                           None, above=0)
    proxy_of: str | None = key("the chip whose energies stand in for this one's", None,
                               nonempty=True)
    register_write_pj: float | None = key("energy of a host register write (pJ)", None,
                                          above=0)


@dataclass(frozen=True)
class Arithmetic:
    """What the chip's integer datapath does where Lava's CPU model does not say; a missing
    field is unknown (randhet then keeps Lava's semantics and counts where a chip could differ).

    Decay ranges are in randhet's units (``d``: the state keeps ``(4096 - d) / 4096`` per step)
    that the registers can hold; ``synaptic_input_bits`` is the signed width ``q0 = a << 6``
    wraps to; ``current_overflow`` is ``"twos_complement"`` or ``"lava"``."""

    current_decay_range: tuple[int, int] | None = key(
        "current decays d the register holds, [low, high] (Loihi 1: [1, 4096])", None,
        kind="interval")
    voltage_decay_range: tuple[int, int] | None = key(
        "voltage decays d the register holds, [low, high] (Loihi 1: [0, 4095])", None,
        kind="interval")
    synaptic_input_bits: int | None = key("signed width q0 = a << 6 wraps to", None, min=2,
                                          max=_MAX_BITS)
    current_overflow: str | None = key("what the current does on overflow: wraps "
                                       "(twos_complement) or as Lava's CPU model (lava)", None,
                                       choices=("twos_complement", "lava"))


@dataclass(frozen=True)
class Placement:
    """How the chip's compiler cuts layers into cores, fitted to its published output (rules a
    compiler follows, not datasheet limits); a missing field leaves randhet's generic cut.

    ``spatial_tile_neurons_below``: a conv (or netx input) layer is cut along its width into
    tiles of all its channels and rows and a power-of-two number of columns, the widest with
    fewer neurons than this. ``synaptic_memory_words_per_core``: a dense layer's core holds one
    row per input axon of ``ceil(neurons / dense_synapses_per_word)`` words, at most this many
    words in all (the block of neurons per core is the largest that fits).
    ``fan_in_axons_seen`` / ``axon_map_entries_seen``: the most input axons (AxonIn) and output
    axon-map entries (AxonMap) the compiler was seen to give one core; lower bounds on limits
    nobody has published, so a dense layer with more inputs is reported as unknown, not refused."""

    source: str = key("where the fitted rules come from", nonempty=True)
    spatial_tile_neurons_below: int | None = key(
        "a conv layer's power-of-two column tiles have fewer neurons than this", None, min=2)
    synaptic_memory_words_per_core: int | None = key(
        "synaptic memory words per core for a dense layer's rows", None, min=1)
    dense_synapses_per_word: int | None = key("dense synapses per synaptic memory word", None,
                                              min=1)
    fan_in_axons_seen: int | None = key("most input axons the compiler gave one core "
                                        "(observed, not a limit)", None, min=1)
    axon_map_entries_seen: int | None = key("most axon-map entries the compiler gave one "
                                            "core (observed, not a limit)", None, min=1)


@dataclass(frozen=True)
class EventCosts:
    """One basis of per-event times (ns) and, where it publishes them, energies (pJ) for the
    time-per-step model (:mod:`randhet.deploy.timing`, the SANA-FE / Timcheck form). A term a
    basis does not publish is None and costs nothing in it (the report says so); a basis
    without ``synaptic_op_pj`` leaves the dynamic energy to the profile's ``[energy]``.

    Per core and step: the neuron side ``neurons * neuron_ns + active * neuron_active_extra_ns
    + spikes * spike_out_ns + messages_out * message_out_ns``, the message side ``messages_in
    * message_in_ns + synops * synaptic_op_ns`` (``conv_synaptic_op_ns`` for a conv layer's);
    the step is the slowest side of the slowest core plus the barrier ``barrier_ns`` (keyed by
    tiles in use, ``cores_per_tile`` cores a tile; ``step``: the largest key not above it, as
    SANA-FE; ``linear``: interpolated between keys)."""

    source: str = key("where the basis's figures come from", nonempty=True)
    neuron_ns: float = key("time per neuron and step (ns)", above=0)
    synaptic_op_ns: float = key("time per synaptic operation (ns)", above=0)
    barrier_ns: dict[int, float] = key("barrier time (ns) by tiles in use, {tiles = ns}",
                                       kind="table")
    cores_per_tile: int = key("cores per tile (the barrier's key counts tiles)", min=1)
    barrier_interpolation: str = key(
        "step: the largest key not above the tiles in use (SANA-FE); linear: interpolated",
        "step", choices=("step", "linear"))
    neuron_active_extra_ns: float | None = key("extra time per active neuron (ns)", None,
                                               above=0)
    spike_out_ns: float | None = key("time per spike sent (ns)", None, above=0)
    message_out_ns: float | None = key("time per message sent (ns)", None, above=0)
    message_in_ns: float | None = key("time per message received (ns)", None, above=0)
    conv_synaptic_op_ns: float | None = key("time per conv synaptic operation (ns)", None,
                                            above=0)
    neuron_pj: float | None = key("energy per neuron and step (pJ)", None, above=0)
    neuron_active_extra_pj: float | None = key("extra energy per active neuron (pJ)", None,
                                               above=0)
    spike_out_pj: float | None = key("energy per spike sent (pJ)", None, above=0)
    message_out_pj: float | None = key("energy per message sent (pJ)", None, above=0)
    message_in_pj: float | None = key("energy per message received (pJ)", None, above=0)
    synaptic_op_pj: float | None = key("energy per synaptic operation (pJ)", None, above=0)
    conv_synaptic_op_pj: float | None = key("energy per conv synaptic operation (pJ)", None,
                                            above=0)

    def barrier(self, tiles: int) -> float:
        """The barrier (ns) for ``tiles`` tiles in use."""
        keys = sorted(self.barrier_ns)
        below = [k for k in keys if k <= tiles] or keys[:1]
        above = [k for k in keys if k >= tiles] or keys[-1:]
        lo, hi = below[-1], above[0]
        if self.barrier_interpolation == "step" or lo == hi:
            return self.barrier_ns[lo]
        f = (tiles - lo) / (hi - lo)
        return self.barrier_ns[lo] + f * (self.barrier_ns[hi] - self.barrier_ns[lo])


@dataclass(frozen=True)
class AnnReference:
    """Horowitz 45 nm energies (pJ) for an equivalent-ANN comparison; not neuromorphic hardware."""

    mac_32bit_float_pj: float = key("energy of a 32-bit float MAC (pJ)", above=0)
    ac_pj: float = key("energy of an accumulate (pJ)", above=0)
    basis: str = key("where the ANN reference energies come from", nonempty=True)


@dataclass(frozen=True)
class HardwareProfile:
    """One chip's profile as loaded from a TOML file."""

    name: str = key("the profile's name", nonempty=True)
    description: str = key("the chip, in one line", nonempty=True)
    sources: dict[str, str] = key("citations by short name, each one line", nonempty=True)
    bits: BitWidths = key("fixed-point formats")
    core: CoreLimits = key("per-chip and per-core limits")
    energy: EnergyTable = key("per-operation energies")
    ann_reference: AnnReference = key("the equivalent ANN's energies")
    path: Path = internal()  # the file it was read from
    arithmetic: Arithmetic = key("the chip's integer datapath", Arithmetic())
    placement: Placement | None = key("the compiler's cut, where its output is public", None)
    timing: dict[str, EventCosts] = internal(factory=dict)  # bases by name
    default_timing: str | None = internal(None)  # the basis used unless another is chosen

    def timing_basis(self, name: str | None = None) -> tuple[str, EventCosts] | None:
        """The named timing basis (default: the profile's), or None where it has none;
        ProfileError for a name it lacks."""
        name = name or self.default_timing
        if name is None:
            return None
        if name not in self.timing:
            raise ProfileError(f"profile {self.name} has no timing basis {name!r} (it has: "
                               f"{', '.join(self.timing) or 'none'})")
        return name, self.timing[name]

    def watch(self) -> tuple[Arithmetic, dict[str, str]]:
        """What to count chip events against: this profile's arithmetic, and for every field it
        does not know, the reference's (:data:`REFERENCE_PROFILE`, the one chip with public
        figures); with each field's source."""
        reference = load_profile(REFERENCE_PROFILE).arithmetic
        known = {f.name: getattr(self.arithmetic, f.name) for f in fields(Arithmetic)}
        source = {k: ("this profile" if v is not None else
                      f"{REFERENCE_PROFILE} (reference: {self.name} does not know)")
                  for k, v in known.items()}
        merged = {k: v if v is not None else getattr(reference, k) for k, v in known.items()}
        return Arithmetic(**merged), source

    def datapath(self) -> Datapath:
        """The integer datapath the emulator and Lava run for this profile: the chip's where
        the profile knows it, Lava's CPU model where it does not."""
        a = self.arithmetic
        return Datapath(a.synaptic_input_bits, a.current_overflow or "lava")


@dataclass(frozen=True)
class EnergyEstimate:
    """Dynamic energy of one sample (J), its parts (J), the formula used and its basis."""

    joules_per_sample: float
    breakdown_joules: dict[str, float]
    formula: str
    basis: str
    profile: str
    counts: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all fields."""
        return {
            "joules_per_sample": self.joules_per_sample,
            "breakdown_joules": dict(self.breakdown_joules),
            "formula": self.formula,
            "basis": self.basis,
            "profile": self.profile,
            "counts": dict(self.counts),
        }


# --- schema: the dataclasses above are the schema (randhet.schema) ---------------------------

_TABLE_NAMES = {"sources", "bits", "core", "energy", "ann_reference", "arithmetic", "placement",
                "timing"}


def _namer(file: str) -> schema.Namer:
    """Names a key of ``file`` as a profile's messages do: ``loihi1.toml: [core] neurons``."""
    def name(path: str) -> str:
        table, _, leaf = path.rpartition(".")
        if table:
            return f"{file}: [{table}] {leaf}"
        return f"{file}: [{leaf}]" if leaf in _TABLE_NAMES else f"{file}: {leaf}"
    return name


def _check_timing(file: str, data: Any) -> tuple[dict[str, EventCosts], str | None]:
    """The ``[timing]`` table: ``default = NAME`` and one ``[timing.NAME]`` basis each."""
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise ProfileError(f"{file}: [timing] must be a table")
    bases = {k: v for k, v in data.items() if k != "default"}
    if not bases or not all(isinstance(v, dict) for v in bases.values()):
        raise ProfileError(f"{file}: [timing] holds 'default' and [timing.NAME] tables only")
    default = data.get("default")
    if default not in bases:
        raise ProfileError(f"{file}: [timing] default must name one of its bases "
                           f"({', '.join(bases)}), got {default!r}")
    name = _namer(file)
    out = {basis: schema.load(EventCosts, v, error=ProfileError, name=name,
                              unknown=lambda p: f"{name(p)} is not a known field",
                              prefix=f"timing.{basis}.")
           for basis, v in bases.items()}
    return out, default


def _parse(raw: dict[str, Any], path: Path) -> HardwareProfile:
    file = path.name
    name = _namer(file)
    raw = dict(raw)
    timing, default_timing = _check_timing(file, raw.pop("timing", None))
    table = schema.merge(HardwareProfile, {}, raw, error=ProfileError, name=name,
                         unknown=lambda p: f"{name(p)} is not a known field")
    bits = table.get("bits", {})
    if "max_delay" in bits and "delay_bits" in bits and bits["max_delay"] >= 2 ** bits[
            "delay_bits"]:
        raise ProfileError(f"{file}: [bits] max_delay {bits['max_delay']} does not fit in "
                           f"delay_bits = {bits['delay_bits']}")
    return schema.build(HardwareProfile, table, error=ProfileError, name=name,
                        extra={"path": path, "timing": timing,
                               "default_timing": default_timing})


def profile_keys() -> list[KeyDoc]:
    """Every key a hardware profile file may hold, dotted by table (``core.neurons_per_core``;
    a timing basis's as ``timing.<basis>.<key>``)."""
    default = KeyDoc("timing.default", "string", None, "the name of one [timing.<basis>] table",
                     "the timing basis used unless another is chosen (--timing)")
    return schema.keys(HardwareProfile) + [default] + schema.keys(EventCosts, "timing.<basis>.")


# --- loading ------------------------------------------------------------------------------


def profile_dirs() -> list[Path]:
    """Folders searched for ``<name>.toml``, in lookup order."""
    return [
        Path(__file__).resolve().parents[1] / "hardware_profiles",
        Path(sys.prefix) / "share" / "randhet" / "hardware_profiles",
    ]


def list_profiles() -> list[str]:
    """Sorted names of the profiles found in :func:`profile_dirs`."""
    names: set[str] = set()
    for folder in profile_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.toml") if p.is_file())
    return sorted(names)


def _resolve(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    looks_like_path = candidate.suffix == ".toml" or len(candidate.parts) > 1
    if looks_like_path:
        if not candidate.is_file():
            raise ProfileError(f"hardware profile file {name_or_path} does not exist")
        return candidate
    for folder in profile_dirs():
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path
    available = ", ".join(list_profiles()) or "none found"
    raise ProfileError(
        f"unknown hardware profile {name_or_path!r}; available: {available} "
        "(or give a path to a .toml file)"
    )


def load_profile(name_or_path: str) -> HardwareProfile:
    """Load and validate a profile: a shipped name (``"loihi2"``) or a path to a .toml file.

    A value ending in ``.toml`` or containing a folder is a path; anything else is a name
    looked up in :func:`profile_dirs` in order.

    Raises ProfileError naming the file and field for any missing or invalid value.
    """
    path = _resolve(name_or_path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path.name}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ProfileError(f"{path.name}: cannot be read ({exc.strerror})") from None
    return _parse(raw, path)


# --- estimates ----------------------------------------------------------------------------


def _count(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def estimate_energy(
    profile: HardwareProfile,
    *,
    synops: float,
    neuron_updates: float,
    active_neuron_updates: float,
    spikes: float,
) -> EnergyEstimate:
    """Dynamic energy per sample (J) from per-sample operation counts.

    ``synops``: effective synaptic operations (nonzero input x nonzero weight);
    ``neuron_updates``: all neuron-timestep updates, of which ``active_neuron_updates`` were
    active (the rest are charged as inactive); ``spikes``: spikes sent, each charged one
    within-tile delivery (routing hops are not counted). Static power is not here: it needs the
    modelled chip time (:mod:`randhet.deploy.timing`). With per-operation minima the result is
    a lower-bound proxy, as ``basis`` says.
    """
    synops = _count("synops", synops)
    neuron_updates = _count("neuron_updates", neuron_updates)
    active = _count("active_neuron_updates", active_neuron_updates)
    spikes = _count("spikes", spikes)
    if active > neuron_updates:
        raise ValueError(
            f"active_neuron_updates ({active:g}) exceeds neuron_updates ({neuron_updates:g})"
        )
    inactive = neuron_updates - active
    e = profile.energy
    breakdown = {
        "synaptic": synops * e.synaptic_op_pj * PJ,
        "neuron_active": active * e.neuron_update_active_pj * PJ,
        "neuron_inactive": inactive * e.neuron_update_inactive_pj * PJ,
        "spike": spikes * e.spike_in_tile_pj * PJ,
    }
    formula = (
        f"E = synops*{e.synaptic_op_pj:g} pJ + active_updates*{e.neuron_update_active_pj:g} pJ"
        f" + inactive_updates*{e.neuron_update_inactive_pj:g} pJ"
        f" + spikes*{e.spike_in_tile_pj:g} pJ"
    )
    basis = (
        f"profile {profile.name}: {e.energy_basis.rstrip()} "
        "Lower-bound proxy estimate, dynamic energy only, static power excluded."
    )
    return EnergyEstimate(
        joules_per_sample=math.fsum(breakdown.values()),
        breakdown_joules=breakdown,
        formula=formula,
        basis=basis,
        profile=profile.name,
        counts={
            "synops": synops,
            "neuron_updates": neuron_updates,
            "active_neuron_updates": active,
            "inactive_neuron_updates": inactive,
            "spikes": spikes,
        },
    )


def estimate_ann_energy(profile: HardwareProfile, *, macs: float) -> float:
    """Energy (J) of ``macs`` 32-bit float MACs at Horowitz 45 nm; a software/ANN comparison."""
    return _count("macs", macs) * profile.ann_reference.mac_32bit_float_pj * PJ
