"""The house plan, checked on the source: every import goes to the same layer or one below (docs/
architecture.md), and no module imports itself back through others. Imports inside functions count."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sentiq

PACKAGE = Path(sentiq.__file__).parent


def house_plan() -> list[tuple[str, tuple[str, ...]]]:
    """The layers of pyproject.toml's import-linter contract (which `lint-imports` checks in CI), lowest
    first, each with the modules it holds."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    layers = []
    for layer in reversed(contract["layers"]):
        names = [n.strip() for n in layer.replace("|", ":").split(":")]
        layers.append((names[0], tuple(f"sentiq.{n}" for n in names)))
    return layers


LAYERS = [*house_plan()[:-1], ("cli", ("sentiq.cli", "sentiq.__main__"))]  # __main__ runs the CLI


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer(module: str) -> int:
    if module == "sentiq":  # the package's __init__: the API's names
        return layer("sentiq.api")
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of the house plan: add it to LAYERS and docs/architecture.md")


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The sentiq modules a file imports, anywhere in it (`from sentiq.io import runs` is sentiq.io.runs)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sentiq"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sentiq":
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(known)
            found |= subs or {node.module}
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_every_import_goes_down_or_across() -> None:
    upward = [
        f"{source} ({LAYERS[layer(source)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for source, targets in graph().items()
        for target in targets
        if layer(target) > layer(source)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circles() -> None:
    edges = graph()
    state: dict[str, str] = {}
    circles: list[str] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, "\n".join(circles)


def test_nothing_imports_the_command_line() -> None:
    users = [
        s
        for s, targets in graph().items()
        if layer(s) < layer("sentiq.cli") and any(t.startswith("sentiq.cli") for t in targets)
    ]
    assert not users


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an io module importing the engine is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sentiq.core.engine import Engine\n")
    (target,) = imports(bad, modules())
    assert target == "sentiq.core.engine" and layer(target) > layer("sentiq.io.sinks")


def test_no_module_is_over_300_lines() -> None:
    """A module that grows past this holds more than one job: split it along its jobs."""
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 300}
    assert not long, long


def test_the_public_api_takes_no_core_type_and_imports_its_results_plainly() -> None:
    """A caller passes names, settings or a Classifier; the result types come from the light leaves."""
    import inspect

    import sentiq.api as api

    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isfunction(obj):
            annotations = " ".join(str(p.annotation) for p in inspect.signature(obj).parameters.values())
            assert "Engine" not in annotations, name
            assert "on_rows" not in inspect.signature(obj).parameters, name  # results come back as a stream
    source = (PACKAGE / "api" / "__init__.py").read_text()
    assert "__getattr__" not in source and "importlib" not in source
    assert api.RunResult.__module__ == "sentiq.results" and api.TuneResult.__module__ == "sentiq.searches"


def test_the_command_line_never_asks_where_the_work_runs() -> None:
    """Where the work runs is decided once, in the library: no command branches on the backend."""
    asking = [p.name for p in (PACKAGE / "cli").glob("*.py") if re.search(r"\.backend\s*[!=]=", p.read_text())]
    assert not asking
