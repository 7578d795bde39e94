"""Make lava-nc 0.10.0 usable on Python 3.11 without editing site-packages.

Three source rewrites, applied by a meta-path finder while the affected modules load (no file
changed, no bytecode cache written for them):

1. ``lava.magma.compiler.var_model`` declares dataclass fields ``x: ByteEncoder =
   ByteEncoder()``; Python 3.11 rejects unhashable defaults (``ValueError: mutable default``).
   They become ``field(default_factory=ByteEncoder)``. Only on Python >= 3.11.
2. ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls
   ``mp.set_start_method('fork')`` at import, which raises ``RuntimeError: context has already
   been set`` once anything has touched multiprocessing (a tqdm progress bar does). It becomes a
   call that only sets 'fork' when no start method is chosen yet, and fails with a clear message
   if a different one was chosen (Lava's runtime needs fork).
3. ``lava.lib.dl.slayer`` imports its ``object_detection`` subpackage (``slayer.obd``) at import,
   which imports torchvision's model zoo: about 2 s of every randhet process, for code randhet
   never runs. ``obd`` becomes a lazy attribute (a module ``__getattr__``): ``slayer.obd`` and
   ``from lava.lib.dl.slayer import obd`` still work and import it on first use.

Lava forks its workers, so they inherit the fix. Where a pattern is absent (a fixed lava), that
rewrite does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
from dataclasses import dataclass
from types import CodeType


@dataclass(frozen=True)
class Rewrite:
    """One textual fix: ``pattern`` -> ``replacement`` in ``module``'s source."""

    module: str
    pattern: re.Pattern[str]
    replacement: str
    min_python: tuple[int, int] = (3, 0)


REWRITES: tuple[Rewrite, ...] = (
    Rewrite(
        "lava.magma.compiler.var_model",
        re.compile(r"^(\s+\w+:\s*(\w+))\s*=\s*\2\(\)\s*$", re.MULTILINE),
        r"\1 = __import__('dataclasses').field(default_factory=\2)",
        min_python=(3, 11),
    ),
    Rewrite(
        "lava.magma.runtime.message_infrastructure.multiprocessing",
        re.compile(r"^(\s*)mp\.set_start_method\('fork'\)[ \t]*$", re.MULTILINE),
        r"\1__import__('randhet._compat', fromlist=['x']).ensure_fork_start_method()",
    ),
    Rewrite(
        "lava.lib.dl.slayer",
        re.compile(r"^from \. import object_detection as obd[ \t]*$", re.MULTILINE),
        "def __getattr__(name):\n"
        "    if name == 'obd':\n"
        "        return __import__('importlib').import_module(__name__ + '.object_detection')\n"
        "    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')",
    ),
)


def ensure_fork_start_method() -> None:
    """Select multiprocessing's 'fork' start method unless one is already chosen."""
    import multiprocessing as mp  # only when Lava is about to run, not at every import

    current = mp.get_start_method(allow_none=True)
    if current is None:
        mp.set_start_method("fork")
    elif current != "fork":
        raise RuntimeError(
            f"Lava needs the 'fork' multiprocessing start method, but '{current}' was selected"
        )


def active_rewrites(module: str) -> list[Rewrite]:
    """The rewrites that apply to ``module`` on this Python."""
    return [r for r in REWRITES if r.module == module and sys.version_info >= r.min_python]


def rewrite_source(module: str, source: str) -> tuple[str, int]:
    """Apply ``module``'s rewrites to ``source``; returns the new text and the change count."""
    total = 0
    for r in active_rewrites(module):
        source, count = r.pattern.subn(r.replacement, source)
        total += count
    return source, total


class _RewritingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str) -> CodeType:
        source = self.get_data(self.path).decode("utf-8")
        new, _ = rewrite_source(fullname, source)
        return compile(new, self.path, "exec", dont_inherit=True)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if not active_rewrites(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            return spec
        spec.loader = _RewritingLoader(fullname, spec.origin)
        return spec


def install() -> None:
    """Install the finder once (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def installed() -> bool:
    return any(isinstance(f, _Finder) for f in sys.meta_path)


def import_slayer_quietly() -> None:
    """Import ``lava.lib.dl.slayer`` without its unrelated import-time noise.

    lava-dl prints a Prophesee-toolbox warning (object detection, unused here) and torch logs
    "No CUDA runtime is found" when SLAYER imports its CUDA extension loader on a CPU machine.
    Real errors still raise.
    """
    if "lava.lib.dl.slayer" in sys.modules:
        return
    # the few modules the quiet import needs: loaded only when SLAYER is imported
    import contextlib
    import io
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import lava.lib.dl.slayer  # noqa: F401
    finally:
        log.setLevel(level)
