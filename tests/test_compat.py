"""The import-time Lava fixes: what they rewrite, that they are needed, that files stay intact."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from randhet import _compat


def _source(module: str) -> str:
    spec = find_spec(module)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).read_text()


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )


def test_var_model_rewrite_turns_every_encoder_default_into_a_factory() -> None:
    module = "lava.magma.compiler.var_model"
    source = _source(module)
    assert source.count("= ByteEncoder()") == 8  # the unpatched file on disk
    new, count = _compat.rewrite_source(module, source)
    assert count == 8
    assert "= ByteEncoder()" not in new
    assert new.count("field(default_factory=ByteEncoder)") == 8


def test_start_method_rewrite_matches_the_installed_lava() -> None:
    module = "lava.magma.runtime.message_infrastructure.multiprocessing"
    new, count = _compat.rewrite_source(module, _source(module))
    assert count == 1
    assert "ensure_fork_start_method()" in new


def test_rewrite_leaves_other_modules_alone() -> None:
    assert _compat.rewrite_source("lava.proc.lif.models", "x = A()\n") == ("x = A()\n", 0)


def test_lava_fails_without_the_fix_and_imports_with_it() -> None:
    plain = _python("import lava.magma.compiler.var_model")
    assert plain.returncode != 0  # randhet runs on Python 3.11, where the fix is needed
    assert "mutable default" in plain.stderr
    fixed = _python(
        "import randhet, lava.magma.compiler.var_model as v; "
        "a, b = v.CoreEncoder(), v.CoreEncoder(); assert a.x is not b.x; print('ok')"
    )
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "ok"


def test_lava_runtime_imports_after_multiprocessing_was_touched() -> None:
    code = (
        "import randhet, multiprocessing as mp; mp.RLock(); "
        "from lava.magma.runtime.runtime import Runtime; print(mp.get_start_method())"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fork"


def test_a_non_fork_start_method_is_reported_clearly() -> None:
    code = (
        "import randhet, multiprocessing as mp; mp.set_start_method('spawn'); "
        "from lava.magma.runtime.runtime import Runtime"
    )
    result = _python(code)
    assert result.returncode != 0
    assert "Lava needs the 'fork' multiprocessing start method" in result.stderr


def test_install_is_idempotent() -> None:
    _compat.install()
    _compat.install()
    assert sum(isinstance(f, _compat._Finder) for f in sys.meta_path) == 1


def test_slayer_object_detection_is_imported_on_first_use_only() -> None:
    module = "lava.lib.dl.slayer"
    new, count = _compat.rewrite_source(module, _source(module))
    assert count == 1 and "def __getattr__(name):" in new
    code = (
        "import sys, randhet; from randhet._compat import import_slayer_quietly; "
        "import_slayer_quietly(); import lava.lib.dl.slayer as s; "
        "print('torchvision' in sys.modules, 'lava.lib.dl.slayer.object_detection' in "
        "sys.modules); from lava.lib.dl.slayer import obd; s.obd.bbox; "
        "print(obd is s.obd, 'torchvision' in sys.modules)"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # (obd prints a Prophesee warning when it loads)
    assert lines[0] == "False False" and lines[-1] == "True True"
    plain = _python("import sys, lava.lib.dl.slayer; print('torchvision' in sys.modules)")
    assert plain.stdout.strip().endswith("True")  # without randhet: imported eagerly
