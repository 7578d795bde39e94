"""Which NIR tools run randhet's NIR files, measured: snnTorch, Norse, Sinabs and Rockpool on a
dense network, a conv + pool network and an event-input network.

Run by hand from the repository root (``.venv/bin/python benchmarks/nir_matrix.py``) to print
the matrix, write ``benchmarks/results/nir_matrix.json`` and (``--readme``) the table in
docs/results/nir-neurobench.md between its ``nir-matrix`` markers. ``tests/test_nir_matrix.py``
measures the same matrix and checks it against that file and the docs' table, cell by cell.

Networks (sigma = 0, so every tool sees the same, deterministic network):

- ``dense``: the demo's size: digits 8x8, direct encoding (graded input, the default), 16
  steps, dense 128, dense 10, trained 4 epochs;
- ``conv+pool``: digits 8x8, direct encoding, 8 steps, conv 4 (3x3), average pool 2,
  dense 10, trained 4 epochs;
- ``event``: random integer weights, conv 3 (3x3, stride 2), dense 12, dense 10, on random
  binary event frames (2x8x8, 8 steps; no labels, so no accuracy);
- ``flat dense``: random integer weights, 64 flat inputs (no ``Flatten`` node), dense 24,
  dense 10, on random binary spikes (8 steps; no labels): the one kind Rockpool loads.

Every tool gets what its documentation asks for, and these workarounds, which the matrix
names: one unbatched sample at a time with fresh state (snnTorch and Norse import NIR's
``Flatten`` as a flatten over every dimension, batch included), the graded input in SLAYER
units (the integer input divided by ``2**input_bits``), and for Norse the time step of
randhet's NIR files (``dt = 1e-4 s``; NIR has no time step, and Norse's default of 1e-3 s
gives other dynamics). Each cell records whether the file loads, whether it runs, the first
line of the error where not (and then, for the pooled network, the same for the file
``randhet export --format nir --pool-as conv`` writes; where a graded-input file runs, also
the file ``--floor-bias`` writes), and, where it runs, the accuracy on
the digits test split, the class agreement with randhet's emulator and, per spiking layer,
the fraction of raster entries (sample, neuron, step) that differ from the emulator's
(``raster_mismatch``: the largest of them).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from nir_nets import SAMPLES, trained_network, versions

from randhet.config import DEFAULTS
from randhet.decays import deployment_draws
from randhet.deploy.emulator import emulate
from randhet.export.nir_export import to_nir
from randhet.export.nir_mapping import DEFAULT_DT
from randhet.layer_tokens import network_from_tokens
from randhet.network import ExportedLayer, ExportedNetwork
from randhet.readout import decide
from randhet.spec import DenseSpec, EncodingSpec, NeuronSpec

RESULTS = harness.RESULTS / "nir_matrix.json"
README = harness.ROOT / "docs" / "results" / "nir-neurobench.md"  # the table's page
MARKERS = ("<!-- nir-matrix: begin (benchmarks/nir_matrix.py --readme) -->",
           "<!-- nir-matrix: end -->")
CONSUMERS = ("snnTorch", "Norse", "Sinabs", "Rockpool")
KINDS = ("dense", "conv+pool", "event", "flat dense")
# randhet's export options, tried where they apply: --pool-as conv where a tool does not run a
# pooled network's file; --floor-bias (added to that) where it runs a graded-input one
POOL_OPTION, BIAS_OPTION = "with --pool-as conv", "with --floor-bias"
WORKAROUNDS = {
    "snnTorch": "one unbatched sample at a time, fresh state per sample",
    "Norse": "dt=1e-4 (randhet's NIR time step); one unbatched sample at a time",
    "Sinabs": "none found",
    "Rockpool": "none found",
}


def flat_network() -> tuple[ExportedNetwork, np.ndarray, None]:
    """Random integer weights, a flat input (no Flatten node: what Rockpool can read), dense
    24, dense 10, on random binary (rate-like) spikes [S, 64, 8]."""
    neuron = NeuronSpec(threshold=1.25, current_decay=1024 / 4096, voltage_decay=123 / 4096,
                        sigma=0.0)
    spec = network_from_tokens((64,), ["dense:24"], 10, neuron, EncodingSpec("rate", 8))
    rng = np.random.default_rng(1)
    layers = tuple(
        ExportedLayer(ls, (2 * rng.integers(-30, 28, (ls.out_features, ls.in_features)))
                      .astype(np.int64), 1024, 123, 80)
        for ls in spec.spiking_layers)
    net = ExportedNetwork(spec, layers, dict(DEFAULTS["data"]), Path("flat.net"))
    return net, (rng.random((SAMPLES, 64, 8)) < 0.3).astype(np.int64), None


def event_network() -> tuple[ExportedNetwork, np.ndarray, None]:
    """Random integer weights on random binary event frames [S, 2, 8, 8, 8]."""
    neuron = NeuronSpec(threshold=1.25, current_decay=1024 / 4096, voltage_decay=123 / 4096,
                        sigma=0.0)
    spec = network_from_tokens((2, 8, 8, 8), ["conv:3:s2", "dense:12"], 10, neuron,
                               EncodingSpec("events", 8))
    rng = np.random.default_rng(0)
    layers = []
    for ls in spec.spiking_layers:
        if isinstance(ls, DenseSpec):
            w = 2 * rng.integers(-30, 30, (ls.out_features, ls.in_features))
        else:
            w = 2 * rng.integers(-30, 30, (ls.out_channels, ls.in_shape[0], ls.kernel,
                                           ls.kernel))
        layers.append(ExportedLayer(ls, w.astype(np.int64), 1024, 123, 80))
    net = ExportedNetwork(spec, tuple(layers), dict(DEFAULTS["data"]), Path("event.net"))
    x = (rng.random((SAMPLES, 2, 8, 8, 8)) < 0.3).astype(np.int64)
    return net, x, None


def _quiet() -> contextlib.ExitStack:
    """The tools print and warn while importing graphs: not this table's business."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    stack.callback(logging.disable, logging.NOTSET)
    return stack


def loader(consumer: str, graph: Any) -> Callable[[], Any]:
    """A function that builds ``consumer``'s model of ``graph`` afresh (raises where it
    cannot)."""
    if consumer == "snnTorch":
        from snntorch.import_nir import import_from_nir  # reason: test-only dependency

        return lambda: import_from_nir(graph)
    if consumer == "Norse":
        import norse.torch as norse  # reason: test-only dependency

        return lambda: norse.from_nir(graph, dt=DEFAULT_DT)
    if consumer == "Sinabs":
        import sinabs  # reason: test-only dependency

        return lambda: sinabs.from_nir(graph, batch_size=1)
    if consumer == "Rockpool":
        from rockpool.nn.modules import from_nir  # reason: test-only dependency

        return lambda: from_nir(graph)
    raise ValueError(consumer)


def run(build: Callable[[], Any], x: np.ndarray, lifs: list[str]) -> list[np.ndarray]:
    """Spike rasters [S, N, T] of the graph's ``CubaLIF`` nodes ``lifs`` (read by forward
    hooks on the modules the tools name after the nodes) in models from ``build``, on float
    inputs [S, *shape, T], one unbatched sample at a time, a fresh model (fresh state) per
    sample."""
    per_sample = []
    for s in range(len(x)):
        model = build()
        modules = dict(model.named_modules())
        seen: dict[str, list[np.ndarray]] = {n: [] for n in lifs}
        for n in lifs:
            modules[n].register_forward_hook(
                lambda _m, _i, out, n=n, seen=seen: seen[n].append(
                    (out[0] if isinstance(out, tuple) else out).detach().reshape(-1).numpy() > 0))
        state = None
        for t in range(x.shape[-1]):
            _, state = model(torch.as_tensor(x[s, ..., t], dtype=torch.float32), state)
        missing = [n for n in lifs if len(seen[n]) != x.shape[-1]]
        if missing:
            raise RuntimeError(f"node {missing[0]!r} ran {len(seen[missing[0]])} of "
                               f"{x.shape[-1]} steps (the import dropped it or its input)")
        per_sample.append([np.stack(seen[n], -1) for n in lifs])
    return [np.stack([p[k] for p in per_sample]) for k in range(len(lifs))]


def run_sequence(build: Callable[[], Any], x: np.ndarray, lifs: list[str]) -> list[np.ndarray]:
    """:func:`run` for Rockpool, whose modules take a whole sample [1, T, N] at once and
    return (output, state, record); a spike count above 1 in a step counts as a spike."""
    per_sample = []
    for s in range(len(x)):
        model = build()
        modules = dict(model.named_modules())
        seen: dict[str, np.ndarray] = {}
        for n in lifs:
            modules[n].register_forward_hook(
                lambda _m, _i, out, n=n, seen=seen: seen.__setitem__(
                    n, (out[0] if isinstance(out, tuple) else out).detach()[0].numpy().T > 0))
        sample = torch.as_tensor(x[s], dtype=torch.float32).reshape(-1, x.shape[-1]).T
        model(sample[None])
        per_sample.append([seen[n] for n in lifs])
    return [np.stack([p[k] for p in per_sample]) for k in range(len(lifs))]


def first_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()[0]
    return text[:140]


@dataclass
class Cell:
    """One consumer on one network: whether it loads and runs (else its error's first line)
    and, where it runs, accuracy, class agreement with the emulator and the fraction of raster
    entries that differ per layer; ``options``: the same with an export option that helps."""

    loads: bool = False
    runs: bool = False
    error: str | None = None
    class_agreement: float | None = None
    raster_mismatch_layers: list[float] | None = None
    accuracy: float | None = None
    options: dict[str, Cell] = field(default_factory=dict)  # POOL_OPTION, BIAS_OPTION

    @property
    def raster_mismatch(self) -> float | None:
        return None if self.raster_mismatch_layers is None else max(self.raster_mismatch_layers)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loads": self.loads, "runs": self.runs, "error": self.error}
        if self.runs:
            out |= {"class_agreement": self.class_agreement,
                    "raster_mismatch_layers": self.raster_mismatch_layers,
                    "raster_mismatch": self.raster_mismatch, "accuracy": self.accuracy}
        return out | {k: c.to_dict() for k, c in self.options.items()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Cell:
        """Read back from ``nir_matrix.json``."""
        return Cell(d["loads"], d["runs"], d["error"], d.get("class_agreement"),
                    d.get("raster_mismatch_layers"), d.get("accuracy"),
                    {o: Cell.from_dict(d[o]) for o in (POOL_OPTION, BIAS_OPTION) if o in d})


@dataclass(frozen=True)
class NetworkRow:
    """One network kind: the emulator's accuracy and output rate, and every consumer's cell."""

    emulator_accuracy: float | None
    emulator_output_rate: float
    cells: dict[str, Cell]

    def to_dict(self) -> dict[str, Any]:
        return {"emulator_accuracy": self.emulator_accuracy,
                "emulator_output_rate": self.emulator_output_rate,
                **{c: cell.to_dict() for c, cell in self.cells.items()}}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> NetworkRow:
        return NetworkRow(d["emulator_accuracy"], d["emulator_output_rate"],
                          {c: Cell.from_dict(d[c]) for c in CONSUMERS if c in d})


@dataclass(frozen=True)
class Matrix:
    """The whole matrix (``nir_matrix.json``): tool versions, samples, workarounds, rows."""

    versions: dict[str, str | None]
    samples: int
    workarounds: dict[str, str]
    rows: dict[str, NetworkRow]

    def to_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "samples": self.samples,
                "workarounds": self.workarounds,
                "cells": {k: r.to_dict() for k, r in self.rows.items()}}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Matrix:
        """Read back from ``nir_matrix.json``."""
        return Matrix(d["versions"], d["samples"], d["workarounds"],
                      {k: NetworkRow.from_dict(r) for k, r in d["cells"].items()})


def cell(consumer: str, graph: Any, x: np.ndarray, emulated: list[np.ndarray],
         labels: np.ndarray | None) -> Cell:
    """One measured cell: loads, runs, error, accuracy, class agreement, raster mismatch."""
    out = Cell()
    with _quiet():
        try:
            build = loader(consumer, graph)
            build()
        except Exception as err:  # noqa: BLE001 - what the tool does is the measurement
            out.error = first_line(err)
            return out
        out.loads = True
        try:
            lifs = [n for n, v in graph.nodes.items() if type(v).__name__ == "CubaLIF"]
            rasters = (run_sequence if consumer == "Rockpool" else run)(build, x, lifs)
        except Exception as err:  # noqa: BLE001 - as above
            out.error = first_line(err)
            return out
    emulated = [e.reshape(len(e), -1, e.shape[-1]) for e in emulated]
    if [r.shape for r in rasters] != [e.shape for e in emulated]:
        out.error = (f"raster shapes {[r.shape[1:] for r in rasters]}, expected "
                     f"{[e.shape[1:] for e in emulated]}")
        return out
    out.runs = True
    theirs = decide(rasters[-1].sum(-1))
    ours = decide(emulated[-1].sum(-1))
    out.class_agreement = round(float((theirs == ours).mean()), 4)
    out.raster_mismatch_layers = [round(float((r != e).mean()), 4)
                                  for r, e in zip(rasters, emulated, strict=True)]
    out.accuracy = None if labels is None else round(float((theirs == labels).mean()), 4)
    return out


def measure(work: Path, consumers: tuple[str, ...] = CONSUMERS) -> Matrix:
    """The whole matrix: every consumer on every network kind, on one torch thread (training
    and the float simulations then sum in one order, so the numbers repeat exactly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(work, consumers)
    finally:
        torch.set_num_threads(threads)


def _measure(work: Path, consumers: tuple[str, ...]) -> Matrix:
    torch.manual_seed(0)
    rows: dict[str, NetworkRow] = {}
    for kind in KINDS:
        net, x, labels = (event_network() if kind == "event" else flat_network()
                          if kind == "flat dense" else trained_network(kind, work))
        emulated = emulate(net, x, deployment_draws(net, len(x), seed=0)).rasters
        graph = to_nir(net)
        scale = float(1 << net.spec.encoding.input_shift)  # SLAYER units of the graded input
        output = emulated[-1]
        cells: dict[str, Cell] = {}
        pooled = any(getattr(ly, "pool", False) for ly in net.spec.spiking_layers)
        for consumer in consumers:
            c = cells[consumer] = cell(consumer, graph, x / scale, emulated, labels)
            pool_as = "avgpool"
            if pooled and not c.runs:
                pool_as = "conv"
                c.options[POOL_OPTION] = cell(consumer, to_nir(net, pool_as=pool_as),
                                              x / scale, emulated, labels)
            if net.spec.encoding.input_shift and (c.runs or c.options.get(POOL_OPTION, c).runs):
                c.options[BIAS_OPTION] = cell(consumer, to_nir(net, pool_as=pool_as,
                                                               compensate_floor=True),
                                              x / scale, emulated, labels)
        rows[kind] = NetworkRow(
            emulator_accuracy=(None if labels is None else
                               round(float((decide(output.sum(-1)) == labels).mean()), 4)),
            emulator_output_rate=round(float(output.mean()), 4), cells=cells)
    return Matrix(versions(), SAMPLES, dict(WORKAROUNDS), rows)


def _describe(c: Cell) -> str:
    option = "".join(f"; {o}: {_describe(c.options[o])}" for o in (POOL_OPTION, BIAS_OPTION)
                     if o in c.options)
    if not c.loads:
        return f"does not load (`{c.error}`){option}"
    if not c.runs:
        return f"loads, does not run (`{c.error}`){option}"
    assert c.class_agreement is not None and c.raster_mismatch_layers is not None
    acc = "" if c.accuracy is None else f"accuracy {100 * c.accuracy:.0f} %, "
    layers = " / ".join(f"{100 * m:.2f}" for m in c.raster_mismatch_layers)
    return (f"{acc}classes {100 * c.class_agreement:.0f} % as randhet, "
            f"raster entries differing per layer {layers} %{option}")


def render(result: Matrix) -> str:
    """The docs' table (markdown) of a measured matrix."""
    v = result.versions
    lines = [f"Measured by `benchmarks/nir_matrix.py` ({result.samples} samples per network; "
             + ", ".join(f"{k} {v[k]}" for k in (*CONSUMERS, "NIR")) + "):", "",
             "| network | randhet's emulator | " + " | ".join(CONSUMERS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in CONSUMERS) + " |"]
    for kind, row in result.rows.items():
        emu = ("no labels" if row.emulator_accuracy is None
               else f"accuracy {100 * row.emulator_accuracy:.0f} %")
        lines.append(f"| {kind} | {emu} | "
                     + " | ".join(_describe(row.cells[c]) for c in CONSUMERS) + " |")
    lines += ["", "Workarounds used: " + "; ".join(f"{c}: {w}" for c, w in
                                                   result.workarounds.items()) + "."]
    return "\n".join(lines)


def readme_block(text: str) -> str:
    """The text between the docs page's markers."""
    begin, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    return text[begin:end].strip("\n")


def main(argv: list[str] | None = None) -> int:
    import tempfile  # reason: only the script needs a scratch folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--readme", action="store_true",
                    help="rewrite the table in docs/results/nir-neurobench.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    harness.write_json(args.out, result.to_dict())
    table = render(result)
    print(table)
    if args.readme:
        text = README.read_text()
        begin, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
        README.write_text(text[:begin] + "\n" + table + "\n" + text[end:])
    print(f"wrote {args.out}" + (f" and {README.relative_to(harness.ROOT)}" if args.readme else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
