"""BioFlexNet's three training modes (snn / hybrid / ann) and the six-variant comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from randhet.config import load_config
from randhet.errors import UserError
from randhet.layer_tokens import network_from_tokens
from randhet.models.spiking import SpikingNetwork, build_network
from randhet.spec import EncodingSpec, NetworkSpec, NeuronSpec

CONV = ["conv:4:s2", "conv:6", "pool:2", "dense:8"]
FLEX = ["conv:4:s2", "flex:6", "pool:2", "dense:8"]


def _spec(tokens: list[str], sigma: float = 1.0) -> NetworkSpec:
    neuron = NeuronSpec(threshold=0.5, sigma=sigma)
    return network_from_tokens((1, 8, 8), tokens, 10, neuron, EncodingSpec(timesteps=6))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand((8, 1, 8, 8), generator=g), torch.arange(8) % 10


@pytest.mark.parametrize("mode", ["snn", "hybrid", "ann"])
@pytest.mark.parametrize("tokens", [CONV, FLEX], ids=["conv", "flex"])
def test_every_mode_trains_a_step_with_finite_gradients(mode: str, tokens: list[str]) -> None:
    model = build_network(_spec(tokens), mode, seed=0)
    x, y = _batch()
    opt = torch.optim.Adam(model.weight_parameters(), lr=0.01)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.weight_parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    opt.step()
    assert torch.isfinite(model(x)).all()


def test_hybrid_spikes_like_snn_but_its_gradient_differs() -> None:
    spec = _spec(FLEX)
    snn, hybrid = SpikingNetwork(spec, seed=3), SpikingNetwork(spec, seed=3, mode="hybrid")
    hybrid.load_state_dict(snn.state_dict())
    x, y = _batch()
    grads = []
    outputs = []
    for model in (snn, hybrid):
        out = model(x)
        outputs.append(out.detach())
        F.cross_entropy(out, y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.weight_parameters()]))
    assert torch.equal(outputs[0], outputs[1])  # same decay draws, same spikes
    assert not torch.allclose(grads[0], grads[1])
    assert all(not b.neuron.straight_through for b in snn.blocks)  # the default is untouched


def test_mode_is_validated() -> None:
    with pytest.raises(UserError, match="model.mode"):
        load_config(None, ["model.mode=stbp"])


def test_ann_run_trains_and_its_export_is_refused(tmp_path: Path) -> None:
    from randhet.export import export_run
    from randhet.models.spiking import SpikingNetwork
    from randhet.runs import open_run
    from randhet.train.trainer import train

    cfg = load_config(None, [f"model.layers={json.dumps(FLEX)}", "model.mode=ann",
                             "train.epochs=1", "data.limit=64"])
    metrics = train(cfg, tmp_path, progress=False)
    assert 0 <= metrics.best_val_accuracy <= 1
    model = open_run(tmp_path).model()
    assert model.mode == "ann" and not isinstance(model, SpikingNetwork)
    with pytest.raises(UserError, match="not deployable") as err:
        export_run(tmp_path)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("*.net*"))


def test_six_variants_compare_end_to_end(tmp_path: Path) -> None:
    from randhet.config import protocol_config
    from randhet.experiments.flex_compare import VARIANTS, flex_compare, without_flex

    assert without_flex(["flex:6:k5:dynamic:max", "pool:2"]) == ["conv:6:k5", "pool:2"]
    cfg = load_config(None, [
        "name=tinyflex", "model.layers=[\"flex:4\", \"pool:2\", \"dense:8\"]",
        "encoding.timesteps=4", "train.epochs=1", "data.limit=48", "neuron.threshold=0.5",
        "attack.eps=[0.0, 0.3]", "attack.attacks=[\"fgsm\", \"pgd\", \"pgd_large_eps\"]",
        "attack.eot=1", "attack.steps=2", "attack.draws=1", "attack.samples=12",
        "attack.targets=[\"torch\"]", "attack.readouts=[\"counts\"]",
        "attack.surrogates=[\"trained\"]", "attack.losses=[\"ce\"]", "attack.doublings=0",
        "attack.max_doublings=0", "attack.selection_draws=1",
    ])
    result = flex_compare(cfg, protocol_config(cfg), tmp_path, progress=False,
                          seeds=(0, 1)).to_dict()
    rows = result["variants"]
    assert [r["variant"] for r in rows] == [v[0] for v in VARIANTS]
    for r in rows:
        assert set(r["auc"]) == {"ensemble", "pgd_large_eps"}
        assert all(0 <= a <= 1 for a in r["auc"].values())
        assert (r["activation_sparsity"] is None) == (r["mode"] == "ann")
        assert ("flex:4" in r["layers"]) == r["flex"]
        assert [s["seed"] for s in r["per_seed"]] == [0, 1] == r["seeds"]
        accs = [s["clean_accuracy"] for s in r["per_seed"]]
        assert r["clean_accuracy"] == pytest.approx(sum(accs) / 2)
        assert r["clean_accuracy_std_over_seeds"] == pytest.approx(abs(accs[0] - accs[1]) / 2)
        assert all(Path(run).name.endswith(f"-seed{s}") for run, s in
                   zip(r["runs"], (0, 1), strict=True))
    table = (tmp_path / "flex_compare.md").read_text()
    assert "STBP SNN+Flex" in table and "AUC pgd_large_eps" in table and " ± " in table
    assert json.loads((tmp_path / "flex_compare.json").read_text())["variants"]
    assert (tmp_path / "flex_compare.png").stat().st_size > 0
    # a rerun reuses every finished variant (no training, no attack) and gives the same rows;
    # a folder computed with another config is refused in one line
    nets = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/network.pt")}
    assert len(nets) == 12 and len(list(tmp_path.glob("*/variant.json"))) == 12
    again = flex_compare(cfg, protocol_config(cfg), tmp_path, progress=False,
                         seeds=(0, 1)).to_dict()
    assert again == result
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/network.pt")} == nets
    cfg["train"]["lr"] = cfg["train"]["lr"] / 2
    with pytest.raises(UserError, match=r"variant.json was computed with config.train.lr"):
        flex_compare(cfg, protocol_config(cfg), tmp_path, progress=False, seeds=(0, 1))


def test_pgd_large_eps_runs_with_the_reference_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import randhet.experiments.flex_compare
    from randhet.attack.results import Curve, Flag, Point
    from randhet.attack.settings import ProtocolConfig
    from randhet.experiments.flex_compare import LARGE_EPS_STEPS, attack_variant

    calls = []

    def fake(run: Path, cfg: ProtocolConfig, out_dir: Path | None = None,
             progress: bool = True) -> SimpleNamespace:
        calls.append((cfg.attacks, cfg.steps, out_dir))
        curve = Curve("ensemble", "torch", (Point(0.0, 1.0, 0.0, 1.0, 1, 0, 0, 1, 1),), 0.5)
        return SimpleNamespace(flags=[Flag("ok_flag", True, None, "", "")],
                               curve=lambda name, target: curve)

    monkeypatch.setattr(randhet.experiments.flex_compare, "attack_run", fake)
    protocol = ProtocolConfig(attacks=("fgsm", "pgd", "pgd_large_eps"), steps=3)
    rob = attack_variant(tmp_path, protocol, progress=False)
    assert LARGE_EPS_STEPS == 20
    assert calls == [(("fgsm", "pgd"), 3, None),
                     (("pgd_large_eps",), 20, tmp_path / "pgd_large_eps")]
    assert set(rob.curves) == {"ensemble", "pgd_large_eps"}
    assert rob.flags_ok == {"ok_flag": True, "pgd_large_eps:ok_flag": True}
    calls.clear()
    attack_variant(tmp_path, ProtocolConfig(attacks=("pgd_large_eps",), steps=3))
    assert calls == [(("pgd_large_eps",), 20, tmp_path / "pgd_large_eps")]


def test_cifar10_vgg11_flex_config_builds_and_runs_a_forward() -> None:
    from randhet.config import network_spec
    from randhet.spec import FlexSpec

    cfg = load_config(Path(__file__).parents[1] / "configs" / "cifar10-vgg11-flex.toml")
    spec = network_spec(cfg, (3, 32, 32), 10)
    flex = [ly for ly in spec.layers if isinstance(ly, FlexSpec)]
    assert len(flex) == 4 and all(ly.deployable for ly in flex)
    model = build_network(spec, cfg["model"]["mode"], seed=0)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
