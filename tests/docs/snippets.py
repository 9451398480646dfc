"""Code blocks of the docs, by the convention docs/fastapi.md states: a ```python block whose
first line is ``# path.py`` is that whole file; one whose first line is ``# fragment of
path.py: ...`` changes part of that file (it runs in the module's namespace)."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FASTAPI_DOC = ROOT / "docs" / "fastapi.md"

_FILE = re.compile(r"# (\S+\.py)$")
_FRAGMENT = re.compile(r"# fragment of (\S+\.py): \S.*$")
#: A block quoting a file of this repository (e.g. an example app), verbatim.
_EXCERPT = re.compile(r"# excerpt of (\S+\.py)$")


@dataclass(frozen=True)
class Fragment:
    of: str
    code: str


def section(path: Path, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    text = path.read_text()
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def bash_lines(text: str) -> list[str]:
    """Each command of each ```bash block, without its trailing comment."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def files(text: str) -> dict[str, str]:
    found = {}
    for block in python_blocks(text):
        first = block.split("\n", 1)[0]
        if match := _FILE.match(first):
            found[match.group(1)] = block
    return found


def excerpts(text: str) -> list[Fragment]:
    """Blocks quoting a repository file: ``of`` its path, ``code`` the quoted lines."""
    return [
        Fragment(match.group(1), block.split("\n", 1)[1])
        for block in python_blocks(text)
        if (match := _EXCERPT.match(block.split("\n", 1)[0]))
    ]


def fragments(text: str) -> list[Fragment]:
    return [
        Fragment(match.group(1), block)
        for block in python_blocks(text)
        if (match := _FRAGMENT.match(block.split("\n", 1)[0]))
    ]


def unmarked(text: str) -> list[str]:
    """Python blocks that are neither a whole file nor a marked fragment."""
    return [
        block
        for block in python_blocks(text)
        if not any(marker.match(block.split("\n", 1)[0]) for marker in (_FILE, _FRAGMENT, _EXCERPT))
    ]


def pip_install_args(command: str, wheel: Path) -> list[str]:
    """``pip install "sqljobs[x]" other`` -> pip's arguments, sqljobs replaced by the wheel."""
    words = shlex.split(command)
    assert words[:2] == ["pip", "install"], command
    return [
        f"{wheel}{word[len('sqljobs') :]}" if re.fullmatch(r"sqljobs(\[[\w,-]+\])?", word) else word
        for word in words[2:]
    ]


def write_files(directory: Path, found: dict[str, str]) -> None:
    for path, text in found.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text)


def apply_fragment(file_text: str, fragment: str) -> str:
    """The file with the fragment applied: each top-level statement of the fragment replaces
    the file's statement that binds the same name (an unchanged excerpt leaves it as is)."""
    file_lines = file_text.splitlines(keepends=True)
    spans = {}
    for node in ast.parse(file_text).body:
        for name in _bound_names(node):
            spans[name] = _span(node)
    replacements = []
    fragment_lines = fragment.splitlines(keepends=True)
    for node in ast.parse(fragment).body:
        names = _bound_names(node)
        assert names, f"fragment statement binds no name: {ast.unparse(node)}"
        found = {spans[name] for name in names if name in spans}
        assert len(found) == 1, f"{names} are not (all in one statement) in the file"
        [span] = found
        start, end = _span(node)
        replacements.append((span, "".join(fragment_lines[start:end])))
    for (start, end), text in sorted(replacements, reverse=True):
        file_lines[start:end] = [text]
    return "".join(file_lines)


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {t.id for t in targets if isinstance(t, ast.Name)}
    return set()


def _span(node: ast.stmt) -> tuple[int, int]:
    """0-based [start, end) lines of a statement, decorators included."""
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno, *(d.lineno for d in decorators)]) - 1
    assert node.end_lineno is not None
    return start, node.end_lineno


def run_module(tmp_path: Path, docs: list[Path], module: str) -> str:
    """Write the README's and ``docs``' files into ``tmp_path``, run ``python -m module``
    there on a SQLite file, and return what it printed (it must exit 0)."""
    found: dict[str, str] = snippets_of(README)
    for doc in docs:
        found.update(snippets_of(doc))
    write_files(tmp_path, found)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env={**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout  # (stderr: the warnings logging prints without a configuration)


def snippets_of(doc: Path) -> dict[str, str]:
    """The whole files (``# path.py`` blocks) of ``doc``."""
    return files(doc.read_text())
