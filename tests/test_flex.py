"""The Flex layer: exact folding of a static mask, refusal of undeployable options, training and
bit-exact deployment of a static Flex network on Lava and the emulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from randhet.config import network_spec
from randhet.data import load_dataset
from randhet.decays import deployment_draws
from randhet.deploy.pipeline import deploy
from randhet.deploy.reference import reference_rasters
from randhet.errors import NetworkFileError
from randhet.export import export_run
from randhet.export.netx import check_deployable
from randhet.layer_tokens import build_layers, layer_token
from randhet.models.exported import model_from_export
from randhet.models.flex import RandHetFlex
from randhet.models.neuron import floor_to_drive_grid
from randhet.models.spiking import SpikingNetwork
from randhet.network import read_network
from randhet.runs import open_run
from randhet.spec import WEIGHT_SCALE, ConvSpec, FlexSpec, NetworkSpec, NeuronSpec
from randhet.train.trainer import train


def _spikes(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def _block(spec: FlexSpec, sigma: float = 0.0) -> RandHetFlex:
    torch.manual_seed(0)
    block = RandHetFlex(NeuronSpec(sigma=sigma), spec, torch.Generator().manual_seed(1))
    block.eval()
    return block


def test_tokens_build_flex_specs_that_round_trip() -> None:
    layers = build_layers(["flex:4", "flex:6:k5:dynamic:max:eta0.5"], (2, 8, 8), 10)
    assert layers[0] == FlexSpec((2, 8, 8), 4)
    assert layers[1] == FlexSpec((4, 8, 8), 6, 5, "dynamic", "max", "hard", 0.5)
    assert [layer_token(ly) for ly in layers[:2]] == ["flex:4", "flex:6:k5:dynamic:max:eta0.5"]
    spec = NetworkSpec((2, 8, 8), layers)
    assert NetworkSpec.from_json(spec.to_json()) == spec
    assert spec.deployed().layers[0] == ConvSpec((2, 8, 8), 4, 3, 1, 1)
    for bad in ("flex", "flex:0", "flex:4:avg:max", "flex:4:eta-1", "flex:4:k3:k5"):
        with pytest.raises(ValueError, match="bad layer"):
            build_layers([bad], (2, 8, 8), 10)


def test_float_fold_equals_the_two_paths() -> None:
    """Linearity: conv(x, m W + (1 - m) W_pool) = m Conv(x) + (1 - m) AvgPool(x), any m."""
    block = _block(FlexSpec((3, 7, 7), 5))
    block.quantize = False
    with torch.no_grad():
        block.mask_logit.copy_(torch.linspace(-2, 2, 5))
    x = _spikes((2, 3, 7, 7, 6), 2)
    assert torch.allclose(block.synapse(x), block.unfolded_drive(x), atol=1e-5)


def test_fold_on_the_weight_grid_gives_identical_spikes_both_ways() -> None:
    """When m W_conv + (1 - m) W_pool lies on the 8-bit grid, the quantized folded layer and
    the path-by-path layer compute the same drive and spikes, bit for bit."""
    block = _block(FlexSpec((3, 6, 6), 4, kernel=2, gate="hard"))  # W_pool = 1/4 = 16/64
    with torch.no_grad():  # hard gate: m = 0.5, 0.75, 0.25, 1.0 exactly
        block.mask_logit.copy_(torch.tensor([0.0, 1.5, -1.5, 3.0]))
        j = torch.randint(-12, 12, block.synapse.weight.shape, generator=torch.Generator())
        block.synapse.weight.copy_(8.0 * j / WEIGHT_SCALE)
    x = _spikes((3, 3, 6, 6, 8), 3)
    folded = block.synapse(x)
    assert torch.equal(folded, block.unfolded_drive(x))
    s_fold = block(x)  # the forward pass trains and deploys with the folded kernel
    s_paths = block.neuron(floor_to_drive_grid(block.unfolded_drive(x)))
    assert s_fold.sum() > 0 and torch.equal(s_fold, s_paths)


def test_quantized_fold_is_the_exported_kernel_within_half_a_grid_step() -> None:
    block = _block(FlexSpec((3, 7, 7), 5), sigma=1.0)
    with torch.no_grad():
        block.mask_logit.copy_(torch.linspace(-1, 1, 5))
    w_int = block.integer_weight()
    fold = block.folded_weight().detach()[..., 0]
    assert torch.equal(w_int.float(), block.neuron.quantize_8bit(fold, descale=True))
    assert torch.all(w_int % 2 == 0) and (w_int.float() - fold * WEIGHT_SCALE).abs().max() <= 1
    x = _spikes((2, 3, 7, 7, 6), 4)
    block.quantize = False
    exact = block.unfolded_drive(x)
    block.quantize = True
    bound = F.conv3d(x, torch.ones(5, 3, 3, 3, 1), padding=(1, 1, 0)) / WEIGHT_SCALE
    assert torch.all((block.synapse(x) - exact).abs() <= bound + 1e-5)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("flex:4:dynamic", "layer 0 (flex:4:dynamic) has an input-dependent mask, which Loihi "
         "synapses cannot compute; use flex:4 (static mask, avg pool) to deploy"),
        ("flex:4:k5:max:hard", "layer 0 (flex:4:k5:max:hard) has a max-pool path, which is not "
         "linear and Loihi synapses cannot compute; use flex:4:k5:hard (static mask, avg pool) "
         "to deploy"),
    ],
)
def test_undeployable_flex_is_refused_with_a_fix(token: str, message: str) -> None:
    spec = NetworkSpec((1, 8, 8), build_layers([token], (1, 8, 8), 10))
    with pytest.raises(NetworkFileError) as info:
        check_deployable(spec)
    assert str(info.value) == message
    check_deployable(NetworkSpec((1, 8, 8), build_layers(["flex:4:eta0.3"], (1, 8, 8), 10)))


def _grads_after_one_step(cfg: dict) -> dict[str, torch.Tensor]:
    model = SpikingNetwork(network_spec(cfg, (1, 8, 8), 10), seed=0)
    data = load_dataset(cfg["data"])
    x, y = torch.as_tensor(data.x_train[:16]), torch.as_tensor(data.y_train[:16]).long()
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_dynamic_mask_trains_with_finite_gradients_and_is_refused_at_export(
    tmp_path: Path, make_tiny_config
) -> None:
    cfg = make_tiny_config('model.layers=["flex:4:dynamic:eta0.2", "dense:12"]',
                           "train.epochs=1", "encoding.timesteps=6")
    grads = _grads_after_one_step(cfg)
    assert {"layers.0.theta", "layers.0.norm.weight"} <= set(grads)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["layers.0.synapse.weight"].abs().sum() > 0
    train(cfg, tmp_path, progress=False)
    with pytest.raises(NetworkFileError, match=r"layer 0 \(flex:4:dynamic:eta0.2\) has an"):
        export_run(tmp_path)
    assert not (tmp_path / "network.net").exists()


def test_static_flex_network_trains_exports_and_deploys_bit_exactly(
    tmp_path: Path, make_tiny_config
) -> None:
    cfg = make_tiny_config('model.layers=["flex:4", "dense:12"]', "neuron.sigma=1.0",
                           "train.epochs=1", "encoding.timesteps=6")
    grads = _grads_after_one_step(cfg)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["layers.0.mask_logit"].abs().sum() > 0
    train(cfg, tmp_path, progress=False)
    export_run(tmp_path)
    model = open_run(tmp_path).model()
    net = read_network(tmp_path / "network.net")
    assert isinstance(model.layers[0], RandHetFlex)
    assert net.spec == model.spec.deployed() and isinstance(net.spec.layers[0], ConvSpec)
    assert np.array_equal(model.blocks[0].integer_weight().numpy(), net.layers[0].weight)
    # the trained Flex model and the deployed conv model spike identically (RandHet draws)
    x = torch.as_tensor(load_dataset(net.data).x_test[:8])
    deployed = model_from_export(net)
    inputs = deployed.encoder.to_integer(deployed.encoder(x)).numpy()
    draws = deployment_draws(net, 8, seed=1)
    assert len(np.unique(draws[0].current.numpy())) > 4  # RandHet: many distinct decays
    model.eval()
    for a, b in zip(reference_rasters(model, inputs, draws),
                    reference_rasters(deployed, inputs, draws), strict=True):
        assert np.array_equal(a, b)
    report = deploy(tmp_path / "network.net", backend="lava", samples=8, progress=False).to_dict()
    assert report["bit_exact_fraction"] == 1.0
    assert report["emulator_bit_exact_fraction"] == 1.0


# --- per-position mask (``pos``) and the plasticity rule (``plasticL``) -------------------------


def test_pos_and_plastic_tokens_round_trip_and_are_validated() -> None:
    layers = build_layers(["flex:4:pos", "flex:6:plastic0.01", "flex:6:pos:plastic0.5"],
                          (2, 8, 8), 10)
    assert layers[0] == FlexSpec((2, 8, 8), 4, mask="pos")
    assert layers[1].plastic == 0.01 and layers[2].mask == "pos" and layers[2].plastic == 0.5
    assert [layer_token(ly) for ly in layers[:3]] == [
        "flex:4:pos", "flex:6:plastic0.01", "flex:6:pos:plastic0.5"]
    assert not layers[0].deployable and layers[1].deployable
    spec = NetworkSpec((2, 8, 8), layers)
    assert NetworkSpec.from_json(spec.to_json()) == spec
    for bad in ("flex:4:pos:static", "flex:4:plastic-1", "flex:4:dynamic:plastic0.1",
                "flex:4:plasticx"):
        with pytest.raises(ValueError, match="bad layer"):
            build_layers([bad], (2, 8, 8), 10)


def test_pos_mask_is_per_position_and_input_independent() -> None:
    block = _block(FlexSpec((3, 7, 7), 5, mask="pos"))
    assert block.mask_logit.shape == (5, 7, 7) and not block.folds
    with torch.no_grad():
        block.mask_logit.copy_(torch.randn(5, 7, 7, generator=torch.Generator().manual_seed(0)))
    x = _spikes((2, 3, 7, 7, 6), 2)
    m = torch.sigmoid(block.mask_logit).reshape(1, 5, 7, 7, 1)
    expect = m * block.conv_path(x) + (1 - m) * block.pool_path(x)
    assert torch.allclose(block.unfolded_drive(x), expect)
    assert block.last_mask is not None and block.last_mask.shape == (1, 5, 7, 7, 1)


def test_pos_mask_trains_and_is_refused_at_export(tmp_path: Path, make_tiny_config) -> None:
    cfg = make_tiny_config('model.layers=["flex:4:pos", "dense:12"]', "train.epochs=1",
                           "encoding.timesteps=6")
    grads = _grads_after_one_step(cfg)
    assert grads["layers.0.mask_logit"].shape == (4, 8, 8)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["layers.0.mask_logit"].abs().sum() > 0
    train(cfg, tmp_path, progress=False)
    with pytest.raises(NetworkFileError) as info:
        export_run(tmp_path)
    assert str(info.value) == (
        "layer 0 (flex:4:pos) has a per-position mask, whose folded kernel would vary with "
        "position (not a convolution); use flex:4 (static mask, avg pool) to deploy")
    assert not (tmp_path / "network.net").exists()


@pytest.mark.parametrize("mask", ["static", "pos"])
@pytest.mark.parametrize("conv_scale", [5.0, 0.0], ids=["conv-wins", "pool-wins"])
def test_plasticity_moves_the_mask_towards_the_more_active_path(
    mask: str, conv_scale: float
) -> None:
    from randhet.models.ann import AnnFlex

    spec = FlexSpec((3, 7, 7), 5, mask=mask, plastic=0.1)
    snn = _block(spec)
    ann = AnnFlex(spec)
    x = _spikes((4, 3, 7, 7, 6), 3)
    for block, xb in ((snn, x), (ann, x[..., 0])):
        weight = block.synapse.weight if block is snn else block.conv.weight
        with torch.no_grad():
            weight.copy_(conv_scale * torch.ones_like(weight))
        assert block.plasticity_step() is None  # nothing recorded yet
        block.eval()
        block(xb)
        assert block.path_rates is None  # evaluation does not record
        block.train()
        before = block.mask_logit.detach().clone()
        block(xb)
        r_sel, r_inv = block.path_rates
        assert r_sel.shape == before.shape
        dm = block.plasticity_step()
        assert torch.allclose(block.mask_logit - before, dm)
        assert torch.allclose(dm, 0.1 * (r_sel - r_inv))
        moved = block.mask_logit - before
        assert (moved > 0).all() if conv_scale else (moved < 0).all()
        assert block.path_rates is None and block.plasticity_step() is None


def test_training_applies_plasticity_after_every_step(
    tmp_path: Path, make_tiny_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    step = RandHetFlex.plasticity_step

    def counting(self: RandHetFlex) -> torch.Tensor | None:
        dm = step(self)
        calls.append(dm is not None)
        return dm

    monkeypatch.setattr(RandHetFlex, "plasticity_step", counting)
    cfg = make_tiny_config('model.layers=["flex:4:plastic0.05", "dense:12"]',
                           "train.epochs=1", "encoding.timesteps=6")
    metrics = train(cfg, tmp_path, progress=False)
    assert calls and all(calls)  # once per optimizer step, each with a recorded forward
    assert 0 <= metrics.best_val_accuracy <= 1
    model = open_run(tmp_path).model()
    assert torch.isfinite(model.blocks[0].mask_logit).all()
    export_run(tmp_path)  # plasticity is training-only: a static plastic mask still deploys
    assert (tmp_path / "network.net").exists()
