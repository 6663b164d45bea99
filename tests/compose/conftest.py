"""docker-compose.dev.yml under test, with the real Docker engine and docker-compose. Each run
has its own compose project, port, backups directory and image tag, so a developer's stack,
./backups and the lab are never touched. The image builds FROM the lab's debootstrapped base
(no registry is reachable here) once, and is kept as the cache for the next run."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from pgops import PROJECT_ROOT
from pgops.lab import engine, image

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.dev.yml"
PREFIX = "pgops-devtest-"
IMAGE = "pgops-dev-postgres:test"
# What the compose file reads: the test's env file must be its only source.
_OURS = ("POSTGRES_PASSWORD", "PGOPS_BASE_IMAGE", "PGOPS_DEV_", "COMPOSE_")


def compose(project: str, env_file: Path, *args: str, check: bool = True,
            timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env["DOCKER_BUILDKIT"] = "0"  # the classic builder: BuildKit needs a registry here
    r = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file),
                        "-p", project, *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def project_resources(client, project: str) -> dict[str, list[str]]:
    label = {"label": f"com.docker.compose.project={project}"}
    return {"containers": [c.name for c in client.containers.list(all=True, filters=label)],
            "volumes": [v.name for v in client.volumes.list(filters=label)],
            "networks": [n.name for n in client.networks.list(filters=label)]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    project: str
    env_file: Path
    port: int
    backups: Path
    passwords: dict[str, str] = field(repr=False)  # never in a failure report
    client: object = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return compose(self.project, self.env_file, *args, check=check)

    def timed(self, name: str, *args: str) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        r = self.compose(*args)
        self.timings[name] = round(time.monotonic() - t0, 1)
        return r

    def url(self, user: str, db: str = "app") -> str:
        """What an application's .env holds: localhost, the published port, TLS required."""
        password = self.passwords[{"postgres": "POSTGRES_PASSWORD", "migrator": "PGOPS_DEV_MIGRATOR_PASSWORD",
                                   "app": "PGOPS_DEV_APP_PASSWORD"}[user]]
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}?sslmode=require"

    def connect(self, user: str = "postgres", db: str = "app", **kw) -> psycopg.Connection:
        return psycopg.connect(self.url(user, db), connect_timeout=10, **kw)

    def container(self, service: str):
        [c] = self.client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.project}", f"com.docker.compose.service={service}"]})
        return c

    def resources(self) -> dict[str, list[str]]:
        return project_resources(self.client, self.project)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _remove_stale(client, env_file: Path) -> None:
    """Projects of earlier test runs that died before their own teardown."""
    names = set()
    for c in client.containers.list(all=True, filters={"label": "com.docker.compose.project"}):
        names.add(c.labels["com.docker.compose.project"])
    for v in client.volumes.list(filters={"label": "com.docker.compose.project"}):
        names.add((v.attrs.get("Labels") or {}).get("com.docker.compose.project", ""))
    for name in names:
        pid = name.removeprefix(PREFIX)
        if name.startswith(PREFIX) and pid.isdigit() and not _alive(int(pid)):
            compose(name, env_file, "down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="session")
def docker_engine():
    """The engine (started if none runs; stopped at the end only if started here and idle:
    the lab's hosts may run beside these tests)."""
    started = engine.ensure_running()
    client = engine.client()
    yield client
    # The lab's own teardown may have stopped the engine already (it too stops only its own).
    if started and engine.running() and not client.containers.list(all=True):
        engine.stop_if_ours()


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    return image.ensure_base(docker_engine, say=lambda m: None)


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.fixture(scope="module")
def stack(docker_engine, base_image, tmp_path_factory):
    """The dev stack, built and brought up as a developer does (`build`, then `up -d`)."""
    tmp = tmp_path_factory.mktemp("compose")
    passwords = {k: secrets.token_urlsafe(18) for k in
                 ("POSTGRES_PASSWORD", "PGOPS_DEV_MIGRATOR_PASSWORD", "PGOPS_DEV_APP_PASSWORD")}
    port = free_port()
    backups = tmp / "backups"
    backups.mkdir()
    env_file = write_env(tmp / "dev.env", **passwords, PGOPS_DEV_PORT=str(port), PGOPS_DEV_SEED="2",
                         PGOPS_DEV_BACKUPS=str(backups), PGOPS_DEV_DUMP_EVERY="3s",
                         PGOPS_DEV_DUMP_KEEP="2", PGOPS_DEV_IMAGE=IMAGE, PGOPS_BASE_IMAGE=base_image)
    _remove_stale(docker_engine, env_file)
    s = Stack(f"{PREFIX}{os.getpid()}", env_file, port, backups, passwords, docker_engine)
    try:
        s.timed("build", "build", "db")
        s.timed("up", "up", "-d")
        yield s
    finally:
        t0 = time.monotonic()
        s.compose("down", "-v", "--remove-orphans", check=False)
        s.timings["down -v"] = round(time.monotonic() - t0, 1)
        # Old builds of the test image (untagged since) are of no use.
        subprocess.run(["docker", "image", "prune", "-f", "--filter", "label=org.pgops.image=dev-postgres"],
                       capture_output=True)
        TIMINGS.update(s.timings)


TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line(f"docker-compose.dev.yml seconds: {TIMINGS}")
