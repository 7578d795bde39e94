"""lava-nc's LIF tests and lava-dl's netx tests, as installed, pass under randhet's fix."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

SUITES = ("tests/lava/proc/lif", "tests/lava/lib/dl/netx")


@pytest.mark.upstream
def test_installed_upstream_suites_pass(tmp_path: Path) -> None:
    spec = find_spec("lava.proc.lif.models")  # "lava" is a namespace package
    assert spec is not None and spec.origin is not None
    site = Path(spec.origin).parents[3]
    suites = [str(site / s) for s in SUITES]
    for s in suites:
        assert Path(s).is_dir(), f"upstream suite missing: {s}"
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")  # keep randhet's own pytest options out of the upstream run
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:nengo",  # nengo's plugin: not lava's
            "-c", str(ini), "--rootdir", str(site), *suites]
    code = f"import randhet, pytest, sys; sys.exit(pytest.main({args!r}))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=site, capture_output=True, text=True, timeout=1200
    )
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout, tail
