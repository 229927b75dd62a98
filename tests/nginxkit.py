"""Debian's nginx in front of real nodes, for the failover tests (issue 14).

:func:`start_nginx` runs the shipped ``deploy/pypi_repo.conf`` unchanged except for two
things: the node list (``pypi_repo-nodes.conf``) names the test's nodes, with the shipped
``max_fails``/``fail_timeout``, and ``listen 80;`` becomes a free 127.0.0.1 port. The main
file is the test's own: pid, error log, access log (with ``$upstream_addr`` and
``$upstream_status``) and temp dirs in a private prefix. Started by argv with a bounded
deadline, stopped by PID. Also: :func:`kill_tree`, SIGKILL to a process and all its
descendants (a node's Gunicorn master, its workers, its warm-up child).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NginxError", "Nginx", "holds_file_under", "kill_tree", "nginx_binary", "process_tree", "start_nginx"]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
START_DEADLINE_S = 10.0

MAIN_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format failover '$request_method $uri $status up=$upstream_addr ups=$upstream_status';
    access_log {prefix}/access.log failover;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    include pypi_repo.conf;
}}
"""


class NginxError(RuntimeError):
    """nginx is missing, refused the configuration or did not come up in time."""


def nginx_binary() -> Path:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        raise NginxError("no nginx: tests/run.sh installs Debian's nginx-light")
    return Path(found)


@dataclass
class Nginx:
    proc: subprocess.Popen
    prefix: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        try:
            return (self.prefix / "access.log").read_text(errors="replace").splitlines()
        except OSError:
            return []

    def error_log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGQUIT (graceful), SIGKILL after the deadline; always by the master's PID."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.prefix, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_site(node_ports: list[int], port: int) -> tuple[str, str]:
    """The shipped site and node list, pointed at loopback (the rest is exactly as shipped)."""
    site = (DEPLOY / "pypi_repo.conf").read_text()
    site, count = re.subn(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{port};", site, flags=re.M)
    if count != 1:
        raise NginxError("deploy/pypi_repo.conf: expected exactly one 'listen 80;' line")
    shipped = (DEPLOY / "pypi_repo-nodes.conf").read_text()
    params = re.search(r"^server \S+ (.*);$", shipped, flags=re.M)
    if params is None:
        raise NginxError("deploy/pypi_repo-nodes.conf: no server line")
    nodes = "".join(f"server 127.0.0.1:{p} {params.group(1)};\n" for p in node_ports)
    return site, nodes


def start_nginx(node_ports: list[int]) -> Nginx:
    """nginx on a free loopback port in front of ``node_ports``; waits until it answers."""
    binary = nginx_binary()
    prefix = Path(tempfile.mkdtemp(prefix="pypi-repo-nginx-"))
    prefix.chmod(0o755)  # nginx's workers run as an unprivileged user and use the temp dirs
    port = _free_port()
    site, nodes = render_site(node_ports, port)
    (prefix / "pypi_repo.conf").write_text(site)
    (prefix / "pypi_repo-nodes.conf").write_text(nodes)
    (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix))
    argv = [str(binary), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log"),
            "-g", "daemon off; master_process on;"]
    check = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        shutil.rmtree(prefix, ignore_errors=True)
        raise NginxError(f"nginx -t refused the configuration:\n{check.stderr}")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    server = Nginx(proc, prefix, port)
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            log = server.error_log()
            server.stop()
            raise NginxError(f"nginx exited with {proc.returncode}:\n{log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if time.monotonic() > deadline:
                log = server.error_log()
                server.stop()
                raise NginxError(f"nginx not listening after {START_DEADLINE_S:.0f} s:\n{log[-2000:]}") from None
            time.sleep(0.05)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every descendant at once (collected first: nobody gets to react)."""
    tree = process_tree(pid)
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return tree


def holds_file_under(pid: int, directory: Path) -> bool:
    """Whether ``pid`` or a descendant has a file under ``directory`` open (also an unlinked
    one: a node spools an upload it is receiving into an anonymous temp file there)."""
    prefix = str(directory) + os.sep
    for member in process_tree(pid):
        try:
            fds = list(Path(f"/proc/{member}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd).startswith(prefix):
                    return True
            except OSError:
                continue
    return False
