"""Analysis of a trained network (BioFlexNet poster, sections 6 and 7): loss landscapes, Flex
mask statistics and spike sparsity.

Everything runs the torch model (no Lava) in evaluation mode, without gradients. Losses are
the training loss, cross-entropy of the output spike counts (nats per sample). Spike rates are
spikes per neuron per time step; sparsity is the NeuroBench activation sparsity, the fraction
of zero outputs among all outputs (neurons x steps x samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from randhet.errors import UserError
from randhet.io import results_folder, write_json
from randhet.layer_tokens import layer_names
from randhet.models import EVAL_BATCH, Network
from randhet.models.flex import RandHetFlex
from randhet.plots import plot_landscape, plot_rasters
from randhet.readout import correct_count
from randhet.runs import Run, open_run

MASK_PARAMETERS = ("mask_logit", "theta")  # Flex mask parameters: perturbed as one filter


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landscape:
    """The loss over the plane ``w + alpha d1 + beta d2`` (:func:`loss_landscape`): ``loss``
    and ``accuracy`` [grid][grid] (row i: alpha[i], column j: beta[j]; loss in nats per
    sample), ``center_loss`` at (0, 0) (None for an even grid) and how it was measured."""

    alpha: list[float]
    beta: list[float]
    loss: list[list[float]]
    accuracy: list[list[float]]
    center_loss: float | None
    min_loss: float
    max_loss: float
    grid: int
    span: float  # in units of each filter's norm
    seed: int
    draws: int  # passes averaged per point (1 for a deterministic model)
    samples: int
    parameters: list[str]  # the perturbed parameters

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MaskHistogram:
    edges: list[float]  # [bins + 1] over [0, 1]
    counts: list[int]  # [bins]


@dataclass(frozen=True)
class MaskStats:
    """One Flex layer's routing (:func:`mask_statistics`); ``histogram`` for a dynamic mask."""

    layer: int
    name: str
    mask: str  # static | dynamic
    gate: str | None
    units: int
    conv_fraction: float  # units with m > 0.5: the conv (selectivity) path
    pool_fraction: float  # m <= 0.5: the pool (invariance) path
    mean_m: float
    channel_mean_m: list[float]  # [C_out]
    histogram: MaskHistogram | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.histogram is None:
            del out["histogram"]
        return out


@dataclass(frozen=True)
class LayerSpikes:
    """One spiking layer's activity over the samples; ``raster``: sample 0, bool [neurons, T]
    (not in the JSON)."""

    name: str
    neurons: int
    timesteps: int
    spikes: float  # total
    spike_rate: float  # spikes per neuron per step
    activation_sparsity: float  # zero outputs / all outputs
    raster: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "raster"}


@dataclass(frozen=True)
class SpikeSummary:
    """Spiking activity on the samples (:func:`spike_summary`); the top-level rate and
    sparsity pool every layer's outputs."""

    samples: int
    layers: tuple[LayerSpikes, ...]
    spike_rate: float
    activation_sparsity: float

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "layers": [ly.to_dict() for ly in self.layers],
                "spike_rate": self.spike_rate, "activation_sparsity": self.activation_sparsity}


@dataclass(frozen=True)
class Analysis:
    """``analysis.json``: a run's loss landscape, Flex mask statistics and spike summary (and
    the spike summaries of the runs compared with it)."""

    run: str
    name: str
    split: str  # val or test: where the samples came from
    samples: int
    layers: list[str]
    randomized: bool
    sigma: float
    landscape: Landscape
    masks: tuple[MaskStats, ...]
    spikes: SpikeSummary
    compare: dict[str, SpikeSummary]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "name": self.name, "split": self.split,
                "samples": self.samples, "layers": list(self.layers),
                "randomized": self.randomized, "sigma": self.sigma,
                "landscape": self.landscape.to_dict(),
                "masks": [m.to_dict() for m in self.masks], "spikes": self.spikes.to_dict(),
                "compare": {k: v.to_dict() for k, v in self.compare.items()}}


# --- helpers -------------------------------------------------------------------------------------


def is_randomized(model: Network) -> bool:
    """Whether two forward passes on the same input can differ (fresh decays or rate coding)."""
    neuron = model.spec.neuron
    fresh_decays = neuron.sigma > 0 and neuron.resample != "fixed"
    return fresh_decays or model.spec.encoding.kind == "rate"


def _batches(x: torch.Tensor) -> list[torch.Tensor]:
    return [x[i:i + EVAL_BATCH] for i in range(0, len(x), EVAL_BATCH)]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# --- 1. loss landscape ---------------------------------------------------------------------------


def _perturbed_parameters(model: Network) -> dict[str, torch.nn.Parameter]:
    """The parameters a landscape direction moves: trainable weights of >= 2 dims (conv filters,
    dense rows) and the Flex mask parameters. Biases, BatchNorm, mean decays and fixed pool
    kernels are left out (zero direction)."""
    out = {}
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if not p.requires_grad or leaf.endswith("_decay") or ".norm." in f".{name}":
            continue
        if p.dim() >= 2 or leaf in MASK_PARAMETERS:
            out[name] = p
    return out


def filter_normalized_direction(
    model: Network, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A random direction per parameter, filter-normalised (Li et al. 2018).

    Gaussian entries, then each filter (slice along dim 0: a conv output channel, a dense row)
    rescaled to the norm of the same filter of the weight: ``d_i <- d_i / |d_i| * |w_i|``. A
    Flex mask vector (``mask_logit`` / ``theta`` [C_out]) is one filter. Parameters that are
    not perturbed (see :func:`_perturbed_parameters`) are absent (zero direction).
    """
    out = {}
    for name, p in _perturbed_parameters(model).items():
        w = p.detach().to(torch.float64).cpu()
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        if p.dim() >= 2:
            w_norm = w.reshape(w.shape[0], -1).norm(dim=1)
            d_norm = d.reshape(d.shape[0], -1).norm(dim=1)
            scale = (w_norm / d_norm.clamp_min(1e-30)).reshape(-1, *([1] * (w.dim() - 1)))
        else:
            scale = w.norm() / d.norm().clamp_min(1e-30)
        out[name] = (d * scale).to(p.dtype).to(p.device)
    return out


@torch.no_grad()
def _loss_and_accuracy(
    model: Network, x: torch.Tensor, y: torch.Tensor, draws: int,
    rng_state: torch.Tensor | None,
) -> tuple[float, float]:
    """Mean cross-entropy (nats per sample) and accuracy over ``draws`` passes; every call
    starts the model's generator from ``rng_state`` (the same random draws at every point)."""
    if rng_state is not None:
        model.generator.set_state(rng_state)
    loss, correct = 0.0, 0
    for _ in range(draws):
        for xb, yb in zip(_batches(x), _batches(y), strict=True):
            logits = model(xb)
            loss += F.cross_entropy(logits.double(), yb, reduction="sum").item()
            correct += correct_count(logits, yb)
    n = draws * len(x)
    return loss / n, correct / n


@torch.no_grad()
def loss_landscape(
    model: Network, x: torch.Tensor, y: torch.Tensor, *, grid: int = 11,
    span: float = 1.0, seed: int = 0, draws: int = 1,
) -> Landscape:
    """Loss over the plane ``w + alpha * d1 + beta * d2`` around the trained weights w.

    ``d1``, ``d2``: filter-normalised random directions (:func:`filter_normalized_direction`,
    drawn from ``seed``); alpha and beta run over ``grid`` points in [-span, span] (in units of
    each filter's norm; an odd grid holds (0, 0) exactly). Cost: ``grid**2 * draws`` passes over
    the samples x (pixels [N, ...], labels y [N]). A randomized model (fresh decays or rate
    coding) averages ``draws`` passes per point, every point seeing the same random draws (the
    model's generator restarts from its current state); a deterministic one uses one pass. The
    weights, the generator state and the train/eval mode are restored exactly afterwards.

    Returns the :class:`Landscape`.
    """
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    draws = draws if is_randomized(model) else 1
    gen = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(model, gen)
    d2 = filter_normalized_direction(model, gen)
    params = _perturbed_parameters(model)
    saved = {name: p.detach().clone() for name, p in params.items()}
    rng_state = model.generator.get_state()
    was_training = model.training
    device = _device(model)
    x, y = x.to(device), y.to(device).long()
    coords = [span * (2.0 * i / (grid - 1) - 1.0) for i in range(grid)]
    loss = np.zeros((grid, grid))
    acc = np.zeros((grid, grid))
    model.eval()
    try:
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                for name, p in params.items():
                    p.copy_(saved[name] + a * d1[name] + b * d2[name])
                loss[i, j], acc[i, j] = _loss_and_accuracy(model, x, y, draws, rng_state)
    finally:
        for name, p in params.items():
            p.copy_(saved[name])
        model.generator.set_state(rng_state)
        model.train(was_training)
    center = (grid // 2, grid // 2) if grid % 2 else None
    return Landscape(
        alpha=coords, beta=list(coords), loss=loss.tolist(), accuracy=acc.tolist(),
        center_loss=None if center is None else float(loss[center]),
        min_loss=float(loss.min()), max_loss=float(loss.max()), grid=grid, span=span,
        seed=seed, draws=draws, samples=len(x), parameters=list(params),
    )


# --- 2. Flex mask statistics ---------------------------------------------------------------------


@torch.no_grad()
def mask_statistics(
    model: Network, x: torch.Tensor, bins: int = 10
) -> list[MaskStats]:
    """Routing of each Flex layer's units on the samples x (pixels [N, ...]).

    Per Flex layer: ``conv_fraction`` (units with m > 0.5: the conv / selectivity path) and
    ``pool_fraction`` (m <= 0.5: the pool / invariance path), ``mean_m`` and ``channel_mean_m``
    [C_out]. A static mask counts one unit per output channel (every neuron of a channel
    shares its m); a dynamic mask counts every (sample, channel, position, step) and adds
    ``histogram`` (``edges`` [bins + 1] over [0, 1], ``counts`` [bins]). Empty list without
    Flex layers. Runs the model in eval mode (restored afterwards).
    """
    names = layer_names(model.spec)
    flex = [(k, b) for k, b in enumerate(model.blocks) if isinstance(b, RandHetFlex)]
    if not flex:
        return []
    edges = np.linspace(0.0, 1.0, bins + 1)
    acc: dict[int, dict[str, Any]] = {
        k: {"n": 0, "conv": 0, "sum": 0.0, "counts": np.zeros(bins, np.int64),
            "channel_sum": None, "channel_n": 0}
        for k, _ in flex
    }
    was_training = model.training
    model.eval()
    try:
        for xb in _batches(x.to(_device(model))):
            model.run_encoded(model.encoder(xb))
            for k, block in flex:
                m = block.last_mask  # set by every forward pass of a Flex block
                c = block.spec.out_channels
                # static: [C] or [1, C, 1, 1, 1]; dynamic: [B, C, H, W, T]
                a = acc[k]
                if block.spec.mask == "static":
                    if a["n"]:
                        continue  # input-independent: count the channels once
                    per_channel = m.reshape(c, 1)
                else:
                    per_channel = m.transpose(0, 1).reshape(c, -1)
                vals = per_channel.double().cpu()
                a["n"] += vals.numel()
                a["conv"] += int((vals > 0.5).sum())
                a["sum"] += float(vals.sum())
                a["counts"] += np.histogram(vals.numpy().ravel(), bins=edges)[0]
                csum = vals.sum(dim=1)
                a["channel_sum"] = csum if a["channel_sum"] is None else a["channel_sum"] + csum
                a["channel_n"] += vals.shape[1]
    finally:
        model.train(was_training)
    out = []
    for k, block in flex:
        a = acc[k]
        dynamic = block.spec.mask == "dynamic"
        stats = MaskStats(
            layer=k, name=names[k], mask=block.spec.mask, gate=block.spec.gate, units=a["n"],
            conv_fraction=a["conv"] / a["n"], pool_fraction=1.0 - a["conv"] / a["n"],
            mean_m=a["sum"] / a["n"],
            channel_mean_m=(a["channel_sum"] / a["channel_n"]).tolist(),
            histogram=MaskHistogram(edges.tolist(), a["counts"].tolist()) if dynamic else None,
        )
        out.append(stats)
    return out


# --- 3. spikes -----------------------------------------------------------------------------------


@torch.no_grad()
def spike_summary(model: Network, x: torch.Tensor) -> SpikeSummary:
    """Spiking activity on the samples x (pixels [N, ...]), one pass in eval mode.

    ``layers``: per spiking layer ``name``, ``neurons``, ``timesteps``, ``spikes`` (total),
    ``spike_rate`` (spikes per neuron per step), ``activation_sparsity`` (zero outputs / all
    outputs, over every sample, neuron and step) and ``raster`` (sample 0: bool [neurons, T]).
    ``activation_sparsity`` and ``spike_rate`` at the top level pool every layer's outputs.
    """
    names = layer_names(model.spec)
    zeros = np.zeros(len(names), np.int64)
    total = np.zeros(len(names), np.int64)
    spikes = np.zeros(len(names))
    rasters: list[np.ndarray] = []
    timesteps = 0
    was_training = model.training
    model.eval()
    try:
        for xb in _batches(x.to(_device(model))):
            layers = model.run_encoded(model.encoder(xb))
            for k, s in enumerate(layers):
                zeros[k] += int((s == 0).sum())
                total[k] += s.numel()
                spikes[k] += float(s.double().sum())
                if len(rasters) < len(layers):
                    rasters.append((s[0] != 0).reshape(-1, s.shape[-1]).cpu().numpy())
                timesteps = s.shape[-1]
    finally:
        model.train(was_training)
    rows = tuple(
        LayerSpikes(name=name, neurons=int(rasters[k].shape[0]), timesteps=int(timesteps),
                    spikes=float(spikes[k]), spike_rate=float(spikes[k] / total[k]),
                    activation_sparsity=float(zeros[k] / total[k]), raster=rasters[k])
        for k, name in enumerate(names))
    return SpikeSummary(samples=len(x), layers=rows,
                        spike_rate=float(spikes.sum() / total.sum()),
                        activation_sparsity=float(zeros.sum() / total.sum()))


# --- 4. a run folder -----------------------------------------------------------------------------


def _samples(run: Run, samples: int, split: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The first ``samples`` images of ``split`` (the other split when it is empty)."""
    order = {"val": ("val", "test"), "test": ("test", "val")}  # split checked by analyze_run
    data = run.data()
    for part in order[split]:
        xs, ys = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        if len(xs):
            n = min(samples, len(xs))
            return torch.as_tensor(xs[:n]), torch.as_tensor(ys[:n]), part
    raise UserError(f"{run.path}: the data set has no validation or test samples")


def analyze_run(
    run_dir: str | Path, out_dir: str | Path | None = None, *, samples: int = 64,
    grid: int = 11, span: float = 1.0, draws: int = 1, seed: int = 0, split: str = "val",
    compare: Sequence[str | Path] = (),
) -> Analysis:
    """Analyse a run's best checkpoint on its first ``samples`` validation images (test images
    when the validation split is empty, or ``split="test"``).

    Writes into ``out_dir`` (default: the run folder) ``analysis.json`` (loss landscape, Flex
    mask statistics, spike summary), ``landscape.png`` (:func:`plot_landscape`) and
    ``rasters.png`` (:func:`plot_rasters`; the runs in ``compare`` are added side by side, on
    their own data's samples). Returns the :class:`Analysis`.
    """
    if samples < 1:
        raise UserError(f"samples must be >= 1, got {samples}")
    run = Path(run_dir)
    out = results_folder(out_dir, run)
    out.mkdir(parents=True, exist_ok=True)
    opened = open_run(run)
    if split not in ("val", "test"):
        raise UserError(f"unknown split {split!r}: use val or test")
    model, name = opened.model(), opened.name
    x, y, part = _samples(opened, samples, split)
    landscape = loss_landscape(model, x, y, grid=grid, span=span, seed=seed, draws=draws)
    masks = mask_statistics(model, x)
    spikes = spike_summary(model, x)
    summaries = {name: spikes}
    for other in compare:
        other_run = open_run(other)
        other_model = other_run.model()
        ox, _, _ = _samples(other_run, samples, split)
        label = other_run.name
        while label in summaries:
            label += "'"
        summaries[label] = spike_summary(other_model, ox)
    result = Analysis(
        run=str(run), name=name, split=part, samples=len(x), layers=layer_names(model.spec),
        randomized=is_randomized(model), sigma=model.spec.neuron.sigma, landscape=landscape,
        masks=tuple(masks), spikes=spikes,
        compare={k: v for k, v in summaries.items() if k != name},
    )
    write_json(out / "analysis.json", result.to_dict())
    title = f"{name}: loss landscape ({len(x)} {part} samples, draws {landscape.draws})"
    plot_landscape(landscape.alpha, landscape.beta, landscape.loss, out / "landscape.png",
                   title=title)
    plot_rasters(summaries, out / "rasters.png")
    return result
