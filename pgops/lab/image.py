"""The lab host image: a debootstrapped Debian 13 base imported once per machine, then the
lab-host Dockerfile on top (the same Dockerfile also builds FROM a pulled debian:trixie)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pgops import PROJECT_ROOT
from pgops.errors import LabError

if TYPE_CHECKING:
    import docker.client

SUITE = "trixie"
BASE_PACKAGES = (
    "openssh-server,python3,sudo,ca-certificates,locales,iproute2,procps,systemd-sysv,dbus"
)
DOCKERFILE_DIR = PROJECT_ROOT / "docker" / "lab-host"
CACHE_DIR = Path(os.environ.get("PGOPS_CACHE_DIR", "/var/cache/pgops"))


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror this machine's apt uses (lab hosts reach that one and no other)."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", line)
            if m and re.search(r"/debian/?$", m.group(1)):
                return m.group(1).rstrip("/")
    raise LabError("no Debian mirror found in /etc/apt/sources.list{,.d/*}")


def mirror_host(mirror: str) -> str:
    return urlparse(mirror).hostname or ""


def _recipe_hash() -> str:
    h = hashlib.sha256(f"{SUITE}|{BASE_PACKAGES}".encode())
    return h.hexdigest()[:12]


def _dockerfile_hash(base: str) -> str:
    h = hashlib.sha256(base.encode())
    for f in sorted(DOCKERFILE_DIR.rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def _has(client: docker.client.DockerClient, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def ensure_base(client: docker.client.DockerClient, say: Callable[[str], None]) -> str:
    """Build (once per machine and recipe) the Debian 13 base image with debootstrap."""
    tag = f"pgops-base:{SUITE}-{_recipe_hash()}"
    if _has(client, tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed: apt-get install -y debootstrap")
    mirror = debian_mirror()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"debootstrap {SUITE} from {mirror} (about a minute, once per machine)")
        r = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", SUITE,
             str(rootfs), mirror],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise LabError(f"debootstrap failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}")
        # Every host must generate its own SSH host keys at first boot.
        for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
            key.unlink()
        subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True)
        lists = rootfs / "var" / "lib" / "apt" / "lists"
        for f in lists.glob("*"):
            if f.is_file():
                f.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        say(f"importing {tag}")
        repo, _, version = tag.partition(":")
        client.api.import_image(src=str(tarball), repository=repo, tag=version)
    return tag


def ensure_host_image(client: docker.client.DockerClient, say: Callable[[str], None]) -> str:
    """The lab-host image (systemd as PID 1, sshd with per-host keys) on the local base."""
    base = ensure_base(client, say)
    tag = f"pgops-lab-host:{_dockerfile_hash(base)}"
    if _has(client, tag):
        return tag
    say(f"building {tag} from docker/lab-host/Dockerfile")
    from docker.errors import BuildError

    try:
        client.images.build(
            path=str(DOCKERFILE_DIR), tag=tag, buildargs={"BASE": base}, rm=True, pull=False
        )
    except BuildError as e:
        log = "".join(str(x.get("stream", "")) for x in e.build_log)
        raise LabError(f"building the lab host image failed: {e.msg}\n{log[-3000:]}") from e
    return tag
