"""Load a pyinfra inventory the way pyinfra does, and validate every host's settings at once."""

from __future__ import annotations

import os
from pathlib import Path

from pyinfra.api import Inventory
from pyinfra.api.host import Host

from pgops import PROJECT_ROOT
from pgops.errors import ConfigError, PgopsError
from pgops.ha.topology import Topology, membership_problems, proxy_problems, topology
from pgops.ha.topology import problems as topology_problems
from pgops.settings import LOCAL_REPOSITORY, Settings, load_settings

DEFAULT_INVENTORY = PROJECT_ROOT / "inventory" / "lab.py"
DB_GROUP = "db_servers"
BACKUP_GROUP = "backup_servers"
#: The etcd members Patroni clusters keep their state in (often the database hosts).
ETCD_GROUP = "etcd_servers"
#: Hosts that carry a cluster's endpoint (HAProxy) for applications, apart from its members.
PROXY_GROUP = "proxy_servers"
#: How `pgops deploy` tells deploy.py (in pyinfra's process) which inventory file it runs.
INVENTORY_NAME_ENV = "PGOPS_INVENTORY_NAME"


def default_inventory() -> Path:
    return Path(os.environ.get("PGOPS_INVENTORY", DEFAULT_INVENTORY))


def load_inventory(path: str | Path) -> Inventory:
    """pyinfra's own inventory loading (file + group_data/ beside it), without connecting."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    path = Path(path)
    if not path.is_file():
        raise PgopsError(f"inventory {path} does not exist")
    if not ctx_state.isset():
        ctx_state.set(State())
    try:
        return make_inventory(str(path), cwd=str(PROJECT_ROOT))
    except PgopsError:
        raise
    except Exception as e:  # the inventory file is user code: name the file, line and error
        inner = getattr(e, "exception", e)
        line = ""
        tb = inner.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == str(path):
                line = f" line {tb.tb_lineno}"
            tb = tb.tb_next
        raise PgopsError(f"inventory {path}{line}: {inner.__class__.__name__}: {inner}") from None


def _sources(host: Host, inventory_file: str) -> dict[str, str]:
    """Which file each data key comes from, in pyinfra's precedence order: --data, the host's
    own data and group data in the inventory file, group_data/<group>.py beside it."""
    from pyinfra_cli.inventory import _get_group_data

    inv = host.inventory
    group_dir = Path(inventory_file).parent / "group_data"
    from_files = _get_group_data(str(group_dir)) if group_dir.is_dir() else {}
    out: dict[str, str] = {}
    for key in inv.get_override_data():
        out.setdefault(key, "--data")
    for key in inv.get_host_data(host.name):
        out.setdefault(key, inventory_file)
    for group in [*reversed(host.groups), "all"]:
        for key in inv.get_group_data(group) if group != "all" else inv.get_data():
            if key in from_files.get(group, {}):
                out.setdefault(key, str(group_dir / f"{group}.py"))
            else:
                out.setdefault(key, inventory_file)
    return out


def host_settings(host: Host, inventory_file: str) -> Settings:
    return load_settings(host.name, host.data.dict(), sources=_sources(host, inventory_file))


def _db_host_settings(inventory: Inventory, inventory_file: str) -> tuple[dict[str, Settings], list[str]]:
    """(settings of the database hosts that load, problems of the rest): no host hides another's."""
    problems: list[str] = []
    out: dict[str, Settings] = {}
    for host in inventory:
        if DB_GROUP not in host.groups:
            continue
        try:
            out[host.name] = host_settings(host, inventory_file)
        except ConfigError as e:
            problems += e.problems
    return out, problems


def unknown_backup_host_problems(settings: dict[str, Settings], backup_hosts: set[str],
                                 inventory_file: str) -> list[str]:
    """pg_backup_host must name a host of the backup group (or local): backups go nowhere else."""
    return [
        f"{inventory_file}: host {name}: pg_backup_host: {s.pg_backup_host!r} is not a host "
        f"of group {BACKUP_GROUP} (have: {', '.join(sorted(backup_hosts)) or 'none'}) nor "
        f"{LOCAL_REPOSITORY!r}"
        for name, s in settings.items()
        if s.pg_backup_host not in (None, LOCAL_REPOSITORY, *backup_hosts)
    ]


def shared_ca_problems(settings: dict[str, Settings], inventory_file: str) -> list[str]:
    """One CA per repository host: it trusts, and gets its certificate from, a single tls_dir."""
    cas: dict[str, dict[str, list[str]]] = {}
    for name, s in settings.items():
        if s.pg_backup_transport == "tls":
            cas.setdefault(str(s.pg_backup_host), {}).setdefault(str(s.tls_dir), []).append(name)
    problems = []
    for repo, dirs in sorted(cas.items()):
        if len(dirs) > 1:
            which = "; ".join(f"{', '.join(sorted(n))}: {d}" for d, n in sorted(dirs.items()))
            problems.append(f"{inventory_file}: pg_backup_tls_dir: the TLS database hosts of {repo} "
                            f"must share one CA directory (have {which})")
    return problems


def _proxies(inventory: Inventory) -> dict[str, str | None]:
    """The proxy group's hosts and the cluster each names (pg_ha_cluster, None: unnamed)."""
    return {h.name: h.data.get("pg_ha_cluster") for h in inventory if PROXY_GROUP in h.groups}


def inventory_topology(inventory: Inventory, settings: dict[str, Settings]) -> Topology:
    """The inventory's Patroni clusters, etcd members and proxy hosts."""
    return topology(settings, [h.name for h in inventory if ETCD_GROUP in h.groups], _proxies(inventory))


def _declared_clusters(inventory: Inventory) -> dict[str, dict[str, str]]:
    """host -> {group: the pg_ha_cluster that group's data gives it}."""
    out: dict[str, dict[str, str]] = {}
    for h in inventory:
        for g in h.groups:
            cluster = inventory.get_group_data(g).get("pg_ha_cluster")
            if cluster:
                out.setdefault(h.name, {})[g] = cluster
    return out


def cluster_problems(inventory: Inventory, settings: dict[str, Settings],
                     inventory_file: str) -> list[str]:
    topo = inventory_topology(inventory, settings)
    db_hosts = [h.name for h in inventory if DB_GROUP in h.groups]
    found = [*membership_problems(_declared_clusters(inventory)),
             *topology_problems(topo, settings, ETCD_GROUP),
             *proxy_problems(topo, _proxies(inventory), db_hosts, PROXY_GROUP)]
    return [f"{inventory_file}: {p}" for p in found]


def validate_inventory(inventory: Inventory, inventory_file: str) -> dict[str, Settings]:
    """Settings for every database host, or one ConfigError with every problem of every host."""
    out, problems = _db_host_settings(inventory, inventory_file)
    backup_hosts = {h.name for h in inventory if BACKUP_GROUP in h.groups}
    problems += unknown_backup_host_problems(out, backup_hosts, inventory_file)
    problems += shared_ca_problems(out, inventory_file)
    problems += cluster_problems(inventory, out, inventory_file)
    if not out and not problems:
        problems.append(
            f"{inventory_file}: no hosts in group {DB_GROUP} (a group is a list of host names "
            "or (name, data) tuples; pyinfra ignores anything else)"
        )
    if problems:
        raise ConfigError(problems)
    return out


def all_settings() -> dict[str, Settings]:
    """Every database host's settings (validated once per run), for deploys that span hosts."""
    from pyinfra.context import state

    inventory = state.inventory
    cached = getattr(inventory, "_pgops_settings", None)
    if cached is None:
        cached = validate_inventory(inventory, _inventory_name())
        inventory._pgops_settings = cached  # type: ignore[attr-defined]
    return cached


def all_topology() -> Topology:
    """The inventory's clusters and etcd members (after all_settings has validated them)."""
    from pyinfra.context import state

    return inventory_topology(state.inventory, all_settings())


def _inventory_name() -> str:
    """The inventory file as the user named it, for messages and to find its group_data/:
    `pgops deploy` passes it to pyinfra's process in PGOPS_INVENTORY_NAME. pyinfra does not
    tell deploy.py which file it loaded, so a plain `pyinfra INVENTORY deploy.py` run should
    set it too; unset, the default inventory is named (PGOPS_INVENTORY, else inventory/lab.py)."""
    return os.environ.get(INVENTORY_NAME_ENV) or str(default_inventory())
