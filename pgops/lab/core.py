"""A lab: one Docker network, its firewall rules and N systemd hosts, with state on disk.

State lives in `.lab/<name>/` (gitignored): the SSH key, known_hosts, generated secrets and
state.json, which inventory/lab.py reads. Nothing here touches a host over SSH before the
lab network is known to exist (a packet to a vanished lab address would leave the machine).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pgops import PROJECT_ROOT
from pgops.errors import LabError
from pgops.lab import engine, firewall, image
from pgops.settings import read_secrets_file

LAB_ROOT = Path(os.environ.get("PGOPS_LAB_DIR", PROJECT_ROOT / ".lab"))
HOST_MEMORY = os.environ.get("PGOPS_LAB_MEMORY", "2g")
HOST_CPUS = float(os.environ.get("PGOPS_LAB_CPUS", "1"))
HOST_SHM = os.environ.get("PGOPS_LAB_SHM", "1g")
# Well-known labs get fixed subnets; any other name hashes into the rest of the range.
SUBNET_INDEX = {"lab": 57, "test": 58, "bench": 59}
#: How long one check that a lab's network exists serves this process (Lab.require_network).
NETWORK_CHECK_S = 10.0
_NETWORK_SEEN: dict[str, float] = {}


@dataclass
class LabHost:
    name: str
    address: str
    container: str
    ssh_user: str
    ssh_key: str
    known_hosts: str
    role: str = "db"


def _say(msg: str) -> None:
    print(f"lab: {msg}", flush=True)


class Lab:
    def __init__(self, name: str | None = None):
        self.name = name or os.environ.get("PGOPS_LAB", "lab")
        if not self.name.isidentifier() or len(self.name) > 9:
            raise LabError(f"lab name {self.name!r}: use a short identifier (at most 9 characters)")
        self.dir = LAB_ROOT / self.name
        self.network = f"pgops-{self.name}"
        idx = SUBNET_INDEX.get(self.name, 60 + zlib.crc32(self.name.encode()) % 190)
        self.subnet = ipaddress.ip_network(f"172.29.{idx}.0/24")
        self.ssh_key = self.dir / "ssh" / "id_ed25519"
        self.known_hosts = self.dir / "ssh" / "known_hosts"
        self.secrets_file = self.dir / "secrets.env"
        self.state_file = self.dir / "state.json"

    # -- state ---------------------------------------------------------------------------
    def hosts(self) -> list[LabHost]:
        """Hosts recorded by the last `lab up`, after checking that the lab network exists."""
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(f"the lab {self.name!r} is not up: run `pgops lab up`") from None
        self.require_network()
        return [LabHost(**h) for h in state["hosts"]]

    def cluster(self) -> str | None:
        """The Patroni cluster the last `lab up --cluster` made of the database hosts."""
        try:
            return json.loads(self.state_file.read_text()).get("cluster")
        except FileNotFoundError:
            return None

    def network_exists(self) -> bool:
        r = subprocess.run(
            ["docker", "network", "inspect", self.network], capture_output=True, text=True
        )
        return r.returncode == 0

    def require_network(self) -> None:
        """Refuse unless the lab network exists (no engine: none does). One check serves the
        process for NETWORK_CHECK_S: loading the lab inventory asks four times, and a
        deploy loads it twice (pgops validates it, pyinfra reads it)."""
        seen = _NETWORK_SEEN.get(self.network)
        if seen is not None and time.monotonic() - seen < NETWORK_CHECK_S:
            return
        if not self.network_exists():
            raise LabError(
                f"the lab network {self.network} does not exist (is the lab up? `pgops lab up`); "
                "refusing to contact lab addresses"
            )
        _NETWORK_SEEN[self.network] = time.monotonic()

    def address(self, i: int) -> str:
        return str(self.subnet.network_address + 10 + i)

    # -- up ------------------------------------------------------------------------------
    def up(self, db_hosts: int = 2, extra: tuple[str, ...] = (), say: Callable = _say,
           cluster: str | None = None) -> list[LabHost]:
        """Boot the lab (idempotent): engine, image, network, firewall, hosts, keys, secrets.
        + cluster: the database hosts form this Patroni cluster (and are its etcd members)."""
        started = engine.ensure_running()
        if started:
            say("started the Docker engine (pgops will stop it at `lab down`)")
        client = engine.client()
        tag = image.ensure_host_image(client, say)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ensure_ssh_key()
        self._ensure_network(client)
        mirror = image.debian_mirror()
        mirror_ip = socket.gethostbyname(image.mirror_host(mirror))
        firewall.apply(self.name, str(self.subnet), mirror_ip)
        names = [f"db{i + 1}" for i in range(db_hosts)] + list(extra)
        # Keep hosts beyond the wanted set out: a smaller --hosts removes the rest.
        for c in client.containers.list(all=True, filters={"label": f"pgops.lab={self.name}"}):
            if c.labels.get("pgops.host") not in names:
                say(f"removing {c.name}")
                c.remove(force=True)
        hosts = []
        for i, hname in enumerate(names):
            hosts.append(self._ensure_host(client, tag, hname, self.address(i + 1),
                                           image.mirror_host(mirror), mirror_ip, say))
        self._write_known_hosts(client, hosts)
        for h in hosts:
            self._wait_ssh(h)
        self.state_file.write_text(json.dumps({"hosts": [asdict(h) for h in hosts],
                                               "cluster": cluster}, indent=2))
        return hosts

    def _ensure_ssh_key(self) -> None:
        self.ssh_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.ssh_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pgops-{self.name}",
                 "-f", str(self.ssh_key)],
                check=True,
            )

    def _ensure_network(self, client) -> None:
        from docker.errors import NotFound
        from docker.types import IPAMConfig, IPAMPool

        try:
            client.networks.get(self.network)
            return
        except NotFound:
            pass
        gateway = str(self.subnet.network_address + 1)
        client.networks.create(
            self.network,
            driver="bridge",
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(self.subnet), gateway=gateway)]),
            options={"com.docker.network.bridge.name": self.network},
            labels={"pgops.lab": self.name},
        )

    def _ensure_host(self, client, tag, hname, address, mirror_name, mirror_ip, say) -> LabHost:
        cname = f"pgops-{self.name}-{hname}"
        host = LabHost(hname, address, cname, "root", str(self.ssh_key), str(self.known_hosts),
                       role="db" if hname.startswith("db") else hname.rstrip("0123456789"))
        from docker.errors import NotFound

        try:
            c = client.containers.get(cname)
            key_mount = next((m["Source"] for m in c.attrs.get("Mounts", [])
                              if m.get("Destination") == "/etc/ssh/authorized_keys.d/root"), None)
            if c.image.tags and tag not in c.image.tags:
                say(f"{hname}: image changed, recreating")
                c.remove(force=True)
            elif key_mount != f"{self.ssh_key}.pub":
                # Another checkout's lab of the same name: its hosts trust another key.
                say(f"{hname}: belongs to another checkout ({key_mount}), recreating")
                c.remove(force=True)
            else:
                if c.status != "running":
                    c.start()
                return host
        except NotFound:
            pass
        say(f"starting {hname} ({address})")
        apt_cache = image.CACHE_DIR / "apt" / hname
        apt_cache.mkdir(parents=True, exist_ok=True)
        api = client.api
        host_config = api.create_host_config(
            cap_add=["SYS_ADMIN", "NET_ADMIN"],
            security_opt=["seccomp=unconfined"],
            cgroupns="host",
            binds={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                str(apt_cache): {"bind": "/var/cache/apt/archives", "mode": "rw"},
                f"{self.ssh_key}.pub": {"bind": "/etc/ssh/authorized_keys.d/root", "mode": "ro"},
            },
            tmpfs={"/run": "", "/run/lock": ""},
            mem_limit=HOST_MEMORY,
            nano_cpus=int(HOST_CPUS * 1e9),
            shm_size=HOST_SHM,
            extra_hosts={mirror_name: mirror_ip},
        )
        networking = api.create_networking_config(
            {self.network: api.create_endpoint_config(ipv4_address=address, aliases=[hname])}
        )
        created = api.create_container(
            tag, name=cname, hostname=hname, host_config=host_config,
            networking_config=networking, detach=True,
            labels={"pgops.lab": self.name, "pgops.host": hname},
        )
        api.start(created["Id"])
        return host

    def _write_known_hosts(self, client, hosts: list[LabHost]) -> None:
        """Trust each host's own key, read over Docker (a channel we already trust)."""
        lines = []
        for h in hosts:
            c = client.containers.get(h.container)
            deadline = time.monotonic() + 60
            while True:
                r = c.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
                if r.exit_code == 0:
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"{h.name}: no SSH host key after 60 s (is systemd booting?)")
                time.sleep(0.3)
            keytype, key = r.output.decode().split()[:2]
            lines.append(f"{h.address},{h.name} {keytype} {key}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _wait_ssh(self, h: LabHost, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = self.ssh(h, "systemctl is-system-running --wait >/dev/null 2>&1; true", check=False)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"{h.name}: SSH not answering after {timeout:.0f} s: {r.stderr}")
            time.sleep(0.5)

    # -- use -----------------------------------------------------------------------------
    def ssh_args(self, h: LabHost) -> list[str]:
        return [
            "ssh", "-i", h.ssh_key, "-o", f"UserKnownHostsFile={h.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"{h.ssh_user}@{h.address}",
        ]

    def ssh(self, h: LabHost | str, command: str, input: str | None = None,
            check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a shell command on a lab host over SSH (after checking the lab network)."""
        if isinstance(h, str):
            h = self.host(h)
        self.require_network()
        r = subprocess.run([*self.ssh_args(h), command], input=input, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{h.name}: `{command}` failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def host(self, name: str) -> LabHost:
        for h in self.hosts():
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in lab {self.name!r}")

    def ensure_secrets(self, names: list[str]) -> Path:
        """Random passwords for the lab's roles, generated once into a gitignored file."""
        existing = read_secrets_file(self.secrets_file) if self.secrets_file.exists() else {}
        for n in names:
            existing.setdefault(n, secrets.token_urlsafe(24))
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# lab {self.name}: generated, never committed\n")
            f.writelines(f"{k}={v}\n" for k, v in sorted(existing.items()))
        return self.secrets_file

    # -- status / down -------------------------------------------------------------------
    def status(self) -> dict:
        up = engine.running()
        hosts = []
        if up:
            client = engine.client()
            for c in client.containers.list(all=True, filters={"label": f"pgops.lab={self.name}"}):
                nets = c.attrs["NetworkSettings"]["Networks"]
                hosts.append({
                    "name": c.labels.get("pgops.host"),
                    "container": c.name,
                    "state": c.status,
                    "address": nets.get(self.network, {}).get("IPAddress"),
                    "ssh_user": "root",
                    "ssh_key": str(self.ssh_key),
                })
        return {
            "lab": self.name,
            "engine": "running" if up else "stopped",
            "engine_started_by_pgops": engine.started_by_pgops(),
            "network": self.network if up and self.network_exists() else None,
            "subnet": str(self.subnet),
            "firewall_rules": len(firewall.present(self.name)) if up else 0,
            "hosts": sorted(hosts, key=lambda h: h["name"] or ""),
        }

    def down(self, say: Callable = _say, stop_engine: bool = True) -> None:
        """Remove hosts, network, firewall rules and state; stop the engine only if ours and idle."""
        _NETWORK_SEEN.pop(self.network, None)
        if engine.running():
            from docker.errors import NotFound

            client = engine.client()
            for c in client.containers.list(all=True, filters={"label": f"pgops.lab={self.name}"}):
                say(f"removing {c.name}")
                c.remove(force=True)
            try:
                client.networks.get(self.network).remove()
                say(f"removed network {self.network}")
            except NotFound:
                pass
            n = firewall.remove(self.name)
            if n:
                say(f"removed {n} firewall rules")
            others = client.containers.list(all=True)
            if stop_engine and not others and engine.started_by_pgops():
                engine.stop_if_ours()
                say("stopped the Docker engine pgops had started")
        self.state_file.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
