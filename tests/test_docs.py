"""The documentation runs: every ```bash / ```sh and ```python block of README.md and
docs/**/*.md runs here, in order, one temporary working folder per file (the python blocks of
one file share a namespace), on the embedded digits data; and what the pages say about the
code (config keys, output fields, the README's size and links) is checked against the code.

Each example is small by construction (a few epochs, a few dozen samples), so that the whole
file stays within a few minutes on two cores; each page runs in a process of its own (this
file run as a script), two pages at a time. The only lines not run are the setup commands in
EXCLUDED, each with its reason; a block that needs ../shared/data skips where it is absent.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent  # the .venv's binaries: randhet, python, torchrun

# setup commands that would recurse into the test suite or reinstall the environment
EXCLUDED = {
    r"^make test\b": "runs the test suite this test is part of (recursion)",
    r"^make setup\b": "creates .venv and installs the pinned dependencies (reinstall)",
    r"^make docs\b": "runs make setup, then builds the site (CI builds it before the tests)",
    r"^make demo\b": "runs make setup, then the full-size demo (minutes: the tutorials run "
                     "the same stages at a small size)",
    r"\bpip install\b": "reinstalls packages",
}

FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
RUNNABLE = {"bash": "bash", "sh": "bash", "python": "python"}


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(path: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced block of a page, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(path.read_text())]


def runnable(path: Path) -> list[tuple[str, str]]:
    out = []
    for lang, code in blocks(path):
        if lang in RUNNABLE:
            out.append((RUNNABLE[lang], code))
    return out


def _strip_excluded(code: str) -> tuple[str, list[str]]:
    """The block without the excluded setup lines, and the lines left out."""
    kept, dropped = [], []
    for line in code.splitlines():
        command = line.split("#")[0].strip()
        if command and any(re.search(p, command) for p in EXCLUDED):
            dropped.append(line)
        else:
            kept.append(line)
    return "\n".join(kept), dropped


def _workdir(tmp: Path) -> Path:
    """A working folder that looks like the repository root to the examples: configs/ and
    hardware_profiles/ linked in, and ../shared where this checkout has one."""
    work = tmp / "work"
    work.mkdir()
    for name in ("configs", "hardware_profiles"):
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    if SHARED.is_dir():
        (tmp / "shared").symlink_to(SHARED, target_is_directory=True)
    return work


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


class SkipPage(Exception):
    """A block needs what this checkout lacks."""


def run_blocks(rel: str, work: Path) -> None:
    """Run every runnable block of one page in order in ``work`` (the current folder): bash
    blocks in ``bash -euo pipefail``, python blocks in one namespace per page."""
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for i, (lang, code) in enumerate(runnable(ROOT / rel)):
        code, _ = _strip_excluded(code)
        if not code.strip():
            continue
        if "../shared/data" in code and not SHARED.is_dir():
            raise SkipPage(f"{rel} block {i + 1} needs ../shared/data (lava-dl's PilotNet file), "
                           "which this checkout does not have")
        if lang == "bash":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work, env=_env(),
                                  capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise AssertionError(
                    f"{rel} block {i + 1} failed ({proc.returncode}):\n{code}\n"
                    f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
        else:
            exec(compile(code, f"{rel} block {i + 1}", "exec"), namespace)  # noqa: S102


SKIP_CODE = 77


def _main(rel: str, work: str) -> int:
    """``python tests/test_docs.py PAGE WORKDIR``: one page's examples in their own process,
    so that pages run side by side and a page's python state stays its own."""
    os.chdir(work)
    os.environ.update(_env())
    try:
        run_blocks(rel, Path(work))
    except SkipPage as e:
        print(e)
        return SKIP_CODE
    return 0


RUN_PAGES = [_rel(p) for p in pages() if runnable(p)]
WORKERS = 2  # pages run two at a time: most of a page's time is one process importing torch
SLOW_PAGES = {"docs/tutorials/digits.md", "README.md"}


def _page_tmp(base: Path, rel: str) -> Path:
    d = base / rel.replace("/", "__")
    d.mkdir(exist_ok=True)
    return d


def _drive(rel: str, tmp: Path) -> tuple[subprocess.CompletedProcess[str], Path, float]:
    work = _workdir(tmp)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, rel, str(work)], env=_env(),
                          capture_output=True, text=True, timeout=1800)
    return proc, work, time.monotonic() - start


@pytest.fixture(scope="module")
def page_runs(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Any]]]:
    """Every selected page's examples, started at once on WORKERS processes."""
    selected = {item.callspec.params["rel"] for item in request.session.items
                if hasattr(item, "callspec") and "rel" in item.callspec.params}
    if any(item.name == "test_the_documented_output_fields_are_the_written_ones"
           for item in request.session.items):
        selected.add("docs/tutorials/digits.md")
    base = tmp_path_factory.mktemp("docs")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        # the longest pages first, so that the two workers finish together
        order = sorted((r for r in RUN_PAGES if r in selected),
                       key=lambda r: -len(runnable(ROOT / r)) - 10 * (r in SLOW_PAGES))
        yield {rel: pool.submit(_drive, rel, _page_tmp(base, rel)) for rel in order}


def _result(page_runs: dict[str, Future[Any]], rel: str) -> Path:
    proc, work, seconds = page_runs[rel].result()
    if proc.returncode == SKIP_CODE:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, (f"{rel} ({seconds:.0f} s):\n{proc.stdout[-4000:]}\n"
                                  f"{proc.stderr[-6000:]}")
    print(f"{rel}: {seconds:.1f} s")
    return work


@pytest.mark.parametrize("rel", RUN_PAGES)
def test_every_example_runs(rel: str, page_runs: dict[str, Future[Any]]) -> None:
    _result(page_runs, rel)


def test_only_setup_commands_are_left_out() -> None:
    """Every line not run is one of EXCLUDED's setup commands; they appear only in the
    README's and the install page's setup blocks."""
    dropped = {}
    for p in pages():
        for _, code in runnable(p):
            _, lines = _strip_excluded(code)
            if lines:
                dropped.setdefault(_rel(p), []).extend(lines)
    assert set(dropped) <= {"README.md", "docs/install.md"}, dropped
    assert all(line.split("#")[0].strip().startswith("make ") for v in dropped.values()
               for line in v)


# --- what the pages say, against the code -------------------------------------------------

def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _config_keys() -> set[str]:
    from randhet.config import config_keys

    return {d.key for d in config_keys()}


SET_KEY = re.compile(r"""--(?:set|grid)\s+['"]?([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)=""")
LIST_KEY = re.compile(r"""["']([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)=""")


def _toml_keys(text: str) -> set[str]:
    def walk(table: dict[str, Any], prefix: str) -> set[str]:
        out = set()
        for k, v in table.items():
            if isinstance(v, dict) and not prefix:
                out |= walk(v, f"{k}.")
            else:
                out.add(prefix + k)
        return out
    return walk(tomllib.loads(text), "")


def test_every_config_key_the_docs_use_exists() -> None:
    keys = _config_keys()
    used: dict[str, set[str]] = {}
    for p in pages():
        text = p.read_text()
        found = set(SET_KEY.findall(text))
        for lang, code in blocks(p):
            if lang == "python":
                found |= {k for k in LIST_KEY.findall(code) if "load_config" in code}
            if lang == "toml":
                found |= _toml_keys(code)
        # TOML written by an example (a python string or a heredoc between ''' / EOF markers)
        for snippet in re.findall(r"write_text\('''(.*?)'''\)", text, re.S):
            found |= _toml_keys(snippet)
        found.discard("section.key")  # the placeholder of `--set section.key=value`
        if found:
            used[_rel(p)] = found
    # the configuration page's table of the keys that matter most
    table = (DOCS / "concepts/configuration.md").read_text().split("| key | meaning |")[1]
    named = {k for row in table.split("\n\n")[0].splitlines()[2:]
             for k in re.findall(r"`([a-z_]+\.[a-z_]+)`", row.split(" | ")[0])}
    assert len(named) > 20, named
    used["docs/concepts/configuration.md (table)"] = named
    assert used, "no config key found in the docs: the pattern is broken"
    unknown = {page: sorted(k for k in found if k not in keys) for page, found in used.items()}
    assert not any(unknown.values()), unknown


def test_the_generated_config_reference_is_config_keys() -> None:
    page = _hooks().render_config()
    listed = set(re.findall(r"^\| `([^`]+)` \|", page, re.M))
    assert listed == _config_keys()


def test_the_generated_references_cover_the_code() -> None:
    hooks = _hooks()
    from randhet.hardware import profile_keys

    hardware = hooks.render_hardware()
    assert set(re.findall(r"^\| `([^`]+)` \|", hardware.split("## Sources")[0], re.M)) == \
        {d.key for d in profile_keys()}
    cli = hooks.render_cli()
    for command, options in hooks.cli_options().items():
        assert f"## `randhet {command}`" in cli
        for option in options:
            assert option in cli, (command, option)


def test_readme_is_short_and_links_where_a_newcomer_needs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
    # how to profile your own netx file; every field of deploy.json; what was measured where
    assert "docs/tutorials/stock-netx.md" in links
    assert "randhet profile" in (DOCS / "tutorials/stock-netx.md").read_text()
    assert "docs/reference/outputs.md" in links
    assert "## `deploy.json`" in (DOCS / "reference/outputs.md").read_text()
    assert "docs/results/index.md" in links
    assert "machine, date" in (DOCS / "results/index.md").read_text()


def _documented_fields(name: str) -> tuple[set[str], set[str]]:
    """(every field, the optional ones) of the table after ``<!-- fields: name -->``."""
    text = (DOCS / "reference/outputs.md").read_text()
    table = text.split(f"<!-- fields: {name} -->")[1].split("\n\n")[0]
    every, optional = set(), set()
    for row in table.splitlines()[3:]:
        first, meaning = row.split(" | ")[0], row.split(" | ")[1]
        names = set(re.findall(r"`([^`]+)`", first))
        every |= names
        if meaning.startswith("("):
            optional |= names
    return every, optional


def test_the_documented_output_fields_are_the_written_ones(
        page_runs: dict[str, Future[Any]]) -> None:
    """The output files the digits tutorial writes hold exactly the top-level fields
    docs/reference/outputs.md lists (the optional ones only where the backend writes them)."""
    import json

    run = _result(page_runs, "docs/tutorials/digits.md") / "runs" / "digits"
    written = {
        "metrics.json": [run / "metrics.json"],
        "deploy.json": [run / "deploy.json", run / "lava" / "deploy.json"],
        "profile.json": [run / "profile.json"],
        "robustness.json": [run / "robustness.json"],
    }
    for name, files in written.items():
        every, optional = _documented_fields(name)
        seen: set[str] = set()
        for f in files:
            keys = set(json.loads(f.read_text()))
            assert keys <= every, f"{f.name}: undocumented fields {sorted(keys - every)}"
            seen |= keys
        assert every - optional <= seen, f"{name}: documented, not written: {every - seen}"


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2]))
