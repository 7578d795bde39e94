"""Analysis of trained networks: loss landscape (exact centre, bit-exact restore, filter
normalisation), Flex mask statistics, spike sparsity and the run-folder report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from randhet.data import load_dataset
from randhet.layer_tokens import network_from_tokens
from randhet.models.flex import RandHetFlex
from randhet.models.spiking import SpikingNetwork
from randhet.report.analysis import (
    analyze_run,
    filter_normalized_direction,
    loss_landscape,
    mask_statistics,
    spike_summary,
)
from randhet.runs import open_run
from randhet.spec import EncodingSpec, NeuronSpec
from randhet.train.trainer import train


@pytest.fixture(scope="module")
def flex_run(tmp_path_factory: pytest.TempPathFactory, make_tiny_config) -> Path:
    """A tiny static Flex network (sigma = 1) trained for one epoch."""
    cfg = make_tiny_config('model.layers=["flex:4", "dense:12"]', "train.epochs=1",
                           "encoding.timesteps=6", "name=flex")
    out = tmp_path_factory.mktemp("flex_run")
    train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def samples() -> tuple[torch.Tensor, torch.Tensor]:
    from randhet.config import load_config

    data = load_dataset(load_config(None, [])["data"])
    return torch.as_tensor(data.x_val[:24]), torch.as_tensor(data.y_val[:24])


def _net(tokens: list[str], sigma: float = 0.0) -> SpikingNetwork:
    torch.manual_seed(0)
    spec = network_from_tokens(
        (1, 8, 8), tokens, 10, NeuronSpec(sigma=sigma), EncodingSpec(timesteps=6)
    )
    return SpikingNetwork(spec, seed=3).eval()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_landscape_centre_is_the_model_loss_and_weights_are_restored_bit_exactly(
    flex_run: Path, samples: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = samples
    model = open_run(flex_run).model().randomness_off_twin().eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(x).double(), y).item()
    before = _state(model)
    result = loss_landscape(model, x, y, grid=3, span=0.5, seed=1, draws=3)
    assert result.alpha == [-0.5, 0.0, 0.5] and result.beta[1] == 0.0
    assert result.center_loss == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert result.draws == 1  # sigma = 0: one pass is the exact loss
    loss = np.asarray(result.loss)
    assert loss.shape == (3, 3) and np.isfinite(loss).all()
    assert loss.max() > loss.min()  # the directions do move the weights
    assert "layers.0.mask_logit" in result.parameters
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

    # a randomized model: draws averaged, the generator and the mode restored as well
    random_model = open_run(flex_run).model().train()
    state = random_model.generator.get_state()
    before = _state(random_model)
    result = loss_landscape(random_model, x[:8], y[:8], grid=2, draws=2)
    assert result.draws == 2 and result.center_loss is None
    assert torch.equal(random_model.generator.get_state(), state)
    assert random_model.training
    after = random_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_filter_normalised_directions_match_the_weight_norms_per_filter() -> None:
    model = _net(["conv:4", "pool:2", "flex:6", "dense:12"])
    flex = model.blocks[2]
    assert isinstance(flex, RandHetFlex)
    with torch.no_grad():
        flex.mask_logit.copy_(torch.linspace(-2, 2, 6))
    dirs = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    for name, d in dirs.items():
        w = params[name].detach()
        assert d.shape == w.shape
        if w.dim() >= 2:  # conv output channels and dense rows
            dn = d.reshape(d.shape[0], -1).norm(dim=1)
            wn = w.reshape(w.shape[0], -1).norm(dim=1)
            assert torch.allclose(dn, wn, rtol=1e-5)
        else:  # the mask logits: one filter
            assert torch.allclose(d.norm(), w.norm(), rtol=1e-5)
    assert "layers.2.mask_logit" in dirs
    assert "layers.0.synapse.weight" in dirs and "layers.4.synapse.weight" in dirs
    assert "layers.1.synapse.weight" not in dirs  # the fixed pool kernel
    assert not [n for n in dirs if n.endswith("_decay") or n.endswith("bias")]
    again = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    assert all(torch.equal(dirs[k], again[k]) for k in dirs)  # reproducible from the seed


def test_static_mask_statistics_count_channels_by_hand_set_logits(
    samples: tuple[torch.Tensor, torch.Tensor],
) -> None:
    model = _net(["flex:4", "dense:12"])
    logits = torch.tensor([2.0, -1.0, 0.3, -3.0])
    with torch.no_grad():
        model.blocks[0].mask_logit.copy_(logits)
    (stats,) = mask_statistics(model, samples[0])
    assert stats.name == "0:flex:4" and stats.mask == "static"
    assert stats.units == 4
    assert stats.conv_fraction == 0.5 and stats.pool_fraction == 0.5
    assert stats.mean_m == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-6)
    assert stats.channel_mean_m == pytest.approx(torch.sigmoid(logits).tolist(), rel=1e-6)
    assert stats.histogram is None and "histogram" not in stats.to_dict()
    assert mask_statistics(_net(["dense:12"]), samples[0]) == []


def test_dynamic_mask_statistics_cover_every_sample_position_and_step(
    samples: tuple[torch.Tensor, torch.Tensor],
) -> None:
    model = _net(["flex:3:dynamic", "dense:12"])
    with torch.no_grad():
        model.blocks[0].theta.copy_(torch.tensor([-0.5, 0.0, 0.5]))
    x = samples[0][:10]
    (stats,) = mask_statistics(model, x, bins=5)
    with torch.no_grad():
        model.run_encoded(model.encoder(x))
    m = model.blocks[0].last_mask
    assert m is not None and m.shape == (10, 3, 8, 8, 6)
    assert stats.units == m.numel() == sum(stats.histogram.counts)
    assert stats.conv_fraction == pytest.approx((m > 0.5).double().mean().item())
    assert stats.mean_m == pytest.approx(m.double().mean().item())
    assert len(stats.histogram.edges) == 6
    assert stats.conv_fraction + stats.pool_fraction == pytest.approx(1.0)


def test_spike_summary_sparsity_matches_a_hand_count(
    flex_run: Path, samples: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = open_run(flex_run).model().randomness_off_twin().eval()
    x = samples[0][:12]
    summary = spike_summary(model, x)
    with torch.no_grad():
        layers = model.run_encoded(model.encoder(x))
    assert [ly.name for ly in summary.layers] == ["0:flex:4", "1:dense:12", "2:dense:10"]
    zeros = all_outputs = 0
    for row, s in zip(summary.layers, layers, strict=True):
        z = sum(1 for v in s.flatten().tolist() if v == 0)
        assert row.activation_sparsity == pytest.approx(z / s.numel(), abs=1e-12)
        assert row.spike_rate == pytest.approx(s.sum().item() / s.numel(), rel=1e-9)
        assert row.timesteps == 6 and row.neurons * 6 * 12 == s.numel()
        assert np.array_equal(row.raster, (s[0] != 0).reshape(-1, 6).numpy())
        zeros, all_outputs = zeros + z, all_outputs + s.numel()
    assert summary.activation_sparsity == pytest.approx(zeros / all_outputs, abs=1e-12)
    assert 0.0 < summary.activation_sparsity < 1.0


def test_analyze_run_writes_json_landscape_and_rasters(flex_run: Path, tmp_path: Path) -> None:
    result = analyze_run(flex_run, tmp_path, samples=16, grid=3, compare=[flex_run])
    for name in ("analysis.json", "landscape.png", "rasters.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert result.masks[0].name == "0:flex:4" and result.spikes.layers[0].raster.dtype == bool
    assert saved["split"] == "val" and saved["samples"] == 16 and saved["randomized"]
    assert np.asarray(saved["landscape"]["loss"]).shape == (3, 3)
    assert [m["name"] for m in saved["masks"]] == ["0:flex:4"]
    assert 0.0 <= saved["masks"][0]["conv_fraction"] <= 1.0
    assert len(saved["spikes"]["layers"]) == 3 and "raster" not in saved["spikes"]["layers"][0]
    assert list(saved["compare"]) == ["flex'"]
