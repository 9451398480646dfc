"""A PgBouncer in transaction pooling mode in front of the test PostgreSQL, for the tests.

Each pytest process starts its own ``pgbouncer`` (Debian's package; ``scripts/test`` installs
it) on a free loopback port, with its ini file, user list and log in a temporary folder, and
stops it at the end; nothing the machine already runs is started again. Set
``SQLJOBS_TEST_PGBOUNCER_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:6432/test``)
to use a PgBouncer that runs already instead. Every database name is forwarded to the same
name on the server (``* =``), so each test's private database is reachable through it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from tests import databases
from tests.helpers import free_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
EXTERNAL = os.environ.get("SQLJOBS_TEST_PGBOUNCER_URL")

INI = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = 40
max_client_conn = 400
max_prepared_statements = 0
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
admin_users = {user}
{run_as}
"""


class PgBouncer:
    """One ``pgbouncer`` process; :meth:`url` rewrites a server URL to go through it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sqljobs-pgbouncer-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = make_url(databases.PG_URL)
        user = server.username or "postgres"
        run_as = ""
        if os.geteuid() == 0:  # pgbouncer refuses to run as root: it switches to this user
            account = pwd.getpwnam("postgres")
            run_as = "user = postgres"
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.folder.chmod(0o755)
        (self.folder / "userlist.txt").write_text(f'"{user}" ""\n')
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(
            INI.format(
                host=server.host or "127.0.0.1",
                port=server.port or 5432,
                listen=self.port,
                folder=self.folder,
                user=user,
                run_as=run_as,
            )
        )
        # The ini refers to settings of newer versions: drop those this one does not know.
        version = subprocess.run([BINARY, "--version"], capture_output=True, text=True).stdout
        if _version(version) < (1, 21):
            ini.write_text(ini.read_text().replace("max_prepared_statements = 0\n", ""))
        self.proc = subprocess.Popen(
            [BINARY, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while not _accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start:\n{self.log()}")
            time.sleep(0.05)  # waiting for a process to listen: no event to wait on

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def url(self, server_url: str | URL) -> str:
        """``server_url`` (a database on the test PostgreSQL) through this PgBouncer."""
        return (
            make_url(server_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        shutil.rmtree(self.folder, ignore_errors=True)


def external_url(server_url: str | URL) -> str:
    """``server_url``'s database through the PgBouncer of ``SQLJOBS_TEST_PGBOUNCER_URL``."""
    assert EXTERNAL is not None
    bouncer = make_url(EXTERNAL)
    return (
        make_url(server_url)
        .set(host=bouncer.host, port=bouncer.port)
        .render_as_string(hide_password=False)
    )


def _version(text: str) -> tuple[int, ...]:
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]):
            return tuple(int(p) for p in parts[:2])
    return (0,)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
