"""The Docker engine the lab runs on: started by pgops only when none runs, stopped only if ours."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgops.errors import LabError

if TYPE_CHECKING:  # the Docker SDK costs 0.1 s to import: only commands that drive the engine
    import docker.client

ENGINE_DIR = Path(os.environ.get("PGOPS_ENGINE_DIR", "/var/lib/pgops/dockerd"))
DAEMON_CONFIG = {"storage-driver": "overlay2", "ip6tables": False, "iptables": True}


def client(timeout: int = 300) -> docker.client.DockerClient:
    """A Docker SDK client for the local engine; raises LabError when no engine answers."""
    import docker.client
    from docker.errors import DockerException

    try:
        c = docker.client.from_env(timeout=timeout)
        c.ping()
        return c
    except DockerException as e:
        raise LabError(
            f"no Docker engine answers ({e.__class__.__name__}); run `pgops lab up` to start one"
        ) from e


def running() -> bool:
    import docker.client
    from docker.errors import DockerException

    try:
        docker.client.from_env(timeout=5).ping()
        return True
    except DockerException:
        return False


def _pidfile() -> Path:
    return ENGINE_DIR / "started-by-pgops.json"


def ensure_running() -> bool:
    """Start dockerd if no engine answers. Returns True when pgops started it now."""
    if running():
        return False
    if shutil.which("dockerd") is None:
        raise LabError(
            "no Docker engine runs and dockerd is not installed: "
            "apt-get install -y docker.io docker-compose iptables debootstrap (`make up` does this)"
        )
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    # Snapshot the firewall first: dockerd leaves chains and a DROP policy behind on exit.
    iptables_before = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    cfg = ENGINE_DIR / "daemon.json"
    cfg.write_text(json.dumps(DAEMON_CONFIG, indent=2))
    log = open(ENGINE_DIR / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen(
        ["dockerd", "--config-file", str(cfg), "--pidfile", str(ENGINE_DIR / "dockerd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _pidfile().write_text(
        json.dumps(
            {"pid": proc.pid, "iptables_before": iptables_before, "ip_forward": forward_before}
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"dockerd exited with {proc.returncode}; see {ENGINE_DIR}/dockerd.log")
        if running():
            return True
        time.sleep(0.2)
    raise LabError(f"dockerd did not answer within 60 s; see {ENGINE_DIR}/dockerd.log")


def started_by_pgops() -> bool:
    info = _read_pidfile()
    if not info:
        return False
    return _alive(info["pid"])


def _read_pidfile() -> dict[str, Any] | None:
    try:
        return json.loads(_pidfile().read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        return "dockerd" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


_EMPTY = {
    "filter": ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
    "nat": ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
           ":POSTROUTING ACCEPT [0:0]\n",
}


def _restorable(snapshot: str) -> str:
    """The pre-dockerd snapshot as iptables-restore input. A table that was never loaded is
    missing from iptables-save's output; restore it as empty with ACCEPT policies, so the
    chains and the DROP policy dockerd added are flushed too."""
    out = snapshot
    for table, chains in _EMPTY.items():
        if f"*{table}" not in snapshot:
            out += f"*{table}\n{chains}COMMIT\n"
    return out


def stop_if_ours() -> bool:
    """Stop dockerd if pgops started it, and put the firewall back as it was. True if stopped."""
    info = _read_pidfile()
    if not info:
        return False
    pid = info["pid"]
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["iptables-restore"], input=_restorable(info["iptables_before"]), text=True,
                   check=False)
    Path("/proc/sys/net/ipv4/ip_forward").write_text(info["ip_forward"] + "\n")
    _pidfile().unlink(missing_ok=True)
    return True
