"""randhet's workload counts beside NeuroBench 2.3.0's own metrics on the same network and inputs.

Run by hand from the repository root (``.venv/bin/python benchmarks/neurobench_compare.py``);
prints the comparison and writes ``benchmarks/results/neurobench_compare.json`` (``--out``).
NeuroBench (test-only dependency) runs its ``ActivationSparsity``, ``SynapticOperations`` and
``MembraneUpdates`` on the snnTorch import of randhet's NIR file (NeuroBench's
``SNNTorchModel``, batch 1, the graded input in SLAYER units); randhet's numbers are
:func:`randhet.deploy.profiling.layer_counts` of the emulator's run of the same inputs. The
networks are ``benchmarks/nir_matrix.py``'s trained dense and conv + pool networks
(``benchmarks/nir_nets.py``).
``tests/test_neurobench.py`` checks the definitions that agree on a small network by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from nir_nets import trained_network, versions

from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.deploy.profiling import layer_counts
from randhet.export.nir_export import to_nir
from randhet.network import ExportedNetwork

RESULTS = harness.RESULTS / "neurobench_compare.json"
SAMPLES = 50


def randhet_counts(net: ExportedNetwork, x: np.ndarray) -> dict[str, float]:
    """randhet's per-sample means on the emulator: sparsity, SynOps, neuron updates."""
    result = emulate(net, x, deployment_draws(net, len(x), seed=0))
    counts = layer_counts(net, x, result)
    steps = x.shape[-1]
    spikes = sum(float(c.spikes.mean()) for c in counts)
    neuron_steps = sum(c.neurons * steps for c in counts)
    return {
        "activation_sparsity": 1 - spikes / neuron_steps,
        "synops_effective": sum(float(c.synops_effective.mean()) for c in counts),
        "synops_effective_first_layer": float(counts[0].synops_effective.mean()),
        "synops_dense": float(sum(c.synops_dense for c in counts)),
        "neuron_updates": float(sum(c.neuron_updates for c in counts)),
        "active_updates": sum(float(c.active_updates.mean()) for c in counts),
    }


def neurobench_counts(net: ExportedNetwork, x: np.ndarray) -> dict[str, float]:
    """NeuroBench's metrics on the snnTorch import of ``net``'s NIR graph, batch 1."""
    from neurobench.benchmarks import Benchmark  # reason: test-only dependency
    from neurobench.metrics.workload import (  # reason: as above
        ActivationSparsity,
        MembraneUpdates,
        SynapticOperations,
    )
    from neurobench.models import SNNTorchModel  # reason: as above
    from snntorch.import_nir import import_from_nir  # reason: as above
    from torch.utils.data import DataLoader, TensorDataset

    scale = float(1 << net.spec.encoding.input_shift)  # the graded input in SLAYER units
    data = torch.as_tensor(x / scale, dtype=torch.float32).movedim(-1, 1)  # [S, T, *shape]
    loader = DataLoader(TensorDataset(data, torch.zeros(len(x), dtype=torch.int64)),
                        batch_size=1)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SNNTorchModel(import_from_nir(to_nir(net)))
        bench = Benchmark(model, loader, [], [],
                          [[], [ActivationSparsity, SynapticOperations, MembraneUpdates]])
        out = bench.run(quiet=True)
    syn = out["SynapticOperations"]
    return {"activation_sparsity": float(out["ActivationSparsity"]),
            "effective_macs": float(syn["Effective_MACs"]),
            "effective_acs": float(syn["Effective_ACs"]),
            "dense": float(syn["Dense"]),
            "membrane_updates": float(out["MembraneUpdates"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    tools = versions() | {"NeuroBench": importlib.metadata.version("neurobench")}
    result: dict[str, Any] = {"versions": tools, "samples": SAMPLES, "networks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("dense", "conv+pool"):
            net, x, _ = trained_network(kind, Path(tmp))
            x = x[:SAMPLES]
            ours, theirs = randhet_counts(net, x), neurobench_counts(net, x)
            result["networks"][kind] = {"randhet": ours, "neurobench": theirs}
            print(f"{kind}:\n  randhet    {json.dumps(ours)}\n  NeuroBench {json.dumps(theirs)}")
    harness.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
