"""Run configuration: TOML files, ``--set section.key=value`` overrides, validation.

The schema is :class:`RunConfig` and its section dataclasses (:mod:`randhet.schema`): every key
has a default there (the neuron's and the encoding's are :class:`~randhet.spec.NeuronSpec`'s and
:class:`~randhet.spec.EncodingSpec`'s); a config file names only what it changes. Unknown keys,
values of the wrong type or out of range are refused with a one-line
:class:`~randhet.errors.ConfigError` naming the source and the key. The resolved configuration
(a plain dict of tables) is saved beside the results.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from randhet import schema
from randhet.attack.settings import ProtocolConfig
from randhet.data.datasets import DATASETS
from randhet.errors import ConfigError, ProfileError
from randhet.hardware import load_profile
from randhet.layer_tokens import network_from_tokens, parse_layer_token
from randhet.schema import KeyDoc, key
from randhet.spec import (
    Distribution,
    Encoding,
    EncodingSpec,
    Granularity,
    Mode,
    NetworkSpec,
    NeuronSpec,
    Randomize,
    Resample,
)

BACKENDS: tuple[str, ...] = ("emulator", "lava", "lava-stock", "loihi2")
PROFILE_SAMPLES = 100  # test samples `randhet profile` runs unless told otherwise


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which data set, where its files are, how it is split."""

    dataset: str = key("data set: digits (embedded in the package) or one read from data.root",
                       "digits", choices=tuple(DATASETS))
    root: str = key("folder holding the real data set's files (never downloaded)", "")
    val_fraction: float = key("validation fraction of the training data (of all data for "
                              "digits)", 0.15, min=0.0, max=0.9)
    test_fraction: float = key("test fraction (digits only: the others ship an official test "
                               "set)", 0.2, min=0.0, max=0.9)
    split_seed: int = key("seed of the train/validation/test split", 0)
    limit: int = key("at most this many samples per split (0 = all), for quick runs", 0,
                     min=0, max=1 << 30)


@dataclass(frozen=True)
class EncodingConfig:
    """``[encoding]``: how an input becomes time steps of spikes (:class:`EncodingSpec`)."""

    kind: Encoding = key("direct (graded spikes), rate (Bernoulli spikes) or events (N-MNIST "
                         "frames)", EncodingSpec.kind)
    timesteps: int = key("time steps per sample", EncodingSpec.timesteps, min=1, max=63)
    input_bits: int = key("bits of a direct-encoded graded input spike", EncodingSpec.input_bits,
                          min=0, max=8)
    mean: tuple[float, ...] = key("per-channel normalisation mean inside the model (empty = "
                                  "none)", EncodingSpec.mean)
    std: tuple[float, ...] = key("per-channel normalisation std (as many as mean, > 0)",
                                 EncodingSpec.std)


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the layers and how they are trained."""

    layers: tuple[str, ...] = key(
        'layer tokens: "conv:C[:kK][:sS]", "pool:K", "flex:C[:kK][:MASK][:POOL][:GATE][:etaX]'
        '[:plasticL]" (see FlexSpec), "flatten", "dense:N"; the output dense is added',
        ("dense:128",))
    mode: Mode = key("snn: spiking, surrogate gradients through time (STBP); hybrid: spiking "
                     "forward, straight-through dS/dV = 1; ann: ReLU, no time (not deployable)",
                     "snn")


@dataclass(frozen=True)
class NeuronConfig:
    """``[neuron]``: the RandHet CUBA-LIF neuron (:class:`NeuronSpec`, whose defaults these
    are)."""

    threshold: float = key("firing threshold (a multiple of 1/64: Loihi vThMant = threshold * "
                           "64)", NeuronSpec.threshold, min=1 / 64, max=2047.0)
    current_decay: float = key("mean current decay (fraction lost per step)",
                               NeuronSpec.current_decay, min=0.0, max=1.0)
    voltage_decay: float = key("mean voltage decay (fraction lost per step)",
                               NeuronSpec.voltage_decay, min=0.0, max=1.0)
    sigma: float = key("spread of the decay draws (0: the stock SLAYER CUBA neuron)",
                       NeuronSpec.sigma, min=0.0, max=10.0)
    randomize: Randomize = key("which decays are drawn: current, voltage, both or none",
                               NeuronSpec.randomize)
    distribution: Distribution = key("distribution of the draws: logit_normal, or gaussian "
                                     "(sigma in decay fraction)", NeuronSpec.distribution)
    granularity: Granularity = key(
        "one draw per neuron, per channel, or per profile (K shared draws per core, as Loihi's "
        "decay profiles)", NeuronSpec.granularity)
    profiles: int = key("K decay profiles per core (granularity profile)", NeuronSpec.profiles,
                        min=0, max=1 << 20)
    core_size: int = key("neurons per core of the profile binding (0 = deploy.profile's "
                         "neurons per core)", NeuronSpec.core_size, min=0, max=1 << 20)
    resample: Resample = key("new draws per sample and pass (forward), per step (step) or once "
                             "(fixed)", NeuronSpec.resample)
    learn_decay: bool = key("learn the mean decays (with a correct gradient)",
                            NeuronSpec.learn_decay)
    tau_grad: float = key("width of the spike surrogate gradient (SLAYER tau_grad)",
                          NeuronSpec.tau_grad)
    scale_grad: float = key("scale of the spike surrogate gradient (SLAYER scale_grad)",
                            NeuronSpec.scale_grad)


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: the optimizer and its schedule."""

    epochs: int = key("training epochs", 30, min=1, max=100000)
    batch_size: int = key("samples per training batch", 32, min=1, max=1 << 20)
    optimizer: str = key("adam, adamw or sgd (with momentum)", "adam",
                         choices=("adam", "adamw", "sgd"))
    lr: float = key("learning rate", 0.003, min=0.0, max=10.0)
    momentum: float = key("momentum of sgd", 0.9, min=0.0, max=1.0)
    weight_decay: float = key("weight decay", 0.0, min=0.0, max=10.0)
    schedule: str = key("learning rate schedule: constant or cosine", "constant",
                        choices=("constant", "cosine"))
    grad_clip: float = key("max gradient norm (0 = off)", 0.0, min=0.0, max=1e6)
    decay_lr: float = key("learning rate of the mean decays (0 = lr)", 0.0, min=0.0, max=1e6)
    adv_eps: float = key("FGSM adversarial training epsilon on [0, 1] inputs (0 = off)", 0.0,
                         min=0.0, max=1.0)
    device: str = key("training device (auto: cuda where available, else cpu)", "auto",
                      choices=("auto", "cpu", "cuda"))


@dataclass(frozen=True)
class DeployConfig:
    """``[deploy]``: how `randhet deploy` and `randhet run` deploy unless told otherwise."""

    backend: str = key("what runs the deployed network", "lava", choices=BACKENDS)
    samples: int = key("test samples deployed (0 = all)", 0, min=0, max=1 << 30)
    profile: str = key("hardware profile: a shipped name or a path to a .toml file", "loihi2")
    seed: int = key("seed of the deployed decay draws", 1)


@dataclass(frozen=True)
class AttackConfig(ProtocolConfig):
    """``[attack]``: the robustness protocol's settings (:class:`ProtocolConfig`) and whether
    `randhet run` runs it."""

    enabled: bool = key("run the robustness protocol in `randhet run`", True)


@dataclass(frozen=True)
class RunConfig:
    """A run configuration: the schema of a config file (every key has a default)."""

    name: str = key("the run's name (default: the config file's name)", "run")
    seed: int = key("training seed", 0)
    data: DataConfig = key("the data set", DataConfig())
    encoding: EncodingConfig = key("the input encoding", EncodingConfig())
    model: ModelConfig = key("the layers", ModelConfig())
    neuron: NeuronConfig = key("the neuron", NeuronConfig())
    train: TrainConfig = key("the training", TrainConfig())
    deploy: DeployConfig = key("the deployment", DeployConfig())
    attack: AttackConfig = key("the robustness protocol", AttackConfig())


DEFAULTS: dict[str, Any] = schema.defaults(RunConfig)
# keys added after results were saved, by name: a saved config without one had its default
ADDED_DEFAULTS: dict[str, Any] = schema.added_defaults(RunConfig)
DEPLOY_DEFAULTS: dict[str, Any] = DEFAULTS["deploy"]


def config_keys() -> list[KeyDoc]:
    """Every key a run config accepts (the ``[attack]`` table's as ``attack.<key>``)."""
    return schema.keys(RunConfig)


def _merge(base: dict[str, Any], new: dict[str, Any], source: str) -> dict[str, Any]:
    return schema.merge(RunConfig, base, new, error=ConfigError,
                        name=lambda path: f"{source}: '{path}'",
                        unknown=lambda path: f"{source}: unknown key '{path}'")


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string such as rate
    return key.strip().split("."), value


def validate(cfg: dict[str, Any]) -> None:
    """Check every key (type, choices, range) and the cross-field rules; raise ConfigError on
    the first problem."""
    schema.merge(RunConfig, {}, cfg, error=ConfigError,
                 unknown=lambda path: f"unknown key '{path}'")
    th = cfg["neuron"]["threshold"]
    if abs(th * 64 - round(th * 64)) > 1e-9:
        raise ConfigError(
            "'neuron.threshold' must be a multiple of 1/64 "
            f"(Loihi vThMant = threshold * 64); got {th}"
        )
    for token in cfg["model"]["layers"]:
        try:
            parse_layer_token(str(token))
        except ValueError as exc:
            raise ConfigError(f"'model.layers': {exc}") from None
    neuron = cfg["neuron"]
    if neuron["granularity"] == "profile" and neuron["profiles"] < 1:
        raise ConfigError("'neuron.granularity = \"profile\"' needs 'neuron.profiles' >= 1 "
                          "(K decay profiles per core)")
    protocol_config(cfg)  # the attack package's rules for the [attack] table
    enc = cfg["encoding"]
    if len(enc["mean"]) != len(enc["std"]) or any(s <= 0 for s in enc["std"]):
        raise ConfigError("'encoding.mean' and 'encoding.std' need equal lengths, std > 0")
    if enc["mean"] and enc["kind"] != "direct":
        raise ConfigError("'encoding.mean'/'encoding.std' apply to direct encoding only")
    if (enc["kind"] == "events") != (cfg["data"]["dataset"] == "nmnist"):
        raise ConfigError("'encoding.kind = \"events\"' goes with data.dataset = \"nmnist\"")
    if cfg["data"]["val_fraction"] + cfg["data"]["test_fraction"] >= 0.95:
        raise ConfigError("'data.val_fraction' + 'data.test_fraction' must leave training data")
    if not cfg["name"] or "/" in cfg["name"]:
        raise ConfigError(f"'name' must be a non-empty name without '/'; got {cfg['name']!r}")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults, then the TOML file (if any), then ``--set`` overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        if "name" not in data:
            data["name"] = p.stem
        cfg = _merge(cfg, data, str(p))
    for text in overrides or []:
        keys, value = _parse_override(text)
        cfg = _merge_dotted(cfg, keys, value, f"--set {text}")
    validate(cfg)
    return cfg


def _merge_dotted(cfg: dict[str, Any], keys: list[str], value: Any,
                  source: str) -> dict[str, Any]:
    nested: dict[str, Any] = {keys[-1]: value}
    for k in reversed(keys[:-1]):
        nested = {k: nested}
    return _merge(cfg, nested, source)


def with_overrides(cfg: dict[str, Any], overrides: dict[str, Any],
                   source: str = "override") -> dict[str, Any]:
    """A validated copy of a resolved config with ``{"section.key": value}`` set, by the same
    rules as ``--set`` (unknown keys and wrong types refused, then :func:`validate`);
    ConfigError naming ``source`` and the key otherwise."""
    out = copy.deepcopy(cfg)
    for dotted, value in overrides.items():
        out = _merge_dotted(out, dotted.split("."), value, f"{source} {dotted}={value}")
    validate(out)
    return out


def dump_toml(cfg: dict[str, Any]) -> str:
    """Serialize a (two-level) config dictionary as TOML."""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {fmt(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {fmt(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def protocol_config(cfg: dict[str, Any]) -> ProtocolConfig:
    """The robustness protocol settings of a config's ``[attack]`` table (validated)."""
    return ProtocolConfig.from_table({k: v for k, v in cfg["attack"].items() if k != "enabled"})


def neuron_table(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``[neuron]`` table with the core size resolved: ``core_size = 0`` with profile
    granularity takes the neurons per core of ``deploy.profile``'s hardware profile."""
    neuron = dict(cfg["neuron"])
    if neuron["granularity"] == "profile" and not neuron["core_size"]:
        try:
            neuron["core_size"] = load_profile(cfg["deploy"]["profile"]).core.neurons_per_core
        except ProfileError as exc:
            raise ConfigError(f"'neuron.core_size = 0' takes deploy.profile's neurons per "
                              f"core: {exc}") from None
    return neuron


def network_spec(
    cfg: dict[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> NetworkSpec:
    """The network description a config asks for, for data of the given shape."""
    enc = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["encoding"].items()}
    try:
        return network_from_tokens(
            input_shape, cfg["model"]["layers"], num_classes,
            NeuronSpec(**neuron_table(cfg)), EncodingSpec(**enc),
        )
    except ValueError as exc:
        raise ConfigError(f"'model.layers' does not fit the data {input_shape}: {exc}") from None
