"""The package's import rules (docs/architecture.md), read from the source with ``ast``.

Layers, lowest first: vocabulary -> store -> worker -> facade -> interfaces. A module imports
at run time only from its own layer or below; imports under ``if TYPE_CHECKING:`` are free.
Each framework is imported only by the edge module that integrates it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "sqljobs"

VOCABULARY = 0
STORE = 1
WORKER = 2
FACADE = 3
INTERFACE = 4
LAYER_NAMES = {
    VOCABULARY: "vocabulary",
    STORE: "store",
    WORKER: "worker",
    FACADE: "facade",
    INTERFACE: "interfaces",
}

#: Top-level modules by layer; sqljobs.store.* and sqljobs.worker.* are layers of their own.
TOP_LEVEL = {
    "sqljobs._utils": VOCABULARY,
    "sqljobs._urls": VOCABULARY,
    "sqljobs._arguments": VOCABULARY,
    "sqljobs._conversions": VOCABULARY,
    "sqljobs._secrets": VOCABULARY,
    "sqljobs._secret_arguments": VOCABULARY,
    "sqljobs._keyring": VOCABULARY,
    "sqljobs.exceptions": VOCABULARY,
    "sqljobs.jobs": VOCABULARY,
    "sqljobs.schema": VOCABULARY,
    "sqljobs.retry": VOCABULARY,
    "sqljobs.unique": VOCABULARY,
    "sqljobs.flow": VOCABULARY,
    "sqljobs.context": VOCABULARY,
    "sqljobs.events": VOCABULARY,
    "sqljobs.registry": VOCABULARY,
    "sqljobs._configured_task": VOCABULARY,
    "sqljobs._task_typing": VOCABULARY,
    "sqljobs.periodic": VOCABULARY,
    "sqljobs.graphs": VOCABULARY,
    "sqljobs.steps": VOCABULARY,
    "sqljobs.job_logs": VOCABULARY,
    "sqljobs.instrumentation": VOCABULARY,
    "sqljobs.jobqueue": FACADE,
    "sqljobs._administration": FACADE,
    "sqljobs._bulk_admin": FACADE,
    "sqljobs._commit_hooks": FACADE,
    "sqljobs._binding": FACADE,
    "sqljobs._graph_queue": FACADE,
    "sqljobs": INTERFACE,
    "sqljobs.__main__": INTERFACE,
    "sqljobs.fastapi": INTERFACE,
    "sqljobs.metrics": INTERFACE,
    "sqljobs.testing": INTERFACE,
    "sqljobs.pytest_plugin": INTERFACE,
    "sqljobs.aio": INTERFACE,
    "sqljobs._overview": INTERFACE,
    "sqljobs._logging": INTERFACE,
    "sqljobs.otel": INTERFACE,
}
PACKAGES = {
    "sqljobs.store": STORE,
    "sqljobs.worker": WORKER,
    "sqljobs.cli": INTERFACE,
    "sqljobs.web": INTERFACE,
}

#: Third-party frameworks and the only modules (or packages) allowed to import them.
FRAMEWORKS = {
    "fastapi": ("sqljobs.fastapi", "sqljobs.web"),
    "starlette": ("sqljobs.fastapi", "sqljobs.web"),
    "jinja2": ("sqljobs.web",),
    "pydantic": ("sqljobs.web", "sqljobs._conversions"),  # _conversions: only when installed
    "prometheus_client": ("sqljobs.metrics",),
    "opentelemetry": ("sqljobs.otel",),  # only when installed (extra sqljobs[otel])
    "typer": ("sqljobs.cli",),
    "rich": ("sqljobs.cli",),
    "croniter": ("sqljobs.periodic",),
    "cryptography": ("sqljobs._keyring",),  # only when a JobQueue is given secret_keys
    "pytest": ("sqljobs.pytest_plugin",),
    "_pytest": ("sqljobs.pytest_plugin",),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or a name's module)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for package, layer in PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return layer
    if module not in TOP_LEVEL:
        raise AssertionError(
            f"{module} belongs to no layer: add it to tests/unit/test_layers.py and to the "
            "table in docs/architecture.md"
        )
    return TOP_LEVEL[module]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> list[Import]:
    """Imports that run when the module (or one of its functions) runs."""
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


def imports_in(source_text: str, module: str, *, is_package: bool = False) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                is_module = (PACKAGE.parent / submodule.replace(".", "/")).with_suffix(
                    ".py"
                ).exists() or (PACKAGE.parent / submodule.replace(".", "/")).is_dir()
                found.append(Import(module, submodule if is_module else source, node.lineno))
        for nested in ast.iter_child_nodes(node):
            visit(nested)

    visit(ast.parse(source_text, module))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    upward = [
        f"line {imp.line}: {imp.target} ({LAYER_NAMES[layer_of(imp.target)]})"
        for imp in runtime_imports(path)
        if imp.target.split(".")[0] == "sqljobs" and layer_of(imp.target) > own
    ]
    assert not upward, (
        f"{module} ({LAYER_NAMES[own]}) imports from higher layers at run time: {upward}; "
        "pass what it needs in, or import under TYPE_CHECKING for annotations only"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_frameworks_are_imported_only_at_their_edge(path: Path) -> None:
    module = module_name(path)
    wrong = []
    for imp in runtime_imports(path):
        allowed = FRAMEWORKS.get(imp.target.split(".")[0])
        if allowed is not None and not any(
            module == edge or module.startswith(edge + ".") for edge in allowed
        ):
            wrong.append(f"line {imp.line}: {imp.target} (only {', '.join(allowed)})")
    assert not wrong, f"{module} imports a framework outside its edge module: {wrong}"


def test_the_rules_catch_an_upward_import() -> None:
    """The checker itself: a store module importing the worker is reported."""
    imports = imports_in(
        "from __future__ import annotations\nfrom ..worker import Worker\n",
        "sqljobs.store._probe",
    )
    assert [imp.target for imp in imports] == ["__future__", "sqljobs.worker"]
    assert layer_of("sqljobs.worker") > layer_of("sqljobs.store._probe")


def test_type_checking_imports_are_not_runtime_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqljobs.jobqueue\n"
        "else:\n    import json\ndef f():\n    from .. import events\n"
    )
    targets = [imp.target for imp in imports_in(source, "sqljobs.worker._probe")]
    assert targets == ["typing", "json", "sqljobs.events"]
