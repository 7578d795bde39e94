"""Run configuration: TOML files, ``--set section.key=value`` overrides, validation.

Every key has a default here; a config file names only what it changes. Unknown keys and
values of the wrong type are refused with a :class:`~randhet.errors.ConfigError` naming the
key. The resolved configuration is saved beside the results.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any, get_args

from randhet.attack.settings import ProtocolConfig
from randhet.data.datasets import DATASETS
from randhet.errors import ConfigError, ProfileError
from randhet.hardware import load_profile
from randhet.layer_tokens import network_from_tokens, parse_layer_token
from randhet.spec import (
    MODES,
    Distribution,
    Encoding,
    EncodingSpec,
    Granularity,
    NetworkSpec,
    NeuronSpec,
    Randomize,
    Resample,
)

BACKENDS: tuple[str, ...] = ("emulator", "lava", "lava-stock", "loihi2")
# how `randhet deploy` and `randhet run` deploy unless told otherwise
DEPLOY_DEFAULTS: dict[str, Any] = {"backend": "lava", "samples": 0, "profile": "loihi2", "seed": 1}
PROFILE_SAMPLES = 100  # test samples `randhet profile` runs unless told otherwise

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "data": {
        "dataset": "digits",  # digits (embedded) | mnist | fashion_mnist | cifar10 | nmnist
        "root": "",  # folder holding the real data set's files (never downloaded)
        "val_fraction": 0.15,  # of the training data (of all data for digits)
        "test_fraction": 0.2,  # digits only: the others ship an official test set
        "split_seed": 0,
        "limit": 0,  # at most this many samples per split (0 = all), for quick runs
    },
    "encoding": {
        "kind": "direct",  # direct (graded) | rate (Bernoulli) | events (N-MNIST frames)
        "timesteps": 16,
        "input_bits": 4,
        "mean": [],  # per-channel normalisation inside the model (empty = none)
        "std": [],
    },
    "model": {
        # "conv:C[:kK][:sS]" (KxK conv, stride S, padding K//2), "pool:K" (KxK sum pooling as a
        # fixed depthwise conv), "flex:C[:kK][:static|dynamic|pos][:avg|max][:sigmoid|hard]
        # [:etaX][:plasticL]" (Flex layer, see randhet.spec.FlexSpec), "flatten", "dense:N";
        # the output dense is added.
        "layers": ["dense:128"],
        # snn: spiking, surrogate gradients through time (STBP); hybrid: spiking forward,
        # straight-through spike gradient dS/dV = 1; ann: ReLU, no time (not deployable)
        "mode": "snn",
    },
    "neuron": {
        "threshold": 1.25,
        "current_decay": 0.25,
        "voltage_decay": 0.03,
        "sigma": 1.0,
        "randomize": "both",  # current | voltage | both | none
        "distribution": "logit_normal",  # logit_normal | gaussian (sigma in decay fraction)
        # neuron | channel | profile (K = profiles shared draws per core: fits Loihi's
        # decay profiles; core_size neurons per core, 0 = deploy.profile's neurons per core)
        "granularity": "neuron",
        "profiles": 0,
        "core_size": 0,
        "resample": "forward",  # forward (per sample per pass) | step | fixed
        "learn_decay": False,  # learn the mean decays (with a correct gradient)
        "tau_grad": 1.0,
        "scale_grad": 1.0,
    },
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "optimizer": "adam",  # adam | adamw | sgd (momentum)
        "lr": 0.003,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "schedule": "constant",  # constant | cosine
        "grad_clip": 0.0,  # max gradient norm (0 = off)
        "decay_lr": 0.0,  # learning rate of the mean decays (0 = lr)
        "adv_eps": 0.0,  # FGSM adversarial training epsilon on [0, 1] inputs (0 = off)
        "device": "auto",
    },
    "deploy": dict(DEPLOY_DEFAULTS),
    # the robustness protocol (randhet attack; randhet run when enabled): the attack package's
    # settings, see randhet.attack.settings.ProtocolConfig
    "attack": {"enabled": True, **ProtocolConfig().to_table()},
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "model.mode": MODES,
    "data.dataset": tuple(DATASETS),
    "encoding.kind": get_args(Encoding),
    "neuron.randomize": get_args(Randomize),
    "neuron.distribution": get_args(Distribution),
    "neuron.granularity": get_args(Granularity),
    "neuron.resample": get_args(Resample),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.schedule": ("constant", "cosine"),
    "train.device": ("auto", "cpu", "cuda"),
    "deploy.backend": BACKENDS,
}

# key -> inclusive (lower, upper) bounds
_RANGES: dict[str, tuple[float, float]] = {
    "data.val_fraction": (0.0, 0.9),
    "data.test_fraction": (0.0, 0.9),
    "data.limit": (0, 1 << 30),
    "encoding.timesteps": (1, 63),
    "encoding.input_bits": (0, 8),
    "neuron.threshold": (1 / 64, 2047.0),
    "neuron.current_decay": (0.0, 1.0),
    "neuron.voltage_decay": (0.0, 1.0),
    "neuron.sigma": (0.0, 10.0),
    "neuron.profiles": (0, 1 << 20),
    "neuron.core_size": (0, 1 << 20),
    "train.epochs": (1, 100000),
    "train.batch_size": (1, 1 << 20),
    "train.lr": (0.0, 10.0),
    "train.momentum": (0.0, 1.0),
    "train.weight_decay": (0.0, 10.0),
    "train.grad_clip": (0.0, 1e6),
    "train.decay_lr": (0.0, 1e6),
    "train.adv_eps": (0.0, 1.0),
    "deploy.samples": (0, 1 << 30),
}


def _merge(base: dict[str, Any], new: dict[str, Any], where: str, source: str) -> None:
    for key, value in new.items():
        path = f"{where}{key}"
        if key not in base:
            raise ConfigError(f"{source}: unknown key '{path}'")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{path}' must be a table [{path}]")
            _merge(base[key], value, f"{path}.", source)
        else:
            base[key] = _coerce(base[key], value, path, source)


def _coerce(default: Any, value: Any, path: str, source: str) -> Any:
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is list:
        ok = isinstance(value, list) and all(
            isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool))
            for v in value
        )
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(
            f"{source}: '{path}' must be of type {kind.__name__}, got {value!r}"
        )
    return value


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string such as rate
    return key.strip().split("."), value


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(cfg: dict[str, Any]) -> None:
    """Check choices, ranges and cross-field rules; raise ConfigError on the first problem."""
    for key, choices in _CHOICES.items():
        if _get(cfg, key) not in choices:
            got = _get(cfg, key)
            raise ConfigError(f"'{key}' must be one of {', '.join(choices)}; got {got!r}")
    for key, (lo, hi) in _RANGES.items():
        v = _get(cfg, key)
        if not (lo <= v <= hi) or (isinstance(v, float) and math.isnan(v)):
            raise ConfigError(f"'{key}' must be in [{lo}, {hi}]; got {v!r}")
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
        _merge(cfg, data, "", str(p))
    for text in overrides or []:
        keys, value = _parse_override(text)
        _merge_dotted(cfg, keys, value, f"--set {text}")
    validate(cfg)
    return cfg


def _merge_dotted(cfg: dict[str, Any], keys: list[str], value: Any, source: str) -> None:
    nested: dict[str, Any] = {keys[-1]: value}
    for k in reversed(keys[:-1]):
        nested = {k: nested}
    _merge(cfg, nested, "", source)


def with_overrides(cfg: dict[str, Any], overrides: dict[str, Any],
                   source: str = "override") -> dict[str, Any]:
    """A validated copy of a resolved config with ``{"section.key": value}`` set, by the same
    rules as ``--set`` (unknown keys and wrong types refused, then :func:`validate`);
    ConfigError naming ``source`` and the key otherwise."""
    out = copy.deepcopy(cfg)
    for key, value in overrides.items():
        _merge_dotted(out, key.split("."), value, f"{source} {key}={value}")
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
