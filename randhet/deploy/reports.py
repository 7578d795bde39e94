"""What ``randhet deploy`` and ``randhet profile`` measured, typed from where it is computed to
where ``deploy.json`` / ``profile.json`` are written (``to_dict``, the files' layout).

Per sample unless a name says otherwise: spikes, synaptic operations (SynOps), neuron updates,
energy (J); times in seconds. The JSON fields are documented in the docs' output reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from randhet.deploy.fit import UNKNOWN, FitReport
from randhet.deploy.timing import TimingReport
from randhet.hardware import Arithmetic, EnergyEstimate


@dataclass(frozen=True)
class Decided:
    """The output layer's decisions over the labelled samples (all None without labels)."""

    accuracy: float | None
    tie_rate: float | None  # samples whose top count is shared: wrong
    silent_rate: float | None  # samples with no output spike: wrong
    decision_rule: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LayerActivity:
    """One spiking layer's activity, operations and dynamic energy, means per sample."""

    name: str
    neurons: int
    spikes_per_sample: float
    activation_sparsity: float  # zero outputs / all outputs over every step
    synops_effective: float  # into the layer: nonzero input x nonzero weight pairs
    synops_dense: int  # into the layer: every pair, every step
    neuron_updates: int  # neurons x T
    active_updates: float  # neuron-steps with nonzero u or v
    energy_joules: float  # the profile's dynamic energy formula on this layer alone

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "neurons": self.neurons,
                "spikes_per_sample": self.spikes_per_sample,
                "activation_sparsity": self.activation_sparsity,
                "synops_effective": self.synops_effective, "synops_dense": self.synops_dense,
                "neuron_updates": {"total": self.neuron_updates, "active": self.active_updates},
                "energy_joules": self.energy_joules}


@dataclass(frozen=True)
class AnnReference:
    """The same network run once as a float ANN, priced at a 45 nm MAC: software, not chip."""

    macs: int
    joules_per_sample: float
    formula: str
    definition: str
    basis: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Activity:
    """The whole network's activity, SynOps, updates and dynamic energy, and its layers'."""

    activation_sparsity: float
    synops_effective: float
    synops_dense: int
    synops_unit: str
    neuron_updates: int
    active_updates: float
    energy: EnergyEstimate
    energy_sources: dict[str, str]  # the profile's [sources]
    ann_reference: AnnReference
    layers: tuple[LayerActivity, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "activation_sparsity": self.activation_sparsity,
            "synops": {"effective": self.synops_effective, "dense": self.synops_dense,
                       "unit": self.synops_unit},
            "neuron_updates": {"total": self.neuron_updates, "active": self.active_updates},
            "energy": {**self.energy.to_dict(), "sources": dict(self.energy_sources)},
            "ann_reference": self.ann_reference.to_dict(),
            "layers": [ly.to_dict() for ly in self.layers],
        }


@dataclass(frozen=True)
class LayerEvents:
    """Per layer, the (sample, neuron, step) entries where a chip's datapath could differ."""

    name: str
    counts: dict[str, int]


@dataclass(frozen=True)
class ChipReport:
    """The integer datapath run, what the events were watched against (and where each field
    comes from) and the events per layer."""

    synaptic_input_bits: int | None  # None: unbounded (Lava's CPU models)
    current_wrap: str
    applied: str  # whose datapath ran, and why
    watched: Arithmetic
    watched_source: dict[str, str]
    events: tuple[LayerEvents, ...]
    events_definition: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "datapath": {"synaptic_input_bits": self.synaptic_input_bits,
                         "current_wrap": self.current_wrap},
            "applied": self.applied,
            "watched": {"arithmetic": dict(vars(self.watched)),
                        "source": dict(self.watched_source)},
            "events": [{"name": ev.name, **ev.counts} for ev in self.events],
            "events_definition": self.events_definition,
        }


@dataclass(frozen=True)
class ChipCost:
    """What running the network costs on the profile's chip: activity and dynamic energy, the
    datapath's events, the resource fit and (where the profile has a basis) the time model."""

    activity: Activity
    chip: ChipReport
    fit: FitReport
    timing: TimingReport | None
    timing_missing: str | None  # why there is no time model (None: there is one)
    wall_seconds: float  # this machine's run
    processes: int
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        timing = (self.timing.to_dict() if self.timing is not None
                  else {"time_per_step_s": UNKNOWN, "why": self.timing_missing})
        return {**self.activity.to_dict(), "chip": self.chip.to_dict(),
                "resources": self.fit.to_dict(), "timing": timing,
                "wall_seconds": self.wall_seconds, "processes": self.processes,
                "versions": dict(self.versions)}


@dataclass(frozen=True)
class DecayDrawRecord:
    """The deployment's decay draw: its seed and the network's RandHet settings."""

    seed: int
    sigma: float
    randomize: str
    distribution: str
    granularity: str
    resample: str
    distinct_current_decays_layer0: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EmulatorCheck:
    """For a backend other than the emulator: how often the emulator's rasters equal it, and
    what the report took from the emulator where the backend counts nothing."""

    emulator_bit_exact_fraction: float
    host_writes_per_sample: dict[str, int] | None = None  # stock Lava LIF's register writes
    neuron_updates_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DeployReport:
    """``deploy.json``: one backend's run of the test samples and what it cost."""

    backend: str
    network: str
    samples: int
    workload: str  # the data set's test split, the user's inputs or a named synthetic workload
    decided: Decided
    reference_accuracy: float | None  # the torch model on the same inputs and draws
    bit_exact_fraction: float | None  # samples whose rasters equal the torch model's
    bit_exact_definition: str
    check: EmulatorCheck | None
    timesteps: int
    decay_draw: DecayDrawRecord
    profile: str
    cost: ChipCost

    @property
    def accuracy(self) -> float | None:
        return self.decided.accuracy

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "network": self.network, "samples": self.samples,
            "workload": self.workload, **self.decided.to_dict(),
            "reference_accuracy": self.reference_accuracy,
            "bit_exact_fraction": self.bit_exact_fraction,
            "bit_exact_definition": self.bit_exact_definition,
            **(self.check.to_dict() if self.check is not None else {}),
            "timesteps": self.timesteps, "decay_draw": self.decay_draw.to_dict(),
            "profile": self.profile, **self.cost.to_dict(),
        }


@dataclass(frozen=True)
class ProfileReport:
    """``profile.json``: the emulator's run of the samples, priced on one chip profile."""

    network: str
    samples: int
    workload: str
    seed: int
    timesteps: int
    decided: Decided
    profile: str
    profile_path: str
    profile_description: str
    cost: ChipCost
    backend: str = "emulator"

    @property
    def accuracy(self) -> float | None:
        return self.decided.accuracy

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network, "backend": self.backend, "samples": self.samples,
            "workload": self.workload, "seed": self.seed, "timesteps": self.timesteps,
            **self.decided.to_dict(), "profile": self.profile,
            "profile_path": self.profile_path, "profile_description": self.profile_description,
            **self.cost.to_dict(),
        }
