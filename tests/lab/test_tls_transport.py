"""pgBackRest over its own TLS transport (pg_backup_transport = "tls") for db1 while db2
stays on SSH: certificates from pgops's CA, a TLS server on db1 and backup1, backups, WAL
archiving, an exact point-in-time restore and a drill over it; back on SSH afterwards, with
no server left behind."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from pgops.backup.backrest import TLS_FILES, TLS_SERVICE
from tests.lab.conftest import pgops, results, variant_inventory
from tests.lab.test_restore import Writer, archive_all, drop, fresh_probe_table, restores_exactly


def active(lab, host: str) -> str:
    return lab.ssh(host, f"systemctl is-active {TLS_SERVICE}", check=False).stdout.strip()


@pytest.fixture(scope="module")
def tls(lab, first_deploy, tmp_path_factory):
    inv = variant_inventory(tmp_path_factory.mktemp("tls"), "tls",
                            host_data={"db1": {"pg_backup_transport": "tls"}})
    try:
        yield inv, pgops("deploy", "-i", str(inv))
    finally:
        back = pgops("deploy", check=False)
    assert back.rc == 0, back.out[-3000:]
    assert active(lab, "db1") != "active" and active(lab, "backup1") != "active"
    assert "tls" not in lab.ssh("backup1", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    again = pgops("backup", "--type", "incr", "--host", "db1", check=False)  # over SSH again
    assert again.rc == 0, again.out[-3000:]


def test_tls_servers_run_and_a_second_deploy_changes_nothing(lab, tls):
    inv, first = tls
    assert active(lab, "db1") == "active" and active(lab, "backup1") == "active"
    assert active(lab, "db2") != "active"
    repo = lab.ssh("backup1", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    assert "tls-server-auth=db1=db1,db2\n" in repo and repo.count("pg1-host-type=tls") == 1
    key = lab.ssh("db1", "stat -c '%U %a' /etc/pgbackrest/tls/host.key").stdout.split()
    assert key == ["postgres", "600"]
    again = pgops("deploy", "-i", str(inv))
    changed = {op: r for op, r in results(again.out).items() if r[0] != "-" and r[2] != r[0]}
    assert not changed, changed
    assert "PRIVATE KEY" not in first.out + again.out


def test_backup_pitr_and_drill_over_tls(lab, tls):
    inv = tls[0]
    url = fresh_probe_table("db1")
    pgops("backup", "-i", str(inv), "--type", "full", "--host", "db1")
    began = lab.ssh("backup1", "grep 'backup command begin' /var/log/pgbackrest/db1-backup.log "
                               "| tail -1").stdout
    assert "--pg1-host-type=tls" in began, began
    w = Writer(url, 10, pause=0.2)
    w.run()
    assert w.error is None, w.error
    archive_all(lab, "db1")  # archive-push from db1 through backup1's TLS server
    restores_exactly(lab, 6, str(w.gap_after(6)), "-i", str(inv), "--host", "db1")
    [drill] = json.loads(pgops("drill", "-i", str(inv), "--host", "db1", "--json").stdout)
    assert drill["ok"] and drill["amcheck"] == "ok", drill


def test_an_ssh_hosts_backup_restores_onto_the_tls_host(lab, tls):
    inv = tls[0]
    pgops("backup", "-i", str(inv), "--type", "full", "--host", "db2")
    result = json.loads(pgops("restore", "-i", str(inv), "--host", "db2", "--onto", "db1",
                              "--to", "latest", "--json").stdout)
    try:
        assert result["host"] == "db1"
        assert lab.ssh("db1", f"cd / && runuser -u postgres -- psql -XAtq -p {result['port']} "
                              "-c 'select pg_is_in_recovery()'").stdout.strip() == "f"
    finally:
        drop(lab, result)


#: Run on a lab host: connects to each (address, port) of a pgBackRest TLS server as plain
#: text, with TLS 1.1, with TLS 1.2 and no client certificate, and with the certificate
#: given, if one is; prints whether each got pgBackRest's greeting (with TLS 1.3 a refused
#: client certificate shows on the first read, not in the handshake).
GREETING = r"""
import json, socket, ssl, sys
def greeted(addr, port, version=None, cert=None):
    s = socket.create_connection((addr, port), timeout=5)
    try:
        if version is None:
            s.sendall(b"{}\n")
            return b"pgBackRest" in s.recv(200)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = version
        if version == ssl.TLSVersion.TLSv1_1:
            ctx.maximum_version = version
        if cert:
            ctx.load_cert_chain(cert["cert"], cert["key"])
        t = ctx.wrap_socket(s)
        return b"pgBackRest" in t.recv(200)
    except (ssl.SSLError, OSError):
        return False
    finally:
        s.close()
ask = json.loads(sys.stdin.read())
for addr, port in ask["servers"]:
    row = {"addr": addr, "plain": greeted(addr, port),
           "tls1.1": greeted(addr, port, ssl.TLSVersion.TLSv1_1),
           "no cert": greeted(addr, port, ssl.TLSVersion.TLSv1_2)}
    if ask["cert"]:
        row["own cert"] = greeted(addr, port, ssl.TLSVersion.TLSv1_2, ask["cert"])
    print(json.dumps(row))
"""


def test_the_tls_servers_refuse_plain_text_and_tls_1_1(lab, tls):
    """pgBackRest's TLS servers (db1's and backup1's, port 8432) as an outsider meets them, from
    db2 (a host on SSH, with no certificate): plain text and TLS 1.1 get no greeting;
    backup1's own certificate does (the probe can succeed)."""
    servers = [[lab.host(h).address, 8432] for h in ("db1", "backup1")]
    rows = {}
    for prober, cert in (("db2", None), ("backup1", {k: TLS_FILES[k] for k in ("cert", "key")})):
        out = lab.ssh(prober, f"python3 -c {shlex.quote(GREETING)}",
                      input=json.dumps({"servers": servers, "cert": cert})).stdout
        rows[prober] = [json.loads(x) for x in out.splitlines()]
    assert len(rows["db2"]) == len(rows["backup1"]) == 2, rows
    for r in rows["db2"]:
        assert (r["plain"], r["tls1.1"]) == (False, False), r
    # pgBackRest greets a TLS 1.2+ client without a certificate (its `server-ping` needs no
    # certificate); its commands need one the CA signed for a name tls-server-auth lists.
    print(f"\npgBackRest TLS servers, from db2 without a certificate: {rows['db2']}")
    assert [r["own cert"] for r in rows["backup1"]] == [True, True], rows["backup1"]


def test_a_client_with_a_self_signed_certificate_naming_db1_is_refused(lab, tls):
    """An impostor on db2 (on SSH, no pgops certificate) presents a self-signed certificate
    for the name db1 to the repository host's TLS server: pgBackRest refuses it, while db1's
    own certificate, on the same command, is served."""
    fake = "/tmp/pgops-impostor"
    lab.ssh("db2", f"rm -rf {fake} && mkdir -m 700 {fake} && cd {fake} && openssl req -x509 "
                   "-newkey rsa:2048 -nodes -keyout fake.key -out fake.crt -days 1 -subj /CN=db1 "
                   f"2>/dev/null && chown -R postgres {fake}", input="")
    lab.ssh("db2", f"cat > {fake}/ca.crt && chown postgres {fake}/ca.crt",  # the CA is public
            input=lab.ssh("db1", f"cat {TLS_FILES['ca']}").stdout)
    info = ("cd / && runuser -u postgres -- pgbackrest --stanza=db1 --repo1-host-type=tls "
            "--repo1-host-ca-file={ca} --repo1-host-cert-file={cert} --repo1-host-key-file={key} "
            "--output=json info")
    try:
        own = lab.ssh("db1", info.format(**TLS_FILES), check=False)
        impostor = lab.ssh("db2", info.format(ca=f"{fake}/ca.crt", cert=f"{fake}/fake.crt",
                                              key=f"{fake}/fake.key"), check=False)
    finally:
        lab.ssh("db2", f"rm -rf {fake}")
    # `info` exits 0 either way and reports each repository's status in its JSON.
    [mine], [theirs] = json.loads(own.stdout), json.loads(impostor.stdout)
    assert mine["status"]["code"] == 0 and mine["backup"], mine
    said = theirs["repo"][0]["status"]["message"]
    print(f"\nan impostor's certificate for db1: {said}")
    assert theirs["repo"][0]["status"]["code"] != 0 and theirs["backup"] == [], theirs
    assert re.search(r"(?i)(unknown ca|certificate verify|handshake)", said), said
