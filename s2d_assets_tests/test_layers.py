"""The house's layers: science imports without Dagster, Dagster only under defs/ and the CLI, tasks,
config and core import no layer above them, no import cycles, and a command builds only the experiment
it was given."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "s2d_assets"
DAGSTER_LAYER = ("defs",)

BLOCK_DAGSTER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "dagster" or name.startswith(("dagster.", "dagster_")):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import s2d_assets.config, s2d_assets.core, s2d_assets.engines, s2d_assets.methods, s2d_assets.tasks
import s2d_assets.distill, s2d_assets.coconut, s2d_assets.sql, s2d_assets.report
import s2d_assets.distill.curate, s2d_assets.distill.evaluate, s2d_assets.distill.train, s2d_assets.coconut.stages
import s2d_assets.report.results_doc, s2d_assets.report.export, s2d_assets.report.plots, s2d_assets.report.results_table
assert not any(m == "dagster" or m.startswith("dagster.") for m in sys.modules)
print("ok")
"""


def _modules() -> dict[str, ast.Module]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): ast.parse(
            path.read_text()
        )
        for path in PACKAGE.rglob("*.py")
    }


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.timeout(120)
def test_the_science_imports_with_dagster_blocked() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_DAGSTER], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_dagster_is_imported_only_by_defs_and_the_cli() -> None:
    leaks = []
    for module, tree in _modules().items():
        parts = [*module.split("."), ""]
        if parts[1] == "cli" or parts[1] in DAGSTER_LAYER:
            continue
        if any(name == "dagster" or name.startswith(("dagster.", "dagster_")) for name in _imports(tree)):
            leaks.append(module)
        if any(name.startswith("dagster._") for name in _imports(tree)):
            leaks.append(f"{module} (private dagster API)")
    assert leaks == []


def test_no_private_dagster_api_anywhere() -> None:
    private = [m for m, tree in _modules().items() if any(n.startswith("dagster._") for n in _imports(tree))]
    assert private == []


# A layer never imports the layers above it (docs/architecture.md, "The house"): tasks sit below methods
# and engines; config and core below everything else in the package. Every import counts, including one
# inside a function; the registries name the implementations above by import path instead.
ABOVE_TASKS = ("methods", "engines", "distill", "coconut", "sql", "report", "defs", "cli")
FORBIDDEN = {"tasks": ABOVE_TASKS, "config": ("tasks", *ABOVE_TASKS), "core": ("config", "tasks", *ABOVE_TASKS)}


def _absolute_imports(module: str, tree: ast.Module, is_package: bool) -> set[str]:
    """Every module ``tree`` imports, anywhere in it, relative imports made absolute."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([target] if target else []))
            names |= {target} | {f"{target}.{alias.name}" for alias in node.names}
    return names


def test_no_layer_imports_a_layer_above_it() -> None:
    violations = []
    for layer, above in FORBIDDEN.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            module = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
            for name in sorted(_absolute_imports(module, ast.parse(path.read_text()), path.name == "__init__.py")):
                if any(name == f"s2d_assets.{up}" or name.startswith(f"s2d_assets.{up}.") for up in above):
                    violations.append(f"{module} imports {name}")
    assert violations == []


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {
        module: {name for name in _imports(tree) if name in modules and name != module}
        for module, tree in modules.items()
    }
    # a package's __init__ handing names on is not a cycle with its own modules
    graph = {m: {d for d in deps if not (m.startswith(d + ".") or d.startswith(m + "."))} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*trail[trail.index(dep) :], dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.timeout(120)
def test_run_with_an_experiment_builds_only_that_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s2d_assets import cli
    from s2d_assets.config.experiment import DEFAULT_EXPERIMENT
    from s2d_assets.defs import definitions

    other = tmp_path / "other.yaml"
    other.write_text(DEFAULT_EXPERIMENT.read_text().replace("name: default", "name: other", 1))
    built: list[str] = []
    loaded: list[Path] = []
    real_load = definitions.load_experiment

    def record_load(path):  # type: ignore[no-untyped-def]
        loaded.append(Path(path))
        return real_load(path)

    def record_build(experiment, *args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(experiment.name)
        raise SystemExit(0)  # stop before anything runs

    monkeypatch.setenv("S2D_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("S2D_EXPERIMENT", str(DEFAULT_EXPERIMENT))  # must not win over -e
    monkeypatch.setattr(definitions, "load_experiment", record_load)
    monkeypatch.setattr(definitions, "build_definitions", record_build)
    with pytest.raises(SystemExit):
        cli.main(["run", "-e", str(other)])
    assert built == ["other"]
    assert loaded == [other.resolve()]
