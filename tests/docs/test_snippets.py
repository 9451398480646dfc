"""The FastAPI docs as written: every ```python block of the README's FastAPI section and of
docs/fastapi.md is a whole file or a marked fragment of one; the files run (the docs' own
TestClient tests pass, the other apps start, fragments apply); and in a fresh virtualenv with
only the documented installs, the README's first example and FastAPI app run and docs/
fastapi.md's tests pass (slow: builds the wheel and installs from the package index)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs import snippets
from tests.docs.snippets import FASTAPI_DOC, README, ROOT
from tests.helpers import eventually, free_port

DRIVER = Path(__file__).with_name("docs_driver.py")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    return {**env, **extra}


def all_doc_files() -> dict[str, str]:
    readme, doc = README.read_text(), FASTAPI_DOC.read_text()
    found = snippets.files(readme)
    overlap = found.keys() & snippets.files(doc).keys()
    assert not overlap, f"docs/fastapi.md redefines the README's {overlap}"
    return {**found, **snippets.files(doc)}


def test_every_fastapi_snippet_is_a_whole_file_or_a_marked_fragment_of_one() -> None:
    texts = {
        "README.md ## FastAPI": snippets.section(README, "FastAPI"),
        "docs/fastapi.md": FASTAPI_DOC.read_text(),
    }
    for where, text in texts.items():
        assert snippets.unmarked(text) == [], where
    known = all_doc_files()
    for fragment in snippets.fragments(FASTAPI_DOC.read_text()):
        assert fragment.of in known, fragment
    for excerpt in snippets.excerpts(FASTAPI_DOC.read_text()):
        assert excerpt.code in (ROOT / excerpt.of).read_text(), f"{excerpt.of} says otherwise"
    assert "myapp/main.py" in snippets.files(texts["README.md ## FastAPI"])


@pytest.mark.slow
def test_the_fastapi_doc_snippets_run_as_written(tmp_path: Path) -> None:
    snippets.write_files(tmp_path, all_doc_files())
    [pytest_command] = [
        c
        for c in snippets.bash_lines(FASTAPI_DOC.read_text())
        if "pytest" in c and "install" not in c
    ]
    assert pytest_command == "python -m pytest tests"
    ran = subprocess.run(
        [sys.executable, *pytest_command.split()[1:], "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "4 passed" in ran.stdout

    files = all_doc_files()
    modules = []
    for n, fragment in enumerate(snippets.fragments(FASTAPI_DOC.read_text())):
        changed = snippets.apply_fragment(files[fragment.of], fragment.code)
        path = tmp_path / fragment.of.replace(".py", f"_fragment{n}.py")
        path.write_text(changed)
        modules.append(str(path.relative_to(tmp_path).with_suffix("")).replace("/", "."))
    assert len(modules) == 2
    # The first fragment quotes myapp/main.py as it is; the second changes its app line.
    assert (tmp_path / "myapp/main_fragment0.py").read_text() == files["myapp/main.py"]
    assert (tmp_path / "myapp/main_fragment1.py").read_text() != files["myapp/main.py"]
    driven = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(modules)],
        cwd=tmp_path,
        env=clean_env(DATABASE_URL="sqlite:///driver.db", PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert driven.returncode == 0, driven.stdout + driven.stderr
    seen = json.loads(driven.stdout.strip().splitlines()[-1])
    assert seen == {
        "configured_started": 200,
        "check_state": "completed",
        "check_status": "checked",
        "fragment_0_state": "completed",
        "fragment_0_status": "done",
        "fragment_1_drained": True,
        "fragment_1_state": "completed",
        "fragment_1_status": "done",
        "job_states": ["completed"],
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("*.whl")
    return built


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_readme_and_fastapi_docs_run_in_a_fresh_venv_with_only_the_documented_installs(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    snippets.write_files(app_dir, all_doc_files())
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")

    def run(command: str, **options: Any) -> subprocess.CompletedProcess[str]:
        if command.startswith("pip install"):
            args = ["pip", "install", "--quiet", *snippets.pip_install_args(command, wheel)]
        else:
            args = shlex.split(command)
        done: subprocess.CompletedProcess[str] = subprocess.run(
            args, cwd=app_dir, env=env, capture_output=True, text=True, timeout=300, **options
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done

    def statuses() -> dict[int, str]:
        with sqlite3.connect(app_dir / "app.db") as db:
            return dict(db.execute("SELECT id, status FROM records").fetchall())

    # The README's first example: its install, its enqueue script, its worker command.
    install, enqueue, worker = snippets.bash_lines(snippets.section(README, "A first example"))
    assert install == 'pip install "sqljobs[cli]"'
    run(install)
    run(enqueue)
    proc = subprocess.Popen(
        shlex.split(worker), cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        eventually(lambda: statuses()[42] == "done", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out

    # The README's FastAPI section: its install, then the production serve command (on a free
    # loopback port), driven over HTTP; each of the four processes runs its own worker.
    install, _develop, serve = snippets.bash_lines(snippets.section(README, "FastAPI"))
    assert install == 'pip install "sqljobs[fastapi]"'
    assert serve == "uvicorn myapp.main:app --host 0.0.0.0 --workers 4"
    run(install)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "uvicorn.log"
    with server_log.open("w") as log:
        server = subprocess.Popen(
            [*shlex.split(serve.replace("0.0.0.0", "127.0.0.1")), "--port", str(port)],
            cwd=app_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(lambda: server_log.read_text().count("started in-process") == 4, timeout=90)
        answer = httpx.post(f"{url}/records/43/refresh", timeout=10)
        assert answer.status_code == 202, answer.text
        assert isinstance(answer.json()["job_id"], int)
        eventually(lambda: httpx.get(f"{url}/records/43", timeout=10).json()["status"] == "done")
        assert httpx.post(f"{url}/records/99/refresh", timeout=10).status_code == 404
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=90)
    assert server.returncode == 0, server_log.read_text()
    assert server_log.read_text().count("stopped: ") == 4, server_log.read_text()

    # docs/fastapi.md's installs, then its tests with TestClient, as written.
    doc_commands = snippets.bash_lines(FASTAPI_DOC.read_text())
    installs = [c for c in doc_commands if c.startswith("pip install")]
    assert installs[:2] == ['pip install "sqljobs[fastapi]"', "pip install pytest"]
    for command in installs[:2]:
        run(command)
    [pytest_command] = [c for c in doc_commands if "pytest" in c and "install" not in c]
    assert "4 passed" in run(pytest_command).stdout
