"""Which NIR tools run randhet's NIR files, measured: benchmarks/nir_matrix.py's matrix
(snnTorch, Norse, Sinabs, Rockpool on dense, conv + pool and event-input networks) is measured
here and must match, cell by cell, benchmarks/results/nir_matrix.json and the table of
docs/results/nir-neurobench.md; where a tool runs, it is held to the tolerance that page states."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the tolerance docs/results/nir-neurobench.md states for a tool that runs (any layer's raster,
# classes), on the matrix's networks only: worst 2.53 % (the dense network's output layer; the
# first synapse's floor, which NIR cannot carry), so 3 %. A differently trained sigma = 0
# network of the demo's size showed 3.81 % / 5.18 %: the bound is the matrix's, not the size's
RASTER_TOLERANCE = 0.03
CLASS_AGREEMENT = 0.90
NUMBERS = ("accuracy", "class_agreement", "raster_mismatch")


def _matrix_module():  # type: ignore[no-untyped-def]
    if str(ROOT / "benchmarks") not in sys.path:  # its harness and helper modules
        sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module("nir_matrix")  # registered: its dataclasses need that


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    nm = _matrix_module()
    return nm, nm.measure(tmp_path_factory.mktemp("nir_matrix")).to_dict()


def test_the_measured_matrix_is_the_recorded_one(matrix) -> None:  # type: ignore[no-untyped-def]
    nm, measured = matrix
    recorded = json.loads(nm.RESULTS.read_text())
    assert measured["versions"] == recorded["versions"], \
        "other tool versions: run benchmarks/nir_matrix.py --readme and review the changes"
    for kind, row in recorded["cells"].items():
        for consumer in nm.CONSUMERS:
            want, got = row[consumer], measured["cells"][kind][consumer]
            _same_cell(want, got, f"{kind} / {consumer}")
            for option in (nm.POOL_OPTION, nm.BIAS_OPTION):
                assert (option in want) == (option in got), (kind, consumer, option)
                if option in want:
                    _same_cell(want[option], got[option], f"{kind} / {consumer} / {option}")


def _kind_of(error: str | None) -> str | None:
    """The exception's type: Norse's graph with a dropped node has two inputs and takes "the
    first", which varies from process to process, and so does its message."""
    return None if error is None else error.split(":")[0]


def _same_cell(want: dict, got: dict, where: str) -> None:
    assert (got["loads"], got["runs"], _kind_of(got["error"])) == \
        (want["loads"], want["runs"], _kind_of(want["error"])), where
    if not want["runs"]:
        return
    assert got["raster_mismatch_layers"] == pytest.approx(want["raster_mismatch_layers"],
                                                          abs=0.005), where
    for key in NUMBERS:
        if want[key] is None:
            assert got[key] is None, where
        else:
            assert got[key] == pytest.approx(want[key], abs=0.02), (where, key)


def test_the_readme_table_is_the_recorded_matrix(matrix) -> None:  # type: ignore[no-untyped-def]
    nm, _ = matrix
    recorded = json.loads(nm.RESULTS.read_text())
    # the table lives in the docs since the README became short (docs/results/nir-neurobench.md)
    page = ROOT / "docs" / "results" / "nir-neurobench.md"
    assert nm.readme_block(page.read_text()) == nm.render(nm.Matrix.from_dict(recorded))


def test_tools_that_run_the_files_stay_within_the_stated_tolerance(matrix) -> None:  # type: ignore[no-untyped-def]
    """snnTorch and Norse, wherever they run, within the docs' tolerance; Rockpool runs
    only the flat network, and outside it (its LIF keeps neither w_in nor r)."""
    nm, measured = matrix
    running = 0
    for kind, row in measured["cells"].items():
        assert 0.02 < row["emulator_output_rate"] < 0.6, kind  # real activity, not saturated
        for consumer in ("snnTorch", "Norse"):
            cells = [row[consumer]] + [row[consumer][o] for o in (nm.POOL_OPTION, nm.BIAS_OPTION)
                                       if o in row[consumer]]
            for c in cells:
                if not c["runs"]:
                    continue
                running += 1
                assert c["raster_mismatch"] <= RASTER_TOLERANCE, (kind, consumer)
                assert c["class_agreement"] >= CLASS_AGREEMENT, (kind, consumer)
    # snnTorch runs all four; Norse the dense, event and flat ones, and the pooled one only as
    # --pool-as conv writes it (it maps no AvgPool2d); both again with --floor-bias on the two
    # graded-input networks
    assert running == 4 + 3 + 1 + 4
    assert all(measured["cells"][k]["snnTorch"]["runs"] for k in nm.KINDS)
    norse = measured["cells"]["conv+pool"]["Norse"]
    assert not norse["runs"] and norse[nm.POOL_OPTION]["runs"]
    assert not any(measured["cells"][k]["Sinabs"]["loads"] for k in nm.KINDS)
    rockpool = [k for k in nm.KINDS if measured["cells"][k]["Rockpool"]["runs"]]
    assert rockpool == ["flat dense"]
    assert measured["cells"]["flat dense"]["Rockpool"]["raster_mismatch"] > RASTER_TOLERANCE


def test_the_floor_bias_brings_float_tools_closer(matrix) -> None:  # type: ignore[no-untyped-def]
    """--floor-bias makes up for the first synapse's floor on average: every layer of every
    graded-input network differs less from the emulator with it."""
    nm, measured = matrix
    for kind in ("dense", "conv+pool"):
        for consumer in ("snnTorch", "Norse"):
            c = measured["cells"][kind][consumer]
            plain = c if c["runs"] else c[nm.POOL_OPTION]
            biased = c[nm.BIAS_OPTION]
            assert all(b < a for a, b in zip(plain["raster_mismatch_layers"],
                                             biased["raster_mismatch_layers"], strict=True)), \
                (kind, consumer)
