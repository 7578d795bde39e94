"""One schema: the config, the [attack] table and the hardware profiles are checked by
randhet.schema from their dataclasses; defaults are written once; the docs' key lists match."""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from randhet import schema
from randhet.attack.settings import ProtocolConfig
from randhet.config import DEFAULTS, config_keys, dump_toml, load_config
from randhet.errors import ConfigError, ProfileError, UserError
from randhet.experiments.saved import check_same, jsonable
from randhet.hardware import load_profile, profile_keys
from randhet.spec import EncodingSpec, NeuronSpec
from randhet.train.checkpoint import check_resume_config

SHIPPED = Path(__file__).resolve().parents[1] / "hardware_profiles"


def _leaves(table: dict[str, Any], prefix: str = "", opaque: set[str] = frozenset()) -> set[str]:
    """Dotted keys of a nested table (tables named in ``opaque`` count as one key)."""
    out = set()
    for k, v in table.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and path not in opaque:
            out |= _leaves(v, f"{path}.", opaque)
        else:
            out.add(path)
    return out


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON scalars and lists of them are TOML too


def test_every_config_key_is_accepted_and_every_default_key_is_documented() -> None:
    docs = config_keys()
    names = [d.key for d in docs]
    assert len(names) == len(set(names))
    for d in docs:
        assert d.doc.strip() and "\n" not in d.doc, d.key
        assert d.default is not None, d.key  # every config key has a default
        cfg = load_config(None, [f"{d.key}={_toml(d.default)}"])
        node: Any = cfg
        for part in d.key.split("."):
            node = node[part]
        assert node == d.default, d.key
    assert _leaves(DEFAULTS) == set(names)
    assert {f"attack.{k}" for k in ProtocolConfig().to_table()} < set(names)
    assert "attack.enabled" in names


def test_config_defaults_are_the_specs_defaults() -> None:
    for spec, section in ((NeuronSpec(), "neuron"), (EncodingSpec(), "encoding")):
        table = DEFAULTS[section]
        assert set(table) <= {f.name for f in fields(spec)}
        for k, v in table.items():
            expected = getattr(spec, k)
            assert v == (list(expected) if isinstance(expected, tuple) else expected), k
    assert {k: v for k, v in DEFAULTS["attack"].items() if k != "enabled"} == \
        ProtocolConfig().to_table()


def _profile_file_keys(raw: dict[str, Any]) -> set[str]:
    raw = dict(raw)
    timing = raw.pop("timing", {})
    keys = _leaves(raw, opaque={"sources"})
    keys |= {"timing.default"} if "default" in timing else set()
    for basis, table in timing.items():
        if basis != "default":
            keys |= {f"timing.<basis>.{k}" for k in table}
    return keys


def test_profile_keys_match_the_shipped_profiles() -> None:
    docs = {d.key: d for d in profile_keys()}
    assert len(docs) == len(profile_keys())
    assert all(d.doc.strip() and "\n" not in d.doc for d in docs.values())
    files = {}
    for name in ("loihi1", "loihi2"):
        files[name] = _profile_file_keys(tomllib.loads((SHIPPED / f"{name}.toml").read_text()))
        assert files[name] <= set(docs), files[name] - set(docs)
    seen = set().union(*files.values())
    required = {k for k, d in docs.items()
                if d.default is None and not d.kind.endswith(f'or "{schema.UNKNOWN}"')}
    assert required <= seen, required - seen


def _one_line(err: pytest.ExceptionInfo[Exception], *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


@pytest.mark.parametrize(("override", "says"), [
    ("neuron.sigmaa=1", "unknown key 'neuron.sigmaa'"),
    ("train.epochs=many", "'train.epochs' must be of type integer"),
    ("neuron.sigma=11", "'neuron.sigma' must be in [0, 10]"),
    ("attack.eotz=3", "unknown key 'attack.eotz'"),
    ('attack.eot="many"', "'attack.eot' must be of type integer"),
    ("attack.eot=0", "'attack.eot' must be in [1, 10000]"),
])
def test_config_and_attack_errors_are_one_line_naming_source_and_key(override: str,
                                                                      says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    _one_line(err, f"--set {override}: ", says)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[neuron]\nsigma = -1.0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    _one_line(err, f"{path}: 'neuron.sigma' must be in [0, 10]; got -1.0")


@pytest.mark.parametrize(("table", "says"), [
    ({"eotz": 3}, "unknown attack setting 'eotz'"),
    ({"eot": 2.5}, "'attack.eot' must be of type integer; got 2.5"),
    ({"draws": 0}, "'attack.draws' must be in [1, 10000]; got 0"),
])
def test_attack_table_errors_are_one_line(table: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        ProtocolConfig.from_table(table)
    _one_line(err, says)


@pytest.mark.parametrize(("old", "new", "says"), [
    ("ac_pj = 0.9", "ac_pj = 0.9\nacc_pj = 0.9", "bad.toml: [ann_reference] acc_pj is not a"),
    ("cores_per_chip = 128", 'cores_per_chip = "many"',
     "bad.toml: [core] cores_per_chip must be of type integer"),
    ("state_bits = 24", "state_bits = 65", "bad.toml: [bits] state_bits must be in [1, 64]"),
])
def test_profile_errors_are_one_line_naming_the_key(tmp_path: Path, old: str, new: str,
                                                     says: str) -> None:
    text = (SHIPPED / "loihi1.toml").read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    _one_line(err, says)


def test_unknown_is_one_object() -> None:
    from randhet import hardware
    from randhet.deploy import fit

    assert hardware.UNKNOWN is fit.UNKNOWN is schema.UNKNOWN
    assert load_profile("loihi2").core.compartment_profiles_per_core is None  # said "unknown"


def test_a_key_added_later_reads_as_its_default_in_a_result_saved_before_it(
        tmp_path: Path) -> None:
    """A result saved before the NES keys existed (its config and protocol lack them) is the
    same computation as one with their defaults, and a different one with other values: the
    grids' reuse, a training's resume and the per-attack curves all say so."""
    assert schema.added_defaults(ProtocolConfig) == {"nes_steps": 100, "nes_samples": 64}
    cfg = load_config(None)
    old_cfg = json.loads(json.dumps(cfg))
    for k in ("nes_steps", "nes_samples"):
        del old_cfg["attack"][k]
    protocol = ProtocolConfig()
    old_protocol = {k: v for k, v in json.loads(json.dumps(protocol.to_dict())).items()
                    if not k.startswith("nes_")}
    saved = {"config": old_cfg, "protocol": old_protocol}
    check_same(tmp_path / "cell.json", saved, jsonable({"config": cfg,
                                                        "protocol": protocol.to_dict()}))
    assert protocol.same_as_saved(old_protocol)
    other = ProtocolConfig(nes_steps=50)
    assert not other.same_as_saved(old_protocol)
    with pytest.raises(UserError, match="protocol.nes_steps = 100, this run has 50"):
        check_same(tmp_path / "cell.json", saved, jsonable({"config": cfg,
                                                            "protocol": other.to_dict()}))
    (tmp_path / "config.toml").write_text(dump_toml(old_cfg))
    check_resume_config(cfg, tmp_path)
    changed = load_config(None, ["attack.nes_samples=8"])
    with pytest.raises(ConfigError, match="attack.nes_samples"):
        check_resume_config(changed, tmp_path)
