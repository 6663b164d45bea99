"""A deployed single host moves into a Patroni cluster: db1 is deployed alone and holds
data; then db1, db2 and db3 are given one `pg_ha_cluster` and deployed. db1 keeps its data
and leads; db2 and db3 clone it. Its own small lab (`testjoin`, no repository host)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import psycopg
import pytest

from pgops.lab import Lab, image
from pgops.settings import read_secrets_file
from tests.lab.conftest import BIN, PROJECT_ROOT, REUSED, pgops, results

pytestmark = pytest.mark.lab

ENV = {"PGOPS_LAB": "testjoin"}
ROWS = 5000


@pytest.fixture(scope="module")
def lab():
    the_lab = Lab(ENV["PGOPS_LAB"])
    if not REUSED:
        pgops("lab", "down", env=ENV, check=False)
    pgops("lab", "up", "--cluster", "--no-backup", env=ENV)
    yield the_lab
    if not os.environ.get("PGOPS_KEEP_LAB"):
        pgops("lab", "down", env=ENV, check=False)


def _single_db1_inventory(directory) -> str:
    """The lab's inventory with db1 alone and no cluster: a single host, as before, that
    turns PgBouncer on (a single host's choice)."""
    (directory / "group_data").symlink_to(PROJECT_ROOT / "inventory" / "group_data")
    path = directory / "single.py"
    path.write_text(
        "from pgops.lab.inventory import db_servers as _db\n"
        "_hosts, _data = _db()\n"
        "_data.pop('pg_ha_cluster', None)\n"
        "_data['pg_pooler'] = True\n"
        "db_servers = ([h for h in _hosts if h[0] == 'db1'], _data)\n")
    return str(path)


def _deploy_killed_at(step: str, inventory: str, after_s: float) -> str:
    """Start a deploy and kill it (SIGKILL, pgops and its pyinfra: a lost controller) `after_s`
    seconds after pyinfra starts `step`; its output until then."""
    proc = subprocess.Popen([str(BIN / "pgops"), "deploy", "-i", inventory], cwd=PROJECT_ROOT,
                            env={**os.environ, **ENV}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout
    out, deadline = [], time.monotonic() + 600
    for line in proc.stdout:
        out.append(line)
        if step in line:
            time.sleep(after_s)
            break
        assert time.monotonic() < deadline, "".join(out)[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    text = "".join(out)
    assert step in text, text[-3000:]
    return text


def test_a_first_deploy_killed_or_cut_from_the_mirror_converges_when_run_again(lab, tmp_path):
    """db1's first deploy: the package mirror unreachable (refused), then cut between apt's
    update and the install's downloads, then the deploy killed while apt installs PostgreSQL,
    then while it configures; each time a clear error or a run that stops, the next run
    converges, and the one after changes nothing."""
    inventory = _single_db1_inventory(tmp_path)
    # The mirror's name (in db1's /etc/hosts) pointed at a closed port: connections refused.
    mirror = image.mirror_host(image.debian_mirror())
    point = "{for (i = 2; i <= NF; i++) if ($i == m) $1 = \"127.0.0.1\"; print}"
    lab.ssh("db1", f"cp /etc/hosts /run/hosts.pgops && awk -v m={mirror} '{point}' /run/hosts.pgops "
                   f"> /etc/hosts && getent hosts {mirror} | grep -q '^127.0.0.1'")
    try:
        blocked = pgops("deploy", "-i", inventory, env=ENV, check=False)
    finally:
        lab.ssh("db1", "cat /run/hosts.pgops > /etc/hosts")
    assert blocked.rc != 0, blocked.out[-3000:]
    assert "[db1]" in blocked.out and re.search(r"(Failed to fetch|Unable to fetch|Could not "
                                                r"connect|Connection refused)", blocked.out), \
        blocked.out[-3000:]

    # Reachable for the update, then cut: an apt hook points the mirror's name at the closed
    # port as soon as the lists are fetched, so the install's downloads (db1's package cache
    # set aside first, in a directory apt ignores) fail mid-deploy.
    aside = "/var/cache/apt/archives/pgops-aside"
    lab.ssh("db1", f"awk -v m={mirror} '{point}' /run/hosts.pgops > /run/hosts.cut && "
                   f"mkdir -p {aside} && find /var/cache/apt/archives -maxdepth 1 -name '*.deb' "
                   f"-exec mv -t {aside} {{}} + && echo 'APT::Update::Post-Invoke "
                   "{ \"cat /run/hosts.cut > /etc/hosts\"; };' > /etc/apt/apt.conf.d/99cut")
    try:
        cut = pgops("deploy", "-i", inventory, env=ENV, check=False)
    finally:  # the cache back: the runs below need not download it again
        lab.ssh("db1", f"rm -f /etc/apt/apt.conf.d/99cut && cat /run/hosts.pgops > /etc/hosts && "
                       f"find {aside} -name '*.deb' -exec mv -t /var/cache/apt/archives {{}} + && "
                       f"rmdir {aside}")
    assert cut.rc != 0, cut.out[-3000:]
    assert "Install PostgreSQL packages" in cut.out and "[db1]" in cut.out and re.search(
        r"(Failed to fetch|Unable to fetch some archives)", cut.out), cut.out[-3000:]
    assert "Update apt lists" in cut.out

    seen = []
    for step, after_s in (("Install PostgreSQL packages", 4), ("PostgreSQL settings (tuned)", 0.5)):
        out = _deploy_killed_at(step, inventory, after_s)
        left = lab.ssh("db1", "echo $(pgrep -c 'apt-get|dpkg' || true) $(ls /var/lib/dpkg/updates "
                              "| grep -cE '^[0-9]+$' || true)").stdout.split()
        seen.append(f"killed {after_s} s into {step!r}: {left[0]} apt/dpkg processes left running, "
                    f"{left[1]} dpkg updates pending"
                    + ("; this run finished an interrupted dpkg" if "interrupted" in out else ""))

    t0 = time.monotonic()
    again = pgops("deploy", "-i", inventory, env=ENV)
    converged_s = time.monotonic() - t0
    status = pgops("status", "--json", "-i", inventory, env=ENV)
    [row] = json.loads(status.stdout)
    assert row["up"], row
    after = results(pgops("deploy", "-i", inventory, env=ENV).out)
    assert after and [op for op, (ok, error, _) in after.items() if (ok, error) != ("-", "-")] == [], after
    print("\n" + "\n".join(seen) + f"\nconverged in {converged_s:.1f} s after the two kills"
          + ("; it finished an interrupted dpkg" if "interrupted" in again.out else ""))
    for name, run in (("refused", blocked), ("cut after the update", cut)):
        print(f"mirror {name}: {[line for line in run.out.splitlines() if 'Failed to fetch' in line][:1]}")


def _count(lab: Lab, member: str) -> str:
    return lab.ssh(member, "cd / && runuser -u postgres -- psql -XAt -d app -c "
                           "'select count(*), sum(n) from kept'", check=False).stdout.strip()


def test_a_deployed_single_host_keeps_its_data_and_leads_the_cluster_it_moves_into(lab, tmp_path):
    single_inventory = _single_db1_inventory(tmp_path)
    pgops("deploy", "-i", single_inventory, env=ENV)
    lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAtq -d app -c "
                   f"'create table kept (n int primary key); insert into kept "
                   f"select generate_series(1, {ROWS})'")
    started = lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAt -c "
                             "'select pg_postmaster_start_time()'").stdout.strip()
    want = f"{ROWS}|{ROWS * (ROWS + 1) // 2}"
    assert _count(lab, "db1") == want
    # The single host's PgBouncer serves its clients on 6432, from its own Postgres.
    password = read_secrets_file(lab.secrets_file)["PGOPS_ROLE_APP_PASSWORD"]
    with psycopg.connect(host=lab.host("db1").address, port=6432, dbname="app", user="app",
                         password=password, sslmode="require", connect_timeout=5) as c:
        assert c.execute("select host(inet_server_addr())").fetchone() == ("127.0.0.1",)
    # `pgops status` shows that PgBouncer's pools: the server connection just used stays pooled.
    single = pgops("status", "--json", "-i", single_inventory, env=ENV, check=False)
    [row] = json.loads(single.stdout)
    [pool] = [p for p in row["pooler"]["pools"] if (p["database"], p["user"]) == ("app", "app")]
    assert row["pooler"]["port"] == 6432 and pool["sv_active"] + pool["sv_idle"] >= 1, row["pooler"]

    pgops("deploy", env=ENV)  # the lab's inventory: db1, db2, db3 in cluster main

    st = json.loads(pgops("cluster", "status", "--json", env=ENV, check=False).stdout)
    (c,) = st["clusters"]
    assert c["leader"] == "db1", c  # the member that held data leads
    deadline = time.monotonic() + 60
    while {_count(lab, m) for m in ("db1", "db2", "db3")} != {want}:
        assert time.monotonic() < deadline, {m: _count(lab, m) for m in ("db1", "db2", "db3")}
        time.sleep(1)
    # Patroni restarted db1's postmaster once, when it took the cluster over.
    now = lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAt -c "
                         "'select pg_postmaster_start_time()'").stdout.strip()
    assert now != started
    again = results(pgops("deploy", env=ENV).out)  # and then nothing more to do
    assert again and [op for op, (ok, error, _) in again.items() if (ok, error) != ("-", "-")] == []
    # db1's PgBouncer now reaches the leader through its HAProxy, as every member's does.
    with psycopg.connect(host=lab.host("db2").address, port=5000, dbname="app", user="app",
                         password=password, sslmode="require", connect_timeout=5) as c:
        assert c.execute("select host(inet_server_addr()), pg_is_in_recovery()").fetchone() == (
            lab.host("db1").address, False)
