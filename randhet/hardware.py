"""Hardware profiles (``hardware_profiles/*.toml``) and per-sample energy estimates.

A profile holds a chip's bit widths, per-core limits, per-operation energies, the compiler's
placement rules and per-event times (``[timing]``), each with a cited source.
:func:`estimate_energy` turns per-sample operation counts into dynamic joules; static energy
needs the chip's time, which :mod:`randhet.deploy.timing` models from the ``[timing]`` bases (the
simulator's wall-clock time says nothing about it).
"""

from __future__ import annotations

import math
import sys
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from randhet.errors import ProfileError
from randhet.loihi import Datapath

PJ = 1e-12  # joules per picojoule
REFERENCE_PROFILE = "loihi1"  # the chip whose datapath has a public source (nengo-loihi, Lava)


def _min(value: float) -> Any:
    """Metadata of a profile field: its lower bound (integers: inclusive; energies: exclusive)."""
    return {"min": value}


@dataclass(frozen=True)
class BitWidths:
    """Fixed-point formats of weights, delays, decays, state and threshold (bits)."""

    weight_bits: int = field(metadata=_min(1))
    weight_range: tuple[int, int] = field(metadata={})
    delay_bits: int = field(metadata=_min(1))
    max_delay: int = field(metadata=_min(0))
    decay_bits: int = field(metadata=_min(1))
    state_bits: int = field(metadata=_min(1))
    threshold_mantissa_bits: int = field(metadata=_min(1))
    threshold_shift: int = field(metadata=_min(0))
    bias_mantissa_bits: int = field(metadata=_min(1))
    bias_exponent_bits: int = field(metadata=_min(0))
    graded_spike_bits: int | None = field(default=None, metadata=_min(1))
    lava_cpu_graded_spike_bits: int | None = field(default=None, metadata=_min(1))


@dataclass(frozen=True)
class CoreLimits:
    """Per-chip and per-core resource limits; ``None`` means no public figure is known."""

    cores_per_chip: int = field(metadata=_min(1))
    neurons_per_core: int = field(metadata=_min(1))
    synaptic_memory_bytes_per_core: int | None = field(default=None, metadata=_min(1))
    max_fan_in_axons_per_core: int | None = field(default=None, metadata=_min(1))
    max_fan_out_per_core: int | None = field(default=None, metadata=_min(1))
    synapses_per_chip: int | None = field(default=None, metadata=_min(1))
    x86_cores_per_chip: int | None = field(default=None, metadata=_min(1))
    # a core's neurons point to these shared tables: decays (with refractory delay and noise)
    # and thresholds; a neuron cannot have a decay pair or threshold of its own
    compartment_profiles_per_core: int | None = field(default=None, metadata=_min(1))
    threshold_profiles_per_core: int | None = field(default=None, metadata=_min(1))

    @property
    def neurons_per_chip(self) -> int:
        """Neurons per chip (cores_per_chip * neurons_per_core)."""
        return self.cores_per_chip * self.neurons_per_core


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation (pJ) and static power (W per chip, ``None`` if unknown)."""

    synaptic_op_pj: float = field(metadata=_min(0))
    neuron_update_active_pj: float = field(metadata=_min(0))
    neuron_update_inactive_pj: float = field(metadata=_min(0))
    spike_in_tile_pj: float = field(metadata=_min(0))
    energy_basis: str = field(metadata={})
    static_power_w_per_chip: float | None = field(default=None, metadata=_min(0))
    synaptic_update_pj: float | None = field(default=None, metadata=_min(0))
    hop_east_west_pj: float | None = field(default=None, metadata=_min(0))
    hop_north_south_pj: float | None = field(default=None, metadata=_min(0))
    proxy_of: str | None = field(default=None, metadata={})
    register_write_pj: float | None = field(default=None, metadata=_min(0))


@dataclass(frozen=True)
class Arithmetic:
    """What the chip's integer datapath does where Lava's CPU model does not say; a missing
    field is unknown (randhet then keeps Lava's semantics and counts where a chip could differ).

    Decay ranges are in randhet's units (``d``: the state keeps ``(4096 - d) / 4096`` per step)
    that the registers can hold; ``synaptic_input_bits`` is the signed width ``q0 = a << 6``
    wraps to; ``current_overflow`` is ``"twos_complement"`` or ``"lava"``."""

    current_decay_range: tuple[int, int] | None = field(default=None,
                                                        metadata={"kind": "interval"})
    voltage_decay_range: tuple[int, int] | None = field(default=None,
                                                        metadata={"kind": "interval"})
    synaptic_input_bits: int | None = field(default=None, metadata=_min(2))
    current_overflow: str | None = field(
        default=None, metadata={"kind": "choice", "choices": ("twos_complement", "lava")})


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

    source: str = field(metadata={})
    spatial_tile_neurons_below: int | None = field(default=None, metadata=_min(2))
    synaptic_memory_words_per_core: int | None = field(default=None, metadata=_min(1))
    dense_synapses_per_word: int | None = field(default=None, metadata=_min(1))
    fan_in_axons_seen: int | None = field(default=None, metadata=_min(1))
    axon_map_entries_seen: int | None = field(default=None, metadata=_min(1))


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

    source: str = field(metadata={})
    neuron_ns: float = field(metadata=_min(0))
    synaptic_op_ns: float = field(metadata=_min(0))
    barrier_ns: dict[int, float] = field(metadata={"kind": "table"})
    cores_per_tile: int = field(metadata=_min(1))
    barrier_interpolation: str = field(
        default="step", metadata={"kind": "choice", "choices": ("step", "linear")})
    neuron_active_extra_ns: float | None = field(default=None, metadata=_min(0))
    spike_out_ns: float | None = field(default=None, metadata=_min(0))
    message_out_ns: float | None = field(default=None, metadata=_min(0))
    message_in_ns: float | None = field(default=None, metadata=_min(0))
    conv_synaptic_op_ns: float | None = field(default=None, metadata=_min(0))
    neuron_pj: float | None = field(default=None, metadata=_min(0))
    neuron_active_extra_pj: float | None = field(default=None, metadata=_min(0))
    spike_out_pj: float | None = field(default=None, metadata=_min(0))
    message_out_pj: float | None = field(default=None, metadata=_min(0))
    message_in_pj: float | None = field(default=None, metadata=_min(0))
    synaptic_op_pj: float | None = field(default=None, metadata=_min(0))
    conv_synaptic_op_pj: float | None = field(default=None, metadata=_min(0))

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

    mac_32bit_float_pj: float = field(metadata=_min(0))
    ac_pj: float = field(metadata=_min(0))
    basis: str = field(metadata={})


@dataclass(frozen=True)
class HardwareProfile:
    """One chip's profile as loaded from a TOML file."""

    name: str
    description: str
    sources: dict[str, str]
    bits: BitWidths
    core: CoreLimits
    energy: EnergyTable
    ann_reference: AnnReference
    path: Path
    arithmetic: Arithmetic = Arithmetic()
    placement: Placement | None = None  # the compiler's cut, where its output is public
    timing: dict[str, EventCosts] = field(default_factory=dict)  # bases by name
    default_timing: str | None = None  # the basis used unless another is chosen

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


# --- schema: the dataclasses above are the schema (type, required, minimum per field) ------

_TABLES: dict[str, type] = {"bits": BitWidths, "core": CoreLimits, "energy": EnergyTable,
                            "ann_reference": AnnReference, "arithmetic": Arithmetic,
                            "placement": Placement}
_OPTIONAL_TABLES = {"arithmetic", "placement"}  # absent: every field unknown
UNKNOWN = "unknown"  # an optional field may say so explicitly (the same as leaving it out)
_TOP_LEVEL = {"name", "description", "sources", "timing", *_TABLES}
_MAX_BITS = 64


def _kind(annotation: str) -> str:
    """The value kind of a field annotation: int, float, str or range."""
    base = annotation.replace(" | None", "")
    return {"int": "int", "float": "float", "str": "str", "tuple[int, int]": "range"}[base]


def _field(file: str, table: str | None, key: str) -> str:
    where = f"[{table}] {key}" if table else key
    return f"{file}: {where}"


def _check_value(
    file: str, table: str, key: str, value: Any, kind: str, minimum: float | None,
    choices: tuple[str, ...] = (),
) -> Any:
    name = _field(file, table, key)
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise ProfileError(f"{name} must be a non-empty string, got {value!r}")
        return value
    if kind == "range":
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
        if not ok:
            raise ProfileError(f"{name} must be a list of two integers [low, high], got {value!r}")
        low, high = value
        if not low < 0 < high:
            raise ProfileError(f"{name} must satisfy low < 0 < high, got {value!r}")
        return (low, high)
    if kind == "interval":
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok or not 0 <= value[0] <= value[1]:
            raise ProfileError(f"{name} must be [low, high] with 0 <= low <= high integers, "
                               f"got {value!r}")
        return (value[0], value[1])
    if kind == "table":  # {tiles = value}: integer keys >= 1, finite values >= 0
        if not isinstance(value, dict) or not value:
            raise ProfileError(f"{name} must be a non-empty table {{key = number}}")
        out = {}
        for k, v in value.items():
            if not str(k).isdigit() or int(k) < 1 or isinstance(v, bool) or not isinstance(
                    v, int | float) or not math.isfinite(v) or v < 0:
                raise ProfileError(f"{name} must map integers >= 1 to numbers >= 0, got "
                                   f"{k} = {v!r}")
            out[int(k)] = float(v)
        return out
    if kind == "choice":
        if value not in choices:
            raise ProfileError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProfileError(f"{name} must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ProfileError(f"{name} must be >= {minimum:g}, got {value}")
        if key.endswith("_bits") and value > _MAX_BITS:
            raise ProfileError(f"{name} must be <= {_MAX_BITS}, got {value}")
        return value
    # _FLOAT: energies and powers must be finite and strictly positive.
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProfileError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or (minimum is not None and value <= minimum):
        raise ProfileError(f"{name} must be a finite number > {minimum:g}, got {value}")
    return float(value)


def _check_timing(file: str, raw: dict[str, Any]) -> tuple[dict[str, EventCosts],
                                                           str | None]:
    """The ``[timing]`` table: ``default = NAME`` and one ``[timing.NAME]`` basis each."""
    data = raw.get("timing")
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
    out = {name: EventCosts(**_check_table(file, {f"timing.{name}": v}, f"timing.{name}",
                                                EventCosts))
           for name, v in bases.items()}
    return out, default


def _check_table(file: str, raw: dict[str, Any], table: str,
                 schema_type: type | None = None) -> dict[str, Any]:
    if table not in raw:
        if table in _OPTIONAL_TABLES:
            return {}
        raise ProfileError(f"{file}: [{table}] table is missing")
    data = raw[table]
    if not isinstance(data, dict):
        raise ProfileError(f"{file}: [{table}] must be a table")
    schema = {f.name: f for f in fields(schema_type or _TABLES[table])}
    for key in data:
        if key not in schema:
            raise ProfileError(f"{_field(file, table, key)} is not a known field")
    out: dict[str, Any] = {}
    for key, f in schema.items():
        if key not in data or (data[key] == UNKNOWN and f.default is not MISSING):
            if f.default is MISSING:
                raise ProfileError(f"{_field(file, table, key)} is missing")
            continue
        kind = f.metadata.get("kind") or _kind(str(f.type))
        out[key] = _check_value(file, table, key, data[key], kind, f.metadata.get("min"),
                                f.metadata.get("choices", ()))
    return out


def _parse(raw: dict[str, Any], path: Path) -> HardwareProfile:
    file = path.name
    for key in raw:
        if key not in _TOP_LEVEL:
            raise ProfileError(f"{file}: {key} is not a known field")
    top: dict[str, str] = {}
    for key in ("name", "description"):
        if key not in raw:
            raise ProfileError(f"{file}: {key} is missing")
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ProfileError(f"{file}: {key} must be a non-empty string, got {raw[key]!r}")
        top[key] = raw[key]
    sources = raw.get("sources")
    if sources is None:
        raise ProfileError(f"{file}: [sources] table is missing")
    if not isinstance(sources, dict) or not sources:
        raise ProfileError(f"{file}: [sources] must be a non-empty table of citations")
    for key, value in sources.items():
        if not isinstance(value, str) or not value.strip():
            raise ProfileError(f"{file}: [sources] {key} must be a non-empty string")
    bits = _check_table(file, raw, "bits")
    if bits["max_delay"] >= 2 ** bits["delay_bits"]:
        raise ProfileError(
            f"{file}: [bits] max_delay {bits['max_delay']} does not fit in "
            f"delay_bits = {bits['delay_bits']}"
        )
    timing, default_timing = _check_timing(file, raw)
    return HardwareProfile(
        name=top["name"],
        description=top["description"],
        sources=dict(sources),
        bits=BitWidths(**bits),
        core=CoreLimits(**_check_table(file, raw, "core")),
        energy=EnergyTable(**_check_table(file, raw, "energy")),
        ann_reference=AnnReference(**_check_table(file, raw, "ann_reference")),
        path=path,
        arithmetic=Arithmetic(**_check_table(file, raw, "arithmetic")),
        placement=Placement(**placed) if (placed := _check_table(file, raw, "placement"))
        else None,
        timing=timing,
        default_timing=default_timing,
    )


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
