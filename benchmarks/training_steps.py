"""Training-step networks and variants shared by ``train_speed.py``, ``peers.py`` and
``gpu_check.py`` (a helper module, not a script).

The two networks (dense 64-128-10; conv 1x28x28 c8s2-c16s2-10) on one batch (64 samples,
T = 16, graded input on a 1/16 grid), built from stock lava-dl SLAYER CUBA blocks or from
randhet's RandHet blocks with the same weights (``train_speed.py``'s part 1), and the step of
every variant ``peers.py`` compares (randhet with and without the kernel extension, SLAYER,
snnTorch, Norse, SpikingJelly and the matmul-only floor), timed interleaved by :func:`bench`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import harness
import torch
import torch.nn.functional as F

from randhet import kernel
from randhet._compat import import_slayer_quietly

import_slayer_quietly()

from lava.lib.dl.slayer.block import cuba as cuba_block  # noqa: E402

from randhet.layer_tokens import network_from_tokens  # noqa: E402
from randhet.models.neuron import RandHetConv, RandHetDense, slayer_neuron_params  # noqa: E402
from randhet.models.spiking import Flatten  # noqa: E402
from randhet.spec import (  # noqa: E402
    ConvSpec,
    DenseSpec,
    EncodingSpec,
    FlattenSpec,
    LayerSpec,
    NeuronSpec,
)

SEED = 0
BATCH = 64
STEPS = 16  # time steps T
LR = 0.01  # plain SGD (the same for every variant)
NOISY_IQR = 0.25  # warn when a variant's interquartile range exceeds this part of its median

# name -> (input shape without T, layer tokens): the two networks
NETWORKS: dict[str, tuple[tuple[int, ...], list[str]]] = {
    "dense 64-128-10": ((64,), ["dense:128"]),
    "conv 1x28x28 c8s2-c16s2-10": ((1, 28, 28), ["conv:8:s2", "conv:16:s2"]),
}

NEURON = NeuronSpec(sigma=1.0)  # threshold 1.25, current decay 0.25, voltage decay 0.03
PEER_TARGET = 3.0  # randhet at least this many times faster than the fastest peer
FLOOR_TARGET = 3.0  # randhet within this many times the floor
PEERS = ("SLAYER", "snnTorch", "Norse", "SpikingJelly")

Step = Callable[[], None]


# ---------------------------------------------------------------------------------------------
# the networks, stock SLAYER and RandHet


def layer_list(input_shape: tuple[int, ...], tokens: list[str]) -> tuple[LayerSpec, ...]:
    """The layers (randhet's own description) both builds follow."""
    spec = network_from_tokens(input_shape, tokens, 10, NeuronSpec(), EncodingSpec())
    return spec.layers


def stock_network(layers: tuple[LayerSpec, ...], neuron: NeuronSpec) -> torch.nn.Sequential:
    """Stock lava-dl SLAYER CUBA blocks for the layer list (mean decays of ``neuron``)."""
    params = slayer_neuron_params(neuron)
    mods: list[torch.nn.Module] = []
    for ly in layers:
        if isinstance(ly, FlattenSpec):
            mods.append(Flatten())
        elif isinstance(ly, ConvSpec):
            mods.append(cuba_block.Conv(
                params, ly.in_shape[0], ly.out_channels, ly.kernel, stride=ly.stride,
                padding=ly.padding, groups=ly.groups, weight_norm=False, delay_shift=False,
            ))
        elif isinstance(ly, DenseSpec):
            mods.append(cuba_block.Dense(
                params, ly.in_features, ly.out_features, weight_norm=False, delay_shift=False,
            ))
    return torch.nn.Sequential(*mods)


def randhet_network(
    layers: tuple[LayerSpec, ...], neuron: NeuronSpec, seed: int
) -> torch.nn.Sequential:
    """RandHet blocks for the layer list; decays drawn from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    mods: list[torch.nn.Module] = []
    for ly in layers:
        if isinstance(ly, FlattenSpec):
            mods.append(Flatten())
        elif isinstance(ly, ConvSpec):
            mods.append(RandHetConv(neuron, ly, gen))
        elif isinstance(ly, DenseSpec):
            mods.append(RandHetDense(neuron, ly.in_features, ly.out_features, gen))
    return torch.nn.Sequential(*mods)


def copy_weights(src: torch.nn.Sequential, dst: torch.nn.Sequential) -> None:
    with torch.no_grad():
        for a, b in zip(src, dst, strict=True):
            if hasattr(a, "synapse"):
                b.synapse.weight.copy_(a.synapse.weight)


def make_batch(input_shape: tuple[int, ...], gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Direct-encoded graded input spikes [B, *shape, T] (pixels on a 1/16 grid) and labels."""
    pixels = torch.rand((BATCH, *input_shape), generator=gen)
    x = (torch.round(pixels * 16) / 16).unsqueeze(-1).expand(*pixels.shape, STEPS).contiguous()
    y = torch.randint(0, 10, (BATCH,), generator=gen)
    return x, y


# ---------------------------------------------------------------------------------------------
# the variants' training steps (peers.py)


def synapses(layers: tuple[LayerSpec, ...]) -> list[torch.nn.Module]:
    """Plain torch synapses (no bias) for the layer list; Flatten for flatten."""
    mods: list[torch.nn.Module] = []
    for ly in layers:
        if isinstance(ly, FlattenSpec):
            mods.append(torch.nn.Flatten())
        elif isinstance(ly, ConvSpec):
            mods.append(torch.nn.Conv2d(ly.in_shape[0], ly.out_channels, ly.kernel,
                                        stride=ly.stride, padding=ly.padding, groups=ly.groups,
                                        bias=False))
        elif isinstance(ly, DenseSpec):
            mods.append(torch.nn.Linear(ly.in_features, ly.out_features, bias=False))
    return mods


def _sgd_step(params: list[torch.nn.Parameter], loss_of: Callable[[], torch.Tensor]) -> Step:
    opt = torch.optim.SGD(params, lr=LR)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_of().backward()
        opt.step()
    return step


def randhet_step(layers: tuple[LayerSpec, ...], x: torch.Tensor, y: torch.Tensor,
                 stock: torch.nn.Module, loop: bool) -> Step:
    net = randhet_network(layers, NEURON, SEED).to(x.device)
    copy_weights(stock, net)
    inner = _sgd_step(list(net.parameters()), lambda: F.cross_entropy(net(x).sum(-1), y))
    if not loop:
        return inner

    def step() -> None:
        with kernel.loop_only():
            inner()
    return step


def slayer_step(stock: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Step:
    return _sgd_step(list(stock.parameters()), lambda: F.cross_entropy(stock(x).sum(-1), y))


def snntorch_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    import snntorch as snn  # reason: benchmark-only dependency

    syn = torch.nn.ModuleList(synapses(layers)).to(xt.device)
    lifs = [snn.Synaptic(alpha=1 - NEURON.current_decay, beta=1 - NEURON.voltage_decay,
                         threshold=NEURON.threshold).to(xt.device)
            if not isinstance(m, torch.nn.Flatten) else None for m in syn]

    def loss() -> torch.Tensor:
        state = [lif.reset_mem() if lif is not None else None for lif in lifs]
        counts = 0
        for t in range(xt.shape[0]):
            h = xt[t]
            for k, (m, lif) in enumerate(zip(syn, lifs, strict=True)):
                h = m(h)
                if lif is not None:
                    h, s_syn, s_mem = lif(h, *state[k])
                    state[k] = (s_syn, s_mem)
            counts = counts + h
        return F.cross_entropy(counts, y)
    return _sgd_step(list(syn.parameters()), loss)


def norse_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    import norse.torch as norse  # reason: benchmark-only dependency

    p = norse.LIFParameters(tau_syn_inv=torch.as_tensor(NEURON.current_decay),
                            tau_mem_inv=torch.as_tensor(NEURON.voltage_decay),
                            v_th=torch.as_tensor(NEURON.threshold))
    syn = torch.nn.ModuleList(synapses(layers)).to(xt.device)
    lifs = torch.nn.ModuleList(torch.nn.Identity() if isinstance(m, torch.nn.Flatten)
                               else norse.LIF(p, dt=1.0) for m in syn).to(xt.device)

    def loss() -> torch.Tensor:
        h = xt
        for m, lif in zip(syn, lifs, strict=True):
            t, b = h.shape[:2]
            h = m(h.reshape(t * b, *h.shape[2:]))
            h = h.reshape(t, b, *h.shape[1:])
            if not isinstance(lif, torch.nn.Identity):
                h, _ = lif(h)
        return F.cross_entropy(h.sum(0), y)
    return _sgd_step(list(syn.parameters()), loss)


def spikingjelly_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    from spikingjelly.activation_based import functional, layer, neuron  # reason: benchmark-only

    mods: list[torch.nn.Module] = []
    for m in synapses(layers):
        if isinstance(m, torch.nn.Flatten):
            mods.append(layer.Flatten(step_mode="m"))
            continue
        mods.append(layer.SeqToANNContainer(m))
        mods.append(neuron.LIFNode(v_threshold=NEURON.threshold, step_mode="m"))
    net = torch.nn.Sequential(*mods).to(xt.device)

    def loss() -> torch.Tensor:
        functional.reset_net(net)
        return F.cross_entropy(net(xt).sum(0), y)
    return _sgd_step(list(net.parameters()), loss)


def floor_step(layers: tuple[LayerSpec, ...], xt: torch.Tensor, y: torch.Tensor) -> Step:
    syn = torch.nn.ModuleList(synapses(layers)).to(xt.device)

    def loss() -> torch.Tensor:
        t, b = xt.shape[:2]
        h = xt.reshape(t * b, *xt.shape[2:])
        for m in syn:
            h = m(h) if isinstance(m, torch.nn.Flatten) else torch.relu(m(h))
        return F.cross_entropy(h.reshape(t, b, -1).sum(0), y)
    return _sgd_step(list(syn.parameters()), loss)


def variants(input_shape: tuple[int, ...], tokens: list[str], device: str = "cpu",
             missing: list[str] | None = None) -> dict[str, Step]:
    """Every variant's training step on one shared batch on ``device``; a peer that is not
    installed is left out (its name appended to ``missing``)."""
    torch.manual_seed(SEED)
    layers = layer_list(input_shape, tokens)
    x, y = make_batch(input_shape, torch.Generator().manual_seed(SEED))  # [B, *shape, T]
    x, y = x.to(device), y.to(device)
    xt = x.movedim(-1, 0).contiguous()  # [T, B, *shape]
    x_randhet = xt.movedim(0, -1)  # [B, *shape, T], stored time major
    stock = stock_network(layers, NeuronSpec(sigma=0.0)).to(device)
    out = {
        "randhet": randhet_step(layers, x_randhet, y, stock, loop=False),
        "randhet (loop)": randhet_step(layers, x_randhet, y, stock, loop=True),
        "SLAYER": slayer_step(stock, x, y),
    }
    for name, make in (("snnTorch", snntorch_step), ("Norse", norse_step),
                       ("SpikingJelly", spikingjelly_step)):
        try:
            out[name] = make(layers, xt, y)
        except ImportError:
            if missing is not None:
                missing.append(name)
    out["floor"] = floor_step(layers, xt, y)
    return out


def bench(name: str, input_shape: tuple[int, ...], tokens: list[str], threads: int, warmup: int,
          rounds: int, device: str = "cpu") -> dict[str, Any]:
    """Median times of every variant's step, interleaved round by round (on CUDA each step
    ends with a synchronize, so that its kernels are timed)."""
    torch.set_num_threads(threads)
    missing: list[str] = []
    steps = variants(input_shape, tokens, device, missing)
    if device.startswith("cuda"):
        steps = {k: _synchronized(step) for k, step in steps.items()}
    t = harness.interleaved(steps, rounds, warmup)
    out: dict[str, Any] = {"network": name, "device": device, "threads": threads,
                           "batch": BATCH, "steps": STEPS, "warmup": warmup, "rounds": rounds,
                           "not_installed": missing, "variants": {}}
    for k, v in t.wall.items():
        out["variants"][k] = {"median_s": t.median(k),
                              "iqr_over_median": harness.iqr_over_median(v),
                              "cpu_median_s": harness.median(t.cpu[k]),
                              "samples_per_s": BATCH / t.median(k)}
    med = {k: v["median_s"] for k, v in out["variants"].items()}
    fastest = min((p for p in PEERS if p in med), key=med.__getitem__)
    out["fastest_peer"] = fastest
    out["speedup_over_fastest_peer"] = med[fastest] / med["randhet"]
    out["over_floor"] = med["randhet"] / med["floor"]
    out["kernel_speedup_over_loop"] = med["randhet (loop)"] / med["randhet"]
    out["pass_peer"] = out["speedup_over_fastest_peer"] >= PEER_TARGET
    out["pass_floor"] = out["over_floor"] <= FLOOR_TARGET
    return out


def _synchronized(step: Step) -> Step:
    def run() -> None:
        step()
        torch.cuda.synchronize()
    return run


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\n{r['network']}, {r['threads']} thread(s): one training step, batch {r['batch']}, "
              f"T = {r['steps']}, median of {r['rounds']} interleaved rounds")
        print(f"{'variant':<16} {'ms/step':>8} {'cpu ms':>8} {'samples/s':>10} {'x floor':>8}")
        floor = r["variants"]["floor"]["median_s"]
        for k, v in r["variants"].items():
            noisy = "  (noisy)" if v["iqr_over_median"] > NOISY_IQR else ""
            print(f"{k:<16} {v['median_s'] * 1e3:8.2f} {v['cpu_median_s'] * 1e3:8.2f} "
                  f"{v['samples_per_s']:10.0f} {v['median_s'] / floor:8.2f}{noisy}")
        if r.get("not_installed"):
            print(f"not installed here: {', '.join(r['not_installed'])}")
        print(f"kernel over loop: {r['kernel_speedup_over_loop']:.2f}x; fastest peer "
              f"{r['fastest_peer']}: randhet {r['speedup_over_fastest_peer']:.2f}x faster "
              f"(target >= {PEER_TARGET:g}: {'PASS' if r['pass_peer'] else 'FAIL'}); "
              f"randhet {r['over_floor']:.2f}x the floor (target <= {FLOOR_TARGET:g}: "
              f"{'PASS' if r['pass_floor'] else 'FAIL'})")
