"""The package's imports point one way: no cycles, no import from a layer above, and every
function-level import says why it is not at the top of its module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "randhet"

# bottom to top; a module may import its own layer and the layers below (never a cycle)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("randhet._compat", "randhet.allocator", "randhet.errors", "randhet.schema",
              "randhet.spec", "randhet.layer_tokens", "randhet.loihi", "randhet.kernel",
              "randhet.kernel_triton", "randhet.decays",
              "randhet.network", "randhet.deployed", "randhet.stock_netx", "randhet.io",
              "randhet.distributed", "randhet.metrics",
              "randhet.readout")),
    # attack.settings: the [attack] table's schema, owned by the attack package, imports only
    # the core, so that a config is validated whole when it is loaded
    ("config, data, hardware, plots", ("randhet.config", "randhet.data", "randhet.hardware",
                                       "randhet.plots", "randhet.attack.settings")),
    ("models", ("randhet.models",)),
    ("train, export, runs", ("randhet.train", "randhet.export", "randhet.runs")),
    ("deploy", ("randhet.deploy",)),
    ("attack", ("randhet.attack",)),
    ("experiments", ("randhet.experiments",)),
    ("report", ("randhet.report",)),
    ("public face", ("randhet.cli", "randhet.api", "randhet.__main__", "randhet")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    """Index of the layer whose most specific prefix names ``module``."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The randhet modules an import statement loads (``from pkg import mod`` is ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            is_package = MODULES[module].name == "__init__.py"
            keep = len(parts) - node.level + (1 if is_package else 0)
            base = ".".join(parts[:keep] + ([base] if base else []))
        subs = [f"{base}.{a.name}" for a in node.names]
        names = [s for s in subs if s in MODULES] or [base]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def import_nodes(path: Path) -> tuple[list[ast.AST], list[ast.AST]]:
    """(module-level, function-level) import statements of a file."""
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    inner = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
             and n not in top]
    return top, inner


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        top, inner = import_nodes(path)
        for node in top + inner:
            edges[module].update(imported(module, node))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_every_module_is_in_a_layer_and_no_import_points_up() -> None:
    upward = []
    for module, targets in graph().items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_function_level_imports_say_why() -> None:
    """An import inside a function (an optional dependency, start-up time, Lava on first use)
    carries its reason as a comment: on its line, or on the line above its block of imports."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node in import_nodes(path)[1]:
            if not has_reason(lines, node.lineno - 1):
                silent.append(f"{module}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not silent, "\n".join(silent)


def has_reason(lines: list[str], i: int) -> bool:
    """Line ``i`` (an import) has a comment, or so has the first line above its block of
    imports (blank lines and other imports skipped)."""
    if "#" in lines[i]:
        return True
    i -= 1
    while i >= 0 and (not lines[i].strip() or lines[i].strip().startswith(("from ", "import "))):
        if "#" in lines[i]:
            return True
        i -= 1
    return i >= 0 and "#" in lines[i]


def test_the_checks_catch_what_they_forbid() -> None:
    """The walker sees a cycle and an upward import when there is one."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("randhet.spec") < layer_of("randhet.deploy.pipeline")
    assert layer_of("randhet.attack.settings") < layer_of("randhet.attack.protocol")
    assert has_reason(["    # Lava: on first use", "    import a", "", "    import b"], 3)
    assert not has_reason(["    x = 1", "    import a"], 1)
    assert imported("randhet.deploy.pipeline",
                    ast.parse("from randhet.attack import protocol").body[0]) == [
        "randhet.attack.protocol"]


def test_the_package_never_imports_gpl_sanafe() -> None:
    """SANA-FE is GPL-3.0: tests and benchmarks may use it, the package never imports it."""
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "sanafe" for n in names), module
