"""The bad-input corpus: inventory, settings, SQL migrations, CLI arguments, restore targets
and cluster commands, each refused with a message naming the file, host or field, and no
host changed (a fingerprint of every host: packages, /etc/postgresql and /etc/pgbackrest,
pg_authid, pg_hba_file_rules, the schema history, the backups, when Postgres started).

Adding a case is one line of CASES: an id, the command (a function of `Ctx`, which writes the
files it needs), the exit code and the words the message must contain."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgops import PROJECT_ROOT
from pgops.lab import Lab
from tests.lab.conftest import fingerprint, pgops, variant_inventory


@dataclass
class Ctx:
    """What a case's command may need: the lab, a directory for its files, and the inventory
    whose application database is `corpus` (the shipped migrations and 8, which has no
    down part, applied: see the `corpus` fixture)."""

    lab: Lab
    tmp: Path
    corpus: str

    def inv(self, **group_data) -> str:
        """The lab inventory with this group data for the database hosts."""
        return str(variant_inventory(self.tmp, "variant", **group_data))

    def inv_with(self, extra: str, **group_data) -> str:
        """The lab inventory plus lines of Python (more groups, say)."""
        path = variant_inventory(self.tmp, "variant", **group_data)
        path.write_text(path.read_text() + textwrap.dedent(extra))
        return str(path)

    def raw(self, text: str, name: str = "raw.py") -> str:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    def migrate(self, *args: str, **files: str | None) -> list[str]:
        """`pgops migrate` on `corpus` with the corpus's migrations and `files` (name -> SQL;
        None removes one), then `args`."""
        d = migrations_dir(self.tmp / "migrations", **files)
        return ["migrate", "-i", self.corpus, "--host", "db1", "--dir", str(d), *args]

    def address(self, host: str) -> str:
        return self.lab.host(host).address


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Ctx], list[str]]
    rc: int
    says: tuple[str, ...]


#: The corpus database's applied history: the shipped migrations and this one, leaving a gap.
CORPUS_EXTRA = {"0008_nodown": "create table nodown (id int);\n"}


def migrations_dir(d: Path, **files: str | None) -> Path:
    """The shipped migrations and CORPUS_EXTRA in `d`, then `files` (name -> SQL, None: removed)."""
    d.mkdir(exist_ok=True)
    for src in sorted((PROJECT_ROOT / "sql" / "migrations").glob("*.sql")):
        (d / src.name).write_text(src.read_text())
    for name, sql in {**CORPUS_EXTRA, **files}.items():
        if sql is None:
            (d / f"{name}.sql").unlink(missing_ok=True)
        else:
            (d / f"{name}.sql").write_text(sql)
    return d


def shipped(name: str, edit: Callable[[str], str]) -> str:
    return edit((PROJECT_ROOT / "sql" / "migrations" / f"{name}.sql").read_text())


def case(id: str, args: Callable[[Ctx], list[str]], rc: int, *says: str) -> Case:
    return Case(id, args, rc, says)


def deploy(**group_data) -> Callable[[Ctx], list[str]]:
    return lambda c: ["deploy", "-i", c.inv(**group_data)]


HOST = "host db1:"  # a settings problem names the host (and the inventory file, checked below)
ROLES = [{"name": "migrator"}, {"name": "app_rw", "login": False},
         {"name": "app", "member_of": ["app_rw"]}]
NO_TX_TWO = "-- pgops:no-transaction\ncreate index concurrently a on clients (id);\nselect 1;\n"

CASES = [
    # -- the inventory --------------------------------------------------------------------
    case("inventory-missing", lambda c: ["deploy", "-i", str(c.tmp / "nope.py")], 2,
         "nope.py does not exist"),
    case("inventory-syntax-error", lambda c: ["deploy", "-i", c.raw("db_servers = [\n")], 2,
         "raw.py", "line"),
    case("inventory-no-db-hosts", lambda c: ["deploy", "-i", c.raw("backup_servers = ['b1']\n")], 2,
         "no hosts in group db_servers"),
    case("inventory-unknown-backup-host", deploy(pg_backup_host="backup9"), 2,
         "pg_backup_host: 'backup9' is not a host of group backup_servers (have: backup1)"),
    case("inventory-cluster-without-its-secrets", deploy(pg_ha_cluster="main"), 2, HOST,
         "pg_ha_cluster: secret PGOPS_PATRONI_API_PASSWORD (the Patroni REST API's password) is not set"),
    case("inventory-even-etcd", lambda c: ["deploy", "-i", c.inv_with(
        "etcd_servers = [h for h in _db()[0]]\n", pg_ha_cluster="main")], 2,
         "etcd_servers: 2 members (db1, db2); etcd needs an odd number"),
    case("inventory-proxy-without-cluster", lambda c: ["deploy", "-i", c.inv_with(
        "proxy_servers = [('proxy9', {'ssh_hostname': '192.0.2.9'})]\n")], 2,
         "proxy_servers: proxy9: pg_ha_cluster: name the cluster it serves (the inventory has no clusters)"),
    case("inventory-db-host-as-proxy", lambda c: ["deploy", "-i", c.inv_with(
        "proxy_servers = ['db2']\n")], 2,
         "proxy_servers: db2 is a database host"),
    case("limit-unknown-host", lambda c: ["deploy", "--limit", "db7"], 2,
         "--limit db7: no such host in inventory/lab.py"),
    # -- settings ---------------------------------------------------------------------------
    case("settings-unknown-key", deploy(pg_tunning={"shared_buffers": "1GB"}), 2, HOST, "pg_tunning"),
    case("settings-unknown-major", deploy(pg_major=19), 2, HOST,
         "pg_major: 19 is not a supported PostgreSQL major"),
    case("settings-bad-cidr", deploy(pg_hba_rules=[
        {"database": "app", "user": "app", "address": "10.1.2.300/24"}]), 2, HOST,
         "pg_hba_rules.0.address: '10.1.2.300/24' is not a valid network"),
    case("settings-trust-over-tcp", deploy(pg_hba_rules=[
        {"database": "app", "user": "app", "address": "10.0.0.0/8", "method": "trust"}]), 2, HOST,
         "pg_hba_rules.0.method"),
    case("settings-hba-bad-user", deploy(pg_hba_rules=[
        {"database": "app", "user": "app;drop", "address": "10.0.0.0/8"}]), 2, HOST,
         "pg_hba_rules.0.user", "is not 'all' or a role/database name"),
    case("settings-undefined-member-of", deploy(pg_roles=[{"name": "app", "member_of": ["readers"]}]),
         2, HOST, "pg_roles.0.member_of: role 'readers' is not defined in pg_roles"),
    case("settings-undefined-owner", deploy(pg_databases=[{"name": "app", "owner": "ghost"}]), 2, HOST,
         "pg_databases.0.owner: role 'ghost' is not defined in pg_roles"),
    case("settings-bad-role-name", deploy(pg_roles=[*ROLES, {"name": "Bad-Name"}]), 2, HOST,
         "pg_roles.3.name", "'Bad-Name' is not a plain lower-case SQL identifier"),
    case("settings-bad-database-name", deploy(pg_databases=[{"name": "app; drop", "owner": "migrator"}]),
         2, HOST, "pg_databases.0.name"),
    case("settings-missing-secret", deploy(pg_secrets_file="/nonexistent/secrets.env"), 2, HOST,
         "secret PGOPS_ROLE_APP_PASSWORD is not set"),
    # Names and values PostgreSQL itself judges: the new file is checked before any reload.
    case("settings-unknown-pg-setting", deploy(pg_settings={"shared_bufers": "1GB"}), 1, "[db1]",
         "50-pgops.conf refused, previous file kept", 'unrecognized configuration parameter "shared_bufers"'),
    case("settings-bad-pg-value", deploy(pg_settings={"work_mem": "lots"}), 1, "[db1]",
         "50-pgops.conf refused, previous file kept", 'invalid value for parameter "work_mem": "lots"'),
    case("settings-pgbackrest-secret-inline", deploy(pgbackrest={"repo1-cipher-pass": "x"}), 2, HOST,
         "repo1-cipher-pass is a secret"),
    case("settings-pgbackrest-bad-option", deploy(pgbackrest={"repo1 path": "/x"}), 2, HOST,
         "'repo1 path' is not a pgBackRest option name"),
    case("settings-repo-type-unknown", deploy(pgbackrest={"repo1-type": "gcs"}), 2, HOST,
         "'gcs': pgops deploys posix and s3 repositories"),
    case("settings-s3-incomplete", deploy(pgbackrest={"repo1-type": "s3"}), 2, HOST, "s3 needs"),
    case("settings-bad-timer", deploy(pg_backup_timers={"full": "every sunday"}), 1,
         "host backup1: pg_backup_timers: systemd refuses the calendar(s) 'every sunday'"),
    case("settings-pool-bigger-than-limit", deploy(pg_pooler={"default_pool_size": 50,
                                                            "max_db_connections": 10}), 2, HOST,
         "default_pool_size (50) exceeds"),
    case("settings-proxy-ports-collide", deploy(pg_proxy={"rw_port": 5001}), 2, HOST,
         "rw_port, ro_port, leader_port and stats_port must differ"),
    case("settings-ha-timing", deploy(pg_ha={"ttl": 20, "loop_wait": 10, "retry_timeout": 10}), 2, HOST,
         "loop_wait + 2 * retry_timeout"),
    case("settings-listen-without-loopback-for-pooler", deploy(
        pg_pooler=True, pg_listen_addresses=["192.0.2.1"]), 2, HOST, "pg_pooler"),
    case("settings-major-not-packaged", deploy(pg_major=16), 1,
         "pg_major 16 is not packaged by debian trixie (it ships 17)"),
    # -- SQL migrations (against the `corpus` database) ---------------------------------------
    case("migration-syntax-error", lambda c: c.migrate(**{"0009_bad": "create tabel oops (id int);\n"}), 2,
         "0009_bad.sql:1", "syntax error", "rolled back"),
    case("migration-no-down-part", lambda c: c.migrate("down", "--to", "6"), 2,
         "no `-- pgops:down` part in 0008_nodown.sql; nothing was rolled back"),
    case("migration-down-to-unapplied", lambda c: c.migrate("down", "--to", "7"), 2,
         "--to 7: that version is not applied"),
    case("migration-drift", lambda c: c.migrate(**{"0001_tenants": shipped(
        "0001_tenants", lambda s: s + "\n-- an edit after it was applied\n")}), 2,
         "0001_tenants.sql changed after it was applied"),
    case("migration-out-of-order", lambda c: c.migrate(**{"0007_late": "create table late (id int);\n"}), 2,
         "0007_late.sql is pending but version 8 is already applied"),
    case("migration-duplicate-version", lambda c: c.migrate(**{"0003_again": "select 1;\n"}), 2,
         "version 3 is also"),
    case("migration-no-transaction-two-statements", lambda c: c.migrate(**{"0009_idx": NO_TX_TWO}), 2,
         "0009_idx.sql", "a `-- pgops:no-transaction` migration must hold exactly one statement"),
    case("migration-missing-file", lambda c: c.migrate(**{"0008_nodown": None}), 2,
         "version 8 (nodown) is applied but its file 0008_nodown.sql"),
    case("migration-no-directory", lambda c: ["migrate", "--dir", str(c.tmp / "none")], 2,
         "none: no migrations directory"),
    # -- CLI arguments ----------------------------------------------------------------------
    case("cli-unknown-command", lambda c: ["deplo"], 2, "No such command 'deplo'"),
    case("cli-backup-bad-type", lambda c: ["backup", "--type", "weekly"], 2,
         "Invalid value for '--type': 'weekly' is not one of 'full', 'diff', 'incr'"),
    case("cli-status-bad-threshold", lambda c: ["status", "--max-rpo", "soon"], 2,
         "Invalid value for '--max-rpo'"),
    case("cli-dump-unknown-host", lambda c: ["dump", "--host", "db9"], 2,
         "no database host 'db9' in the inventory"),
    case("cli-unknown-role", lambda c: ["health", "-U", "nobody"], 2,
         "role 'nobody' is not in pg_roles of", "[db1]"),
    case("cli-seed-bad-dsn", lambda c: ["seed", "-d", "postgresql://x@[::1"], 1, "IPv6 host address",
         "from -d"),
    case("cli-lab-proxy-without-cluster", lambda c: ["lab", "up", "--proxy"], 2,
         "--proxy needs --cluster"),
    # -- restore targets ----------------------------------------------------------------------
    case("restore-bad-time", lambda c: ["restore", "--to", "yesterday-ish", "--plan"], 2,
         "--to 'yesterday-ish': not a time (use ISO 8601"),
    case("restore-before-window", lambda c: ["restore", "--to", "2001-01-01T00:00:00Z", "--plan"], 2,
         "2001-01-01T00:00:00.000000+00:00 is outside the recoverable window of db1"),
    case("restore-in-the-future", lambda c: ["restore", "--to", "2999-01-01T00:00:00Z", "--plan"], 2,
         "2999-01-01T00:00:00.000000+00:00 is outside the recoverable window of db1"),
    case("restore-unknown-host", lambda c: ["restore", "--to", "latest", "--host", "db9", "--plan"], 2,
         "no database host 'db9' in"),
    case("restore-onto-unknown-host", lambda c: ["restore", "--to", "latest", "--onto", "db9", "--plan"], 2,
         "--onto db9: no database host 'db9' in", "(have: db1, db2)"),
    case("restore-in-place-without-yes", lambda c: ["restore", "--to", "latest", "--in-place"], 2,
         "--in-place replaces the live data of db1", "add --yes to do it (nothing was changed)"),
    # -- cluster commands on an inventory without a cluster -----------------------------------
    case("cluster-switchover-no-cluster", lambda c: ["cluster", "switchover"], 2,
         "the inventory has no clusters (no database host sets pg_ha_cluster)"),
    case("cluster-failover-no-cluster", lambda c: ["cluster", "failover", "--to", "db2"], 2,
         "the inventory has no clusters"),
    case("cluster-named-unknown", lambda c: ["cluster", "switchover", "--cluster", "nope"], 2,
         "the inventory has no clusters", "there is no cluster 'nope'"),
    case("upgrade-no-cluster", lambda c: ["upgrade", "--minor", "--plan"], 2,
         "the inventory has no clusters"),
]


@pytest.fixture(scope="module")
def corpus(lab, first_deploy, tmp_path_factory):
    """An inventory whose application database is `corpus` on db1 (the migrator may reach it),
    deployed, with the shipped migrations and CORPUS_EXTRA applied; removed at the end."""
    tmp = tmp_path_factory.mktemp("corpus")
    rules = [{"database": "app,corpus", "user": "app,migrator", "address": str(lab.subnet)}]
    inv = str(variant_inventory(tmp, "corpus", pg_databases=[
        {"name": "app", "owner": "migrator", "extensions": ["vector"]},
        {"name": "corpus", "owner": "migrator", "extensions": ["vector"]}],
        pg_app_database="corpus", pg_hba_rules=rules))
    drop = "cd / && runuser -u postgres -- dropdb --if-exists --force corpus"
    lab.ssh("db1", drop)  # a reused lab may hold one from an interrupted run
    pgops("deploy", "-i", inv, "--limit", "db1")
    pgops("migrate", "-i", inv, "--host", "db1", "--dir", str(migrations_dir(tmp / "m")))
    yield inv
    try:
        pgops("deploy", "--limit", "db1")  # back to the lab's own rules
    finally:
        lab.ssh("db1", drop)


@pytest.fixture(scope="module")
def baseline(lab, corpus) -> dict[str, str]:
    return fingerprint(lab)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_by_name_and_changes_no_host(lab, corpus, baseline, tmp_path, bad: Case):
    args = bad.args(Ctx(lab, tmp_path, corpus))
    run = pgops(*args, check=False)
    assert run.rc == bad.rc, f"pgops {' '.join(args)} exited {run.rc}:\n{run.out[-3000:]}"
    for words in bad.says:
        assert words in run.out, f"{words!r} not in the message of pgops {' '.join(args)}:\n{run.out[-3000:]}"
    assert "Traceback" not in run.out
    if args[0] == "deploy" and "-i" in args and HOST in bad.says:
        assert f"{args[args.index('-i') + 1]}: {HOST}" in run.out  # names the file, then the host
    assert fingerprint(lab) == baseline, f"pgops {' '.join(args)} changed a host"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
