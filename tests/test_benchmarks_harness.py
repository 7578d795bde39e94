"""benchmarks/ runs on one harness (benchmarks/harness.py): its median, interleaved timing, JSON
writer and machine record work as documented, and, read statically, no benchmark file imports a
benchmark script, bends sys.path, keeps its own median or timing loop, or writes JSON its own
way."""

from __future__ import annotations

import ast
import datetime
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # the harness is a module beside the scripts
    sys.path.insert(0, str(BENCHMARKS))

import harness  # noqa: E402

# scripts that need nothing of the harness: gpu_wheels.py downloads wheels with the system
# Python (no torch there), times nothing and writes no JSON
NO_HARNESS = {"gpu_wheels"}
LOADERS = {"spec_from_file_location", "import_module", "run_path", "run_module", "__import__",
           "SourceFileLoader"}
CLOCKS = {"perf_counter", "perf_counter_ns", "process_time", "process_time_ns", "monotonic",
          "time"}
LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
         ast.GeneratorExp)


# ---------------------------------------------------------------------------------------------
# the harness


def test_median_and_spread_of_known_sequences() -> None:
    assert harness.median([3.0, 1.0, 2.0]) == 2.0
    assert harness.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert harness.median([5.0]) == 5.0
    # quartiles of 1..9 (exclusive method): 2.5 and 7.5 around the median 5
    assert harness.iqr_over_median([float(v) for v in range(1, 10)]) == 1.0
    assert harness.iqr_over_median([2.0] * 5) == 0.0


def test_interleaved_warms_up_then_times_every_variant_in_turn() -> None:
    calls: list[str] = []
    seen: list[tuple[str, int]] = []

    def variant(name: str):  # type: ignore[no-untyped-def]
        def run() -> str:
            calls.append(name)
            return f"{name}{len(calls)}"
        return run

    t = harness.interleaved({"a": variant("a"), "b": variant("b")}, rounds=3, warmup=2,
                            before=lambda name, r: seen.append((name, r)))
    assert calls == ["a", "b"] * 5
    assert [r for _, r in seen] == [-1, -1, -1, -1, 0, 0, 1, 1, 2, 2]
    assert [n for n, _ in seen] == ["a", "b"] * 5
    assert {k: len(v) for k, v in t.wall.items()} == {"a": 3, "b": 3}
    assert {k: len(v) for k, v in t.cpu.items()} == {"a": 3, "b": 3}
    assert all(s >= 0 for v in (*t.wall.values(), *t.cpu.values()) for s in v)
    assert t.warmup_results == {"a": "a3", "b": "b4"}  # the last warm-up round's
    assert t.results == {"a": "a9", "b": "b10"}  # the last timed round's
    assert t.medians() == {k: harness.median(v) for k, v in t.wall.items()}
    assert t.cpu_medians() == {k: harness.median(v) for k, v in t.cpu.items()}


def test_time_calls_returns_every_timed_call_and_their_median() -> None:
    count = []
    seconds, med = harness.time_calls(lambda: count.append(1), repeats=4, warmup=1)
    assert len(count) == 5 and len(seconds) == 4
    assert med == harness.median(seconds)
    spent, out = harness.timed(lambda: 42)
    assert out == 42 and spent >= 0


def test_write_json_round_trips_in_the_one_format(tmp_path: Path) -> None:
    data = {"benchmark": "x", "runs": [{"median_s": 0.5, "ok": True}], "none": None}
    path = harness.write_json(tmp_path / "new" / "x.json", data)  # its folder is made
    text = path.read_text()
    assert json.loads(text) == data
    assert text == json.dumps(data, indent=1) + "\n" == harness.dumps(data)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.splitlines()[1] == ' "benchmark": "x",'  # indent 1
    harness.write_json(path, {"second": 2})  # replaces
    assert json.loads(path.read_text()) == {"second": 2}
    with pytest.raises(TypeError):  # not serialisable: the old file stays, no temp file left
        harness.write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"second": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_machine_record_has_its_fields() -> None:
    m = harness.machine()
    assert tuple(m) == harness.MACHINE_FIELDS
    assert isinstance(m["cpu_count"], int) and m["cpu_count"] >= 1
    assert m["torch"] == torch.__version__ and m["torch_threads"] == torch.get_num_threads()
    assert datetime.datetime.fromisoformat(m["date"]).tzinfo is not None
    for key in ("platform", "python", "numpy", "lava_nc", "lava_dl", "randhet"):
        assert isinstance(m[key], str) and m[key], key
    for load in (m["load_average"], harness.loadavg()):
        assert load is None or (len(load) == 3 and all(isinstance(v, float) for v in load))
    assert json.loads(json.dumps(m)) == m


def test_bootstrap_puts_the_checkout_first() -> None:
    assert harness.ROOT == ROOT and harness.RESULTS == BENCHMARKS / "results"
    assert str(ROOT) in sys.path
    assert harness.bootstrap("tests") == ROOT and str(ROOT / "tests") in sys.path


# ---------------------------------------------------------------------------------------------
# the scripts, read statically


def is_script(tree: ast.Module) -> bool:
    """A script runs as ``__main__``; a helper module beside the scripts does not."""
    return any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)


def call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def imported(tree: ast.AST) -> set[str]:
    """Top-level module names imported anywhere in the file (function bodies included)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else (node.module or "").split(".")[0])
    return names


def problems(source: str, name: str, scripts: set[str]) -> list[str]:
    """What breaks the rules in one benchmark file (``name``: its stem)."""
    tree = ast.parse(source)
    out = []
    mods = imported(tree)
    out += [f"imports the script {m}.py" for m in sorted(mods & scripts)]
    if "." in mods:
        out.append("relative import")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) in LOADERS:
            for c in ast.walk(node):
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and (
                        Path(c.value).stem in scripts and c.value.endswith(".py")
                        or c.value in scripts):
                    out.append(f"loads the script {c.value} ({call_name(node)})")
    if name == "harness":
        return out
    if is_script(tree) and name not in NO_HARNESS and "harness" not in mods:
        out.append("a script that does not import the harness")
    if "statistics" in mods:
        out.append("imports statistics: medians and spreads come from the harness")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "sys.path":
            out.append(f"sys.path.{node.attr}: the bootstrap is the harness's")
        elif isinstance(node, ast.Subscript | ast.AugAssign) and "sys.path" in ast.unparse(node):
            out.append("changes sys.path: the bootstrap is the harness's")
        elif isinstance(node, ast.FunctionDef) and "median" in node.name:
            out.append(f"defines {node.name}(): the median is the harness's")
        elif isinstance(node, ast.Call) and call_name(node) == "addsitedir":
            out.append("site.addsitedir: the bootstrap is the harness's")
        elif isinstance(node, ast.Call) and call_name(node) == "dump" and \
                ast.unparse(node.func).startswith("json."):
            out.append("json.dump: results are written by harness.write_json")
        elif isinstance(node, ast.Call) and call_name(node) in ("write_text", "write") and any(
                isinstance(c, ast.Call) and ast.unparse(c.func) == "json.dumps"
                for c in ast.walk(node)):
            out.append("writes json.dumps itself: results are written by harness.write_json")
        elif isinstance(node, ast.ImportFrom) and node.module == "randhet.io" and any(
                a.name == "write_json" for a in node.names):
            out.append("randhet.io.write_json: results are written by harness.write_json")
        elif isinstance(node, LOOPS):
            for c in ast.walk(node):
                if isinstance(c, ast.Call) and call_name(c) in CLOCKS and \
                        ast.unparse(c.func).startswith("time."):
                    out.append(f"line {c.lineno}: time.{call_name(c)}() in a loop: a timing "
                               "loop of its own (use harness.interleaved or time_calls)")
    return list(dict.fromkeys(out))  # nested loops name a clock once


def benchmark_files() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(BENCHMARKS.glob("*.py"))}


def test_no_benchmark_imports_a_script_or_keeps_its_own_harness() -> None:
    files = benchmark_files()
    scripts = {name for name, src in files.items() if is_script(ast.parse(src))}
    assert "harness" not in scripts and "train_speed" in scripts and "peers" in scripts
    found = [f"benchmarks/{name}.py: {p}" for name, src in files.items()
             for p in problems(src, name, scripts)]
    assert not found, "\n".join(found)


def test_the_static_checks_catch_what_they_forbid() -> None:
    scripts = {"train_speed", "peers", "nir_matrix"}
    bad = {
        "from train_speed import NETWORKS": "imports the script train_speed.py",
        "def f():\n    import peers  # reason\n": "imports the script peers.py",
        "import importlib.util\nROOT = 1\nimportlib.util.spec_from_file_location("
        "'nir_matrix', ROOT / 'benchmarks' / 'nir_matrix.py')": "loads the script",
        "import importlib\nimportlib.import_module('peers')": "loads the script peers",
        "import sys\nsys.path.insert(0, '.')": "sys.path.insert",
        "import sys\nsys.path[:0] = ['.']": "changes sys.path",
        "import statistics": "imports statistics",
        "def my_median(v):\n    return sorted(v)[len(v) // 2]": "defines my_median()",
        "import time\nfor _ in range(3):\n    t0 = time.perf_counter()": "in a loop",
        "import time\nts = [time.process_time() for _ in range(3)]": "in a loop",
        "import json\nfrom pathlib import Path\n"
        "Path('x').write_text(json.dumps({}, indent=2))": "writes json.dumps itself",
        "import json\njson.dump({}, open('x', 'w'))": "json.dump",
        "from randhet.io import write_json": "randhet.io.write_json",
        "import argparse\nif __name__ == '__main__':\n    pass": "does not import the harness",
    }
    for source, expected in bad.items():
        found = problems(source, "some_script", scripts)
        assert any(expected in p for p in found), (source, found)
    good = ("import harness\nimport time\n"
            "t = harness.interleaved({'a': lambda: None}, 3, warmup=1)\n"
            "t0 = time.perf_counter()\n"
            "harness.write_json('x.json', {})\n"
            "if __name__ == '__main__':\n    pass\n")
    assert problems(good, "some_script", scripts) == []
    # the harness itself may bend sys.path and use statistics, but not import a script
    assert problems("import sys, statistics\nsys.path.insert(0, '.')", "harness", scripts) == []
    assert problems("import peers", "harness", scripts) == ["imports the script peers.py"]


def test_protocol_cost_counts_nes_as_one_draw_queries_not_gradient_steps() -> None:
    """NES's time is its probes (2 x nes_samples one-draw passes per step) and its best-iterate
    check (square_draws draws), at each rung's budget; a gradient step's time would be wrong."""
    import protocol_cost

    from randhet.attack.members import Member
    from randhet.attack.settings import ProtocolConfig

    cfg = ProtocolConfig(attacks=("nes",), steps=3, eot=2, square_draws=2, nes_steps=10,
                         nes_samples=4, restarts=1, draws=1, selection_draws=1,
                         targets=("torch",))
    times = {"square:torch": 2.0, "score:torch": 0.0}  # 1 s per draw
    assert protocol_cost.unit_s(cfg, times, 0, (Member("nes"),), ("torch",)) == 10 * (8 + 2)
    # level 3: restarts, steps and directions (with Square's draws) each doubled once
    assert protocol_cost.unit_s(cfg, times, 3, (Member("nes"),), ("torch",)) == \
        2 * 20 * (16 + 4)
