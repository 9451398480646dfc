"""The package as users install it: a wheel and an sdist that build, pass ``twine check``,
carry the dashboard's templates and ``py.typed``, and whose core installs with SQLAlchemy
alone and runs a job on SQLite (the README's install-from-a-wheel path)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMOKE = """
import sqlalchemy, sqljobs
from sqlalchemy.orm import sessionmaker
jobs = sqljobs.JobQueue(sessionmaker(sqlalchemy.create_engine("sqlite:///smoke.db")))
jobs.create_schema()

@jobs.task(name="smoke.double")
def double(n: int) -> int:
    return 2 * n

job_id = double.enqueue(n=21)
jobs.drain()
print(jobs.get(job_id).state.value, jobs.get(job_id).result)
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=540,
    )
    return out


def test_the_wheel_and_sdist_pass_twine_check(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    assert [f for f in files if f.endswith(".whl")] == ["sqljobs-0.1.0-py3-none-any.whl"]
    assert [f for f in files if f.endswith(".tar.gz")] == ["sqljobs-0.1.0.tar.gz"]
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_wheel_carries_templates_static_files_and_py_typed(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sqljobs/py.typed" in names
    assert any(n.startswith("sqljobs/web/templates/") and n.endswith(".html") for n in names)
    assert any(n.startswith("sqljobs/web/static/") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        assert "sqljobs-0.1.0/src/sqljobs/__init__.py" in archive.getnames()


def test_the_core_installs_from_the_wheel_with_sqlalchemy_alone_and_runs_a_job(
    dist: Path, tmp_path: Path
) -> None:
    [wheel] = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert installed - {"pip", "setuptools", "wheel"} <= {
        "sqljobs",
        "sqlalchemy",
        "greenlet",
        "typing-extensions",
        "typing_extensions",
    }
    ran = subprocess.run(
        [str(python), "-c", SMOKE], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["completed", "42"]
