"""Where a Debian PostgreSQL cluster keeps its files, binaries and service (postgresql-common's
layout: /etc/postgresql/MAJOR/NAME, /var/lib/postgresql/MAJOR/NAME, postgresql@MAJOR-NAME)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

PG_HOME = "/var/lib/postgresql"
#: A major's binaries live in PG_LIB/MAJOR/bin (see bindir).
PG_LIB = "/usr/lib/postgresql"
#: postgresql-common's settings for clusters it creates (pg_createcluster, the package's main).
CREATECLUSTER_D = "/etc/postgresql-common/createcluster.d"


class _HasCluster(Protocol):
    @property
    def pg_major(self) -> int: ...
    @property
    def pg_cluster(self) -> str: ...


@dataclass(frozen=True)
class Cluster:
    major: int
    name: str = "main"

    @classmethod
    def of(cls, s: _HasCluster) -> Cluster:
        """A host's cluster, from its settings (pg_major, pg_cluster)."""
        return cls(s.pg_major, s.pg_cluster)

    @property
    def etc(self) -> str:
        return f"/etc/postgresql/{self.major}/{self.name}"

    @property
    def conf_d(self) -> str:
        return f"{self.etc}/conf.d"

    @property
    def hba(self) -> str:
        return f"{self.etc}/pg_hba.conf"

    @property
    def data(self) -> str:
        return f"{PG_HOME}/{self.major}/{self.name}"

    @property
    def service(self) -> str:
        return f"postgresql@{self.major}-{self.name}"

    @property
    def log(self) -> str:
        return f"/var/log/postgresql/postgresql-{self.major}-{self.name}.log"

    @property
    def bindir(self) -> str:
        return bindir(self.major)

    def config_check_command(self) -> str:
        """A shell command (as root) that fails, printing PostgreSQL's complaints, unless the
        cluster's configuration loads: every file and include, names and values (`postgres
        -C` reads it as a start would, without starting; a running server is fine)."""
        return (f"runuser -u postgres -- {self.bindir}/postgres -D {self.data} "
                f"-c config_file={self.etc}/postgresql.conf -C data_directory")

    def bin(self, tool: str) -> str:
        return f"{self.bindir}/{tool}"


def server_packages(major: int) -> tuple[str, ...]:
    """Debian's packages of one major's server and its pgvector (deployed, and moved by a
    minor upgrade)."""
    return (f"postgresql-{major}", f"postgresql-{major}-pgvector")


def bindir(major: int) -> str:
    """A major's binaries (pg_dump, pg_controldata, pg_amcheck, ...), shared by its clusters."""
    return f"{PG_LIB}/{major}/bin"
