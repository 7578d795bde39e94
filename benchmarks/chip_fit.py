"""Does a config's network fit a chip once decay profiles are counted? The resource fit with and
without RandHet's per-neuron decay profiles, and the redraw traffic, for networks whose data
set is not on this machine.

The fit depends on the network's structure, the nonzero weights (synaptic memory) and the
deployed decay draws, not on trained values: the weights here are untrained (every synapse
nonzero, the most memory a trained network can need) and the draws are the deployed ones
(`randhet.decays.deployment_draws`, seed 1, `--samples` samples). A trained run folder's own
fit is `randhet profile RUN/network.net --profile loihi1`.

The same network is then fitted as profile-grouped RandHet (``neuron.granularity = "profile"``,
K profiles per core of the profile's neurons per core) for every ``--profiles`` K: whether it
fits, its cores and chips, and the host's register writes per sample.

    .venv/bin/python benchmarks/chip_fit.py [--config configs/mnist.toml] [--profile loihi1]
        [--profiles 1,4,16,31,32]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import harness
import numpy as np

from randhet.config import load_config, network_spec
from randhet.decays import deployment_draws, network_bindings
from randhet.deploy.fit import check_fit
from randhet.hardware import HardwareProfile, load_profile
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.spec import ConvSpec, DenseSpec

ROOT = harness.ROOT

INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
                "digits": (1, 8, 8)}
RESULTS = harness.RESULTS / "chip_fit.json"


def untrained(cfg: dict, seed: int = 0) -> ExportedNetwork:
    """The config's network with nonzero even 8-bit weights and the config's mean decays."""
    shape = INPUT_SHAPES[cfg["data"]["dataset"]]
    spec = network_spec(cfg, shape, 10).deployed()
    rng = np.random.default_rng(seed)
    layers = []
    for ls in spec.spiking_layers:
        if isinstance(ls, DenseSpec):
            wshape: tuple[int, ...] = (ls.out_features, ls.in_features)
        else:
            assert isinstance(ls, ConvSpec)
            wshape = (ls.out_channels, ls.in_shape[0] // ls.groups, ls.kernel, ls.kernel)
        weight = 2 * rng.integers(1, 128, wshape) * rng.choice([-1, 1], wshape)
        layers.append(ExportedLayer(ls, weight.astype(np.int64),
                                    round(spec.neuron.current_decay * 4096),
                                    round(spec.neuron.voltage_decay * 4096),
                                    round(spec.neuron.threshold * 64)))
    shapes = [tuple(ly.shape) for ly in layers]
    layers = [replace(ly, profile_binding=None if b is None else b.numpy())
              for ly, b in zip(layers, network_bindings(spec.neuron, shapes, seed), strict=True)]
    return ExportedNetwork(spec, tuple(layers), cfg["data"], Path("untrained.net"))


def grouped(config: str, profile: HardwareProfile, k: int, samples: int) -> dict:
    """The config's network as profile-grouped RandHet, K profiles per core of the profile's
    neurons per core: fit, cores, chips and the host's register writes per sample."""
    cfg = load_config(config, ['neuron.granularity="profile"', f"neuron.profiles={k}",
                               f"neuron.core_size={profile.core.neurons_per_core}"])
    net = untrained(cfg)
    fit = check_fit(net, profile, deployment_draws(net, samples, seed=1))
    cut = fit.profile_limited or {}
    return {"profiles": k, "fits": fit.fits, "cores": fit.total_cores or cut.get("cores"),
            "chips": fit.chips or cut.get("chips"),
            "register_writes_per_sample": fit.redraw()["register_writes_per_sample"],
            "summary": fit.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "mnist.toml"))
    parser.add_argument("--profile", default="loihi1")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--profiles", default="1,4,16,31,32",
                        help="K values for the profile-grouped fits")
    args = parser.parse_args()
    cfg = load_config(args.config)
    net = untrained(cfg)
    profile = load_profile(args.profile)
    plain = check_fit(net, profile)
    draws = deployment_draws(net, args.samples, seed=1)
    counted = check_fit(net, profile, draws)
    result = {
        "benchmark": "chip_fit", "config": args.config, "profile": profile.name,
        "samples": args.samples, "machine": harness.machine(),
        "neurons": sum(ly.neurons for ly in net.layers),
        "without_decay_profiles": plain.summary(),
        "with_decay_profiles": counted.summary(),
        "profile_limited": counted.profile_limited,
        "redraw": counted.redraw(),
        "layers": [{"name": ly.name, "neurons": ly.neurons, "cores": ly.cores,
                    "neurons_per_core": ly.neurons_per_core,
                    "decay_profiles": ly.decay_profiles, "profile_cut": ly.profile_cut,
                    "redraw_writes_per_sample": ly.redraw_writes_per_sample}
                   for ly in counted.layers],
        "weights": "untrained: every synapse nonzero (the most synaptic memory)",
        "profile_grouped": [grouped(args.config, profile, int(k), args.samples)
                            for k in args.profiles.split(",")],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    harness.write_json(RESULTS, result)


if __name__ == "__main__":
    main()
