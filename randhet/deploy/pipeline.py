"""Deploy an exported network on a backend and measure it as deployed.

Every test sample gets its own fresh decay draw (seeded by ``seed``), exactly as the trained
network draws them. The same inputs and draws go through the torch (SLAYER) model, so each
sample's spike rasters can be checked bit for bit against the deployed network. Accuracy,
sparsity, synaptic operations and energy are computed from what the deployed network did.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from randhet import metrics
from randhet.data import load_dataset
from randhet.errors import UserError
from randhet.export.netx import ExportedLayer, ExportedNetwork, read_network
from randhet.hardware import estimate_energy, load_profile
from randhet.io import write_json
from randhet.spec import ConvSpec, DenseSpec

BACKENDS = ("emulator", "lava", "loihi2")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("randhet", "lava-nc", "lava-dl", "torch", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def layer_names(net: ExportedNetwork) -> list[str]:
    """Names of the spiking layers: ``dense_0``, ``conv_1``, ``pool_2`` ..."""
    names = []
    for i, layer in enumerate(net.layers):
        kind = "pool" if isinstance(layer.spec, ConvSpec) and layer.spec.pool else layer.spec.kind
        names.append(f"{kind}_{i}")
    return names


def fan_out(layer: ExportedLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per presynaptic neuron (input shape): the number of synapses with a nonzero weight, and
    the number of all synapses (zero weights included)."""
    w = layer.weight
    if isinstance(layer.spec, DenseSpec):
        return np.count_nonzero(w, axis=0), np.full(w.shape[1], w.shape[0])
    ls = layer.spec
    ones = torch.ones((1, *ls.out_shape), dtype=torch.float64)

    def fan(kernel: np.ndarray) -> np.ndarray:
        out = torch.nn.functional.conv_transpose2d(
            ones, torch.as_tensor(kernel, dtype=torch.float64),  # the adjoint of the conv
            stride=ls.stride, padding=ls.padding, groups=ls.groups,
            output_padding=_output_padding(ls),
        )
        return np.rint(out[0].numpy()).astype(np.int64)

    return fan((w != 0).astype(np.float64)), fan(np.ones_like(w, dtype=np.float64))


def _output_padding(ls: ConvSpec) -> int:
    h = ls.in_shape[1]
    return h - ((ls.out_shape[1] - 1) * ls.stride - 2 * ls.padding + ls.kernel)


def measure(
    net: ExportedNetwork,
    inputs: np.ndarray,
    rasters: list[np.ndarray],
    active_steps: list[np.ndarray],
    profile_name: str,
) -> dict[str, Any]:
    """Sparsity, SynOps (on the exported integer weights), and the energy estimate."""
    profile = load_profile(profile_name)
    steps = inputs.shape[-1]
    samples = inputs.shape[0]
    layers_out = []
    synops_eff = np.zeros(samples)
    synops_dense = 0
    prev_counts = np.count_nonzero(inputs, axis=-1)  # [S, *input]
    total_spikes = np.zeros(samples)
    total_neurons = 0
    for name, layer, raster in zip(layer_names(net), net.layers, rasters, strict=True):
        nonzero, every = fan_out(layer)
        counts_in = prev_counts.reshape(samples, *nonzero.shape)
        synops_eff += (counts_in * nonzero).reshape(samples, -1).sum(-1)
        synops_dense += int(every.sum()) * steps
        counts = raster.sum(-1)  # [S, *shape]
        per_sample = counts.reshape(samples, -1).sum(-1)
        layers_out.append(
            {
                "name": name,
                "neurons": layer.neurons,
                "spikes_per_sample": float(per_sample.mean()),
                "activation_sparsity": metrics.activation_sparsity(
                    per_sample, layer.neurons, steps
                ),
            }
        )
        total_spikes += per_sample
        total_neurons += layer.neurons
        prev_counts = counts
    updates = metrics.neuron_updates(total_neurons, steps)
    active = float(np.sum([a.mean() for a in active_steps]))
    energy = estimate_energy(
        profile,
        synops=float(synops_eff.mean()),
        neuron_updates=float(updates),
        active_neuron_updates=active,
        spikes=float(total_spikes.mean()),
    )
    return {
        "activation_sparsity": metrics.activation_sparsity(total_spikes, total_neurons, steps),
        "synops": {
            "effective": float(synops_eff.mean()),
            "dense": int(synops_dense),
            "unit": "synaptic operations per sample, on the exported integer weights",
        },
        "neuron_updates": {"total": updates, "active": active},
        "energy": energy.to_dict(),
        "layers": layers_out,
    }


def _matching(a: list[np.ndarray], b: list[np.ndarray], n: int) -> np.ndarray:
    """Per sample: True where every layer's raster is identical."""
    ok = np.ones(n, dtype=bool)
    for x, y in zip(a, b, strict=True):
        ok &= (x == y).reshape(n, -1).all(axis=1)
    return ok


def deploy(
    network_path: str | Path,
    *,
    backend: str = "lava",
    samples: int = 0,
    profile: str = "loihi2",
    seed: int = 1,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``samples`` test samples (0 = the whole test split) and write ``deploy.json``."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    load_profile(profile)  # fail early on a bad profile
    net = read_network(network_path)
    data = load_dataset(net.data, timesteps=net.spec.encoding.timesteps)
    available = len(data.x_test)
    if samples < 0 or samples > available:
        raise UserError(f"--samples {samples}: the test split has {available} samples")
    n = samples or available
    out = Path(out_dir) if out_dir else net.path.parent
    out.mkdir(parents=True, exist_ok=True)

    from randhet.deploy.reference import deployment_draws, model_from_export, reference_rasters

    model = model_from_export(net)
    model.generator.manual_seed(seed)  # rate-coded inputs are drawn from this seed
    with torch.no_grad():
        encoded = model.encoder(torch.as_tensor(data.x_test[:n]))
    inputs = model.encoder.to_integer(encoded).numpy()
    draws = deployment_draws(net, n, seed)

    from randhet.deploy.emulator import emulate

    t0 = time.perf_counter()
    bar_off = None if progress else True  # None: shown on a terminal only
    with tqdm(total=n, desc=f"deploy ({backend})", unit="sample", disable=bar_off) as bar:
        def progress_fn(k: int) -> None:
            bar.update(k - bar.n)

        if backend == "emulator":
            result = emulate(net, inputs, draws, on_progress=progress_fn)
        elif backend == "lava":
            from randhet.deploy.lava_backend import run_lava

            result = run_lava(net, inputs, draws, on_progress=progress_fn)
        else:
            from randhet.deploy.loihi2_backend import run_loihi2

            result = run_loihi2(net, inputs, draws)
    wall = time.perf_counter() - t0
    ref = reference_rasters(model, inputs, draws)
    matched = _matching(ref, result.rasters, n)
    emulator_check = {}
    if backend != "emulator":  # the emulator must agree with the deployment it stands in for
        em = emulate(net, inputs, draws)
        emulator_check = {
            "emulator_bit_exact_fraction": float(_matching(em.rasters, result.rasters, n).mean())
        }
    labels = data.y_test[:n]
    pred = result.rasters[-1].sum(-1).argmax(1)
    ref_pred = ref[-1].sum(-1).argmax(1)
    report: dict[str, Any] = {
        "backend": backend,
        "network": str(net.path),
        "samples": n,
        "accuracy": float((pred == labels).mean()),
        "reference_accuracy": float((ref_pred == labels).mean()),
        "bit_exact_fraction": float(matched.mean()),
        "bit_exact_definition": (
            "fraction of samples whose spike rasters in every layer equal the torch (SLAYER) "
            "model's for the same inputs and decay draw"
        ),
        **emulator_check,
        "timesteps": int(inputs.shape[-1]),
        "decay_draw": {
            "seed": seed,
            "sigma": net.spec.neuron.sigma,
            "randomize": net.spec.neuron.randomize,
            "distribution": net.spec.neuron.distribution,
            "granularity": net.spec.neuron.granularity,
            "resample": net.spec.neuron.resample,
            "distinct_current_decays_layer0": int(np.unique(draws[0].current.numpy()).size),
        },
        "profile": profile,
    }
    report.update(measure(net, inputs, result.rasters, result.active_steps, profile))
    report["wall_seconds"] = wall
    report["versions"] = _versions()
    write_json(out / "deploy.json", report)
    from randhet.report.plots import plot_deploy

    plot_deploy(report, [r[0] for r in result.rasters], out / "deploy.png")
    return report
