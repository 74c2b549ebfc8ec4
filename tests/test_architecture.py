"""The house's rules, read from the source (docs/design.md, "Layers").

Layers, bottom to top; a module imports only from its own layer's package or from layers below:

0. foundation  ``loyalty_core``: settings, the event contract, the landing-zone layout, warehouse
   access, the erasure register. Imports nothing of the project.
1. parts       ``streaming`` (ingestion), ``expectations`` (the quality gate), and the parts of
   ``loyalty_monitor``: warehouse, drift model, alerting, reporting, web app, generator. Peers do not
   import each other across these packages: the pipeline connects them.
2. orchestration  ``loyalty_monitor.pipeline`` (the DAG's steps), the local stack (broker, stack, demo).
3. faces       ``loyalty_monitor.cli`` and the DAG files in ``dags/``.

Also: no import cycle between modules; no library module runs the CLI; imports sit at module top
unless a comment on the line (or the line above) says why (an optional or heavy dependency that
the module must not load at import, e.g. for DAG parsing).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from loyalty_core.settings import PROJECT_ROOT

PACKAGES = ("loyalty_core", "streaming", "expectations", "loyalty_monitor", "dags")
ORCHESTRATION = ("loyalty_monitor.pipeline", "loyalty_monitor.broker", "loyalty_monitor.stack",
                 "loyalty_monitor.demo", "loyalty_monitor.demo_steps", "loyalty_monitor.demo_summary")
FACES = ("loyalty_monitor.cli", "dags")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer(name: str) -> tuple[int, str]:
    """(rank, package a peer may import from) of a module."""
    if _within(name, FACES):
        return 3, name
    if _within(name, ORCHESTRATION):
        return 2, "loyalty_monitor"
    top = name.split(".")[0]
    if top == "loyalty_core":
        return 0, top
    return 1, top


def _imports(name: str, path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported project module, node, at module top) for every import of a project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    # imports under `if TYPE_CHECKING:` do not run: they are no dependency
    typing_only = {id(n) for node in tree.body if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                # `from pkg import submodule` depends on the submodule, not on the package's __init__
                targets.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        for target in targets:
            while target and target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                out.append((target, node, id(node) in top_level))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_import_points_down_or_within_its_own_package():
    wrong = []
    for name, imports in GRAPH.items():
        rank, home = layer(name)
        for target, node, _ in imports:
            target_rank, target_home = layer(target)
            if target_rank > rank or (target_rank == rank and rank < 3 and target_home != home):
                wrong.append(f"{name}:{node.lineno} imports {target}")
    assert not wrong, "imports against the layers (docs/design.md):\n" + "\n".join(sorted(set(wrong)))


def test_the_foundation_imports_nothing_above_it():
    above = [f"{name} imports {target}" for name, imports in GRAPH.items() if name.startswith("loyalty_core")
             for target, _, _ in imports if not target.startswith("loyalty_core")]
    assert not above, above


def test_no_import_cycle_between_modules():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(module: str) -> None:
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for target in {t for t, _, _ in GRAPH[module]}:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_top_level_packages_form_no_cycle():
    edges = {(name.split(".")[0], target.split(".")[0]) for name, imports in GRAPH.items()
             for target, _, _ in imports if name.split(".")[0] != target.split(".")[0]}
    order = {p: i for i, p in enumerate(PACKAGES)}
    upward = sorted(f"{a} -> {b}" for a, b in edges if order[b] > order[a])
    assert not upward, upward


_RUNS_CLI = re.compile(r"""with_name\(\s*["']loyalty["']\s*\)|\[\s*["']loyalty["']\s*,|/\s*["']loyalty["']|["']loyalty_monitor\.cli["']""")


def test_no_library_module_runs_the_cli():
    offenders = []
    for name, path in MODULES.items():
        if _within(name, FACES):
            continue
        offenders += [f"{name} imports {t}" for t, _, _ in GRAPH[name] if _within(t, ("loyalty_monitor.cli",))]
        if _RUNS_CLI.search(path.read_text(encoding="utf-8")):
            offenders.append(f"{name} starts the `loyalty` command")
    assert not offenders, offenders


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or above the block of imports it belongs to."""
    if "#" in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def test_imports_sit_at_module_top_unless_a_comment_says_why():
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        top_level = {id(node) for node in tree.body}
        typing_only = {id(n) for node in tree.body if isinstance(node, (ast.If, ast.Try))
                       for n in ast.walk(node)}  # `if TYPE_CHECKING:` and optional imports at module level
        for node in ast.walk(tree):
            if (isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top_level
                    and id(node) not in typing_only and not _has_reason(lines, node.lineno)):
                unexplained.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, ("imports inside functions without a comment saying why:\n" + "\n".join(unexplained))


def test_the_rules_see_the_whole_house():
    """The checks above are only as good as the graph: it must hold the layers' modules and edges."""
    assert {"loyalty_core.settings", "streaming.consumer", "expectations.gate", "loyalty_monitor.pipeline",
            "loyalty_monitor.cli", "dags.loyalty_pipeline"} <= set(MODULES)
    assert any(t == "loyalty_core.settings" for t, _, _ in GRAPH["streaming.consumer"])
    assert layer("loyalty_monitor.cli.streaming")[0] == 3 and layer("loyalty_core.contract")[0] == 0


def test_one_way_into_the_warehouse_file():
    """Every DuckDB connection to a file goes through ``loyalty_core.marts.connect_duckdb`` (one set of
    errors and session settings); in-memory sessions (``duckdb.connect()``) are anyone's."""
    to_a_file = re.compile(r"duckdb\.connect\(\s*[^)\s]")
    others = [f"{path.relative_to(PROJECT_ROOT)}:{n}" for name, path in MODULES.items() if name != "loyalty_core.marts"
              for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if to_a_file.search(line)]
    assert not others, others


def test_every_module_imports():
    """A module moved or split leaves no import pointing at its old place (the graph above only
    reads the source)."""
    failed = []
    for name in MODULES:
        if name.startswith("dags") or name.endswith("__main__"):
            continue  # the DAG file is imported by Airflow (tests/dags); __main__ runs the CLI
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - collect them all
            failed.append(f"{name}: {exc!r}")
    assert not failed, failed
