"""End to end on the lab: deploy twice (the second changes nothing), then check the hosts."""

from __future__ import annotations

import psycopg
import pytest

from pgops import pki
from tests.lab.conftest import REUSED, connect, pgops, results

PG = "postgresql@17-main"


def test_first_deploy_changes_then_second_changes_nothing(first_deploy):
    first = results(first_deploy.out)
    if not REUSED:
        assert first["Install PostgreSQL + pgvector | Install PostgreSQL packages"][0] == "2"
    assert first["Grand total"][1] == "-"  # no errors
    second = pgops("deploy")
    rows = results(second.out)
    assert rows, second.out
    for op, (success, error, _nochange) in rows.items():
        assert (success, error) == ("-", "-"), f"{op} changed on the second deploy"
    print(f"pgops up {first_deploy.seconds:.1f} s, no-op re-deploy {second.seconds:.1f} s")


def test_files_changed_by_hand_are_put_back_and_the_next_deploy_changes_nothing(lab, first_deploy):
    """A deploy decides from one snapshot of the managed paths (pgops.operations.files): a
    file edited, re-owned, re-moded or removed by hand, and a directory re-moded, are all
    found and put back on db1 (the directory's row shares its name with the repository
    host's: checked on the host), and the deploy after changes nothing."""
    conf, apt_conf, spool = "/etc/pgbackrest/pgbackrest.conf", "/etc/apt/apt.conf.d/50pgops", \
        "/var/spool/pgbackrest"
    checksums = "/etc/postgresql-common/createcluster.d/50-pgops-server.conf"
    before = lab.ssh("db1", f"sha1sum {conf} {apt_conf} {checksums}").stdout
    lab.ssh("db1", f"echo '# by hand' >> {conf} && chgrp root {conf} && chmod 600 {apt_conf} && "
                   f"chmod 700 {spool} && rm {checksums}")
    rows = results(pgops("deploy").out)
    changed = {op for op, (success, _e, _n) in rows.items() if success not in ("-", "0")}
    assert {"pgBackRest | pgBackRest configuration",
            "Package manager ready | apt waits for another run's lock",
            "Install PostgreSQL + pgvector | New clusters get data checksums"} <= changed, changed
    assert lab.ssh("db1", f"sha1sum {conf} {apt_conf} {checksums}").stdout == before
    assert lab.ssh("db1", f"stat -c '%a %U:%G' {conf} {apt_conf} {spool}").stdout.split("\n")[:3] == [
        "640 root:postgres", "644 root:root", "750 postgres:postgres"]
    again = results(pgops("deploy").out)
    assert [op for op, (success, error, _n) in again.items() if (success, error) != ("-", "-")] == []


def test_pgops_up_ends_with_the_status_table(first_deploy):
    table = first_deploy.stdout
    for col in ("host", "address", "postgres", "pgvector", "databases", "roles", "tls", "checksums"):
        assert col in table
    for host in ("db1", "db2"):
        row = next(line for line in table.splitlines() if f" {host} " in line)
        assert " 17." in row
        assert "0.8.0" in row and "app" in row and " on " in row


def test_postgres_runs_under_systemd_and_listens(lab, first_deploy):
    for h in (h for h in lab.hosts() if h.role == "db"):
        assert lab.ssh(h, f"systemctl is-active {PG}").stdout.strip() == "active"
        assert lab.ssh(h, "systemctl is-enabled postgresql").stdout.strip() == "enabled"
        listening = lab.ssh(h, "ss -Hltn 'sport = :5432'").stdout
        assert "0.0.0.0:5432" in listening or "*:5432" in listening
        checksums = lab.ssh(h, "cd / && runuser -u postgres -- psql -XAtc 'show data_checksums'")
        assert checksums.stdout.strip() == "on"  # pg_data_checksums, the default


def test_pgvector_usable_over_tls(lab, first_deploy, secrets):
    with connect(lab, "db1", "app", secrets["PGOPS_ROLE_APP_PASSWORD"], sslmode="require") as c:
        assert c.execute("select '[1,2,3]'::vector <-> '[1,2,4]'").fetchone()[0] == 1.0
        assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
        version = c.execute("select extversion from pg_extension where extname='vector'").fetchone()
        assert version[0].startswith("0.")


def test_tls_required_from_another_lab_host(lab, first_deploy, secrets):
    pw = secrets["PGOPS_ROLE_APP_PASSWORD"] + "\n"
    base = "read -r PGPASSWORD; export PGPASSWORD; cd /; psql -XAt"
    conninfo = "'host=db1 user=app dbname=app sslmode={}'"
    plain = lab.ssh("db2", f"{base} {conninfo.format('disable')} -c 'select 1'", input=pw,
                    check=False)
    assert plain.returncode != 0
    assert "no pg_hba.conf entry" in plain.stderr and "no encryption" in plain.stderr
    tls = lab.ssh("db2", f"{base} {conninfo.format('require')} -c "
                         "'select ssl from pg_stat_ssl where pid = pg_backend_pid()'", input=pw)
    assert tls.stdout.strip() == "t"


def test_clients_verify_the_server_and_a_wrong_host_name_is_refused(lab, first_deploy, secrets,
                                                                    tmp_path):
    """pgops's PostgreSQL CA (on this machine) signed db1's certificate for its name and
    address: verify-full passes with both, and refuses a name it does not carry (a man in the
    middle's) and a server another CA vouches for."""
    ca, pw = lab.dir / "postgres-pki" / "ca.crt", secrets["PGOPS_ROLE_APP_PASSWORD"]
    address = lab.host("db1").address
    for host in ("db1", address):
        with psycopg.connect(host=host, hostaddr=address, dbname="app", user="app", password=pw,
                             sslmode="verify-full", sslrootcert=str(ca), connect_timeout=5) as c:
            assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
    mismatch = r'server certificate for "[^"]+" (\(and \d+ other names?\) )?does not match host name "db9"'
    with pytest.raises(psycopg.OperationalError, match=mismatch):
        psycopg.connect(host="db9", hostaddr=address, dbname="app", user="app", password=pw,
                        sslmode="verify-full", sslrootcert=str(ca), connect_timeout=5)
    pki.ca_file(tmp_path, "another CA")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(host=address, dbname="app", user="app", password=pw,
                        sslmode="verify-full", sslrootcert=str(tmp_path / "ca.crt"), connect_timeout=5)
    # The same from another lab host, with the CA pgops put there.
    check = lab.ssh("db2", "cd / && PGCONNECT_TIMEOUT=5 psql -XAtw 'host=db1 dbname=app user=app "
                           "sslmode=verify-full sslrootcert=/etc/postgresql/pgops-tls/ca.crt' "
                           "-c 'select 1' 2>&1", check=False).stdout
    assert "no password supplied" in check and "certificate" not in check, check


def test_wrong_password_refused(lab, first_deploy):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(lab, "db1", "app", "not-the-password", sslmode="require")


def test_roles_databases_as_configured(lab, first_deploy):
    sql = ("select rolname, rolsuper, rolcanlogin, rolconnlimit from pg_roles "
           "where rolname in ('app','migrator') order by 1")
    out = lab.ssh("db1", f"cd / && runuser -u postgres -- psql -XAtc \"{sql}\"").stdout.split()
    assert out == ["app|f|t|80", "migrator|f|t|10"]
    owner = lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAtc "
                           "\"select pg_get_userbyid(datdba), pg_encoding_to_char(encoding), "
                           "datcollate from pg_database where datname='app'\"").stdout.strip()
    assert owner == "migrator|UTF8|C.UTF-8"


def test_status_json(lab, first_deploy):
    import json

    rows = json.loads(pgops("status", "--json").stdout)
    assert {r["host"] for r in rows} == {"db1", "db2"}
    for r in rows:
        assert r["up"] and r["tls"] and r["checksums"] and r["pgvector"] == "0.8.0"
        assert r["postgres"].startswith("17.")
        assert "app" in r["databases"] and {"app", "migrator"} <= set(r["roles"])
