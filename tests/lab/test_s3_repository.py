"""An S3-compatible repository, deployed from config: db2 keeps its stanza in S3 while db1
stays on the repository host's disk. The S3 server is local (no outside network here):
Debian's moto server on backup1, behind stunnel for TLS (pgBackRest speaks S3 over HTTPS
only). Backups, WAL archiving and an exact point-in-time restore work from it, and what it
stores is encrypted."""

from __future__ import annotations

import json
import secrets

import psycopg
import pytest

from tests.lab.conftest import pgops, variant_inventory
from tests.lab.test_restore import Writer, archive_all, fresh_probe_table, restores_exactly

BUCKET = "pgops-lab"
S3_SERVER = """set -e
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  python3-moto python3-flask-cors stunnel4 openssl >/dev/null
mkdir -p /run/pgops-s3 && cd /run/pgops-s3
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout key.pem \
  -out cert.pem 2>/dev/null
printf 'foreground = yes\\npid =\\n[s3]\\naccept = 127.0.0.1:9000\\nconnect = 127.0.0.1:9001\\n\
cert = /run/pgops-s3/cert.pem\\nkey = /run/pgops-s3/key.pem\\n' > stunnel.conf
systemctl stop pgops-lab-s3 pgops-lab-s3-tls 2>/dev/null || true
systemctl reset-failed pgops-lab-s3 pgops-lab-s3-tls 2>/dev/null || true
systemd-run -q --unit pgops-lab-s3 moto_server -H 127.0.0.1 -p 9001
systemd-run -q --unit pgops-lab-s3-tls stunnel4 /run/pgops-s3/stunnel.conf
"""
BOTO = ("import boto3, urllib3, sys, time; urllib3.disable_warnings(); "
        "c = boto3.client('s3', endpoint_url='https://127.0.0.1:9000', verify=False, "
        "aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2], region_name='us-east-1')")


def s3(lab, key, secret, code: str, *args: str) -> str:
    return lab.ssh("backup1", f"python3 -c \"{BOTO}; {code}\" {key} {secret} {' '.join(args)}").stdout


@pytest.fixture(scope="module")
def s3_repo(lab, first_deploy, tmp_path_factory):
    """The S3 server on backup1, then a deploy that moves db2's stanza into it; afterwards
    the default deploy again, and a fresh full backup of db2 on disk for the tests after."""
    key, secret = f"AKIA{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
    lab.ssh("backup1", S3_SERVER, timeout=600)
    s3(lab, key, secret, "[time.sleep(0.5) for _ in range(20) if not c.list_buckets()]; "
                         f"c.create_bucket(Bucket='{BUCKET}')")
    options = {"repo1-type": "s3", "repo1-path": "/pgops", "repo1-s3-bucket": BUCKET,
               "repo1-s3-endpoint": "127.0.0.1", "repo1-storage-port": 9000,
               "repo1-s3-region": "us-east-1", "repo1-s3-uri-style": "path",
               "repo1-storage-verify-tls": False}
    inv = variant_inventory(tmp_path_factory.mktemp("s3"), "s3",
                            host_data={"db2": {"pgbackrest": options}})
    env = {"PGOPS_BACKUP_S3_KEY": key, "PGOPS_BACKUP_S3_KEY_SECRET": secret}
    try:
        deployed = pgops("deploy", "-i", str(inv), env=env)
        yield inv, env, key, secret, deployed
    finally:
        back = pgops("deploy", check=False)
        pgops("backup", "--type", "full", "--host", "db2", check=False)
        lab.ssh("backup1", "systemctl stop pgops-lab-s3 pgops-lab-s3-tls", check=False)
    assert back.rc == 0, back.out[-3000:]


def test_without_the_keys_the_deploy_is_refused_before_any_change(s3_repo):
    inv = s3_repo[0]
    r = pgops("deploy", "-i", str(inv), check=False,
              env={"PGOPS_BACKUP_S3_KEY": "", "PGOPS_BACKUP_S3_KEY_SECRET": ""})
    assert r.rc == 2 and "secret PGOPS_BACKUP_S3_KEY " in r.out, r.out[-2000:]


def test_backups_and_pitr_work_from_an_s3_repository(lab, s3_repo):
    inv, env, key, secret, deployed = s3_repo
    assert "Stanza db2" in deployed.out
    conf = lab.ssh("backup1", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    assert "repo1-type=s3" in conf and key not in conf and secret not in conf
    assert key not in deployed.out and secret not in deployed.out
    url = fresh_probe_table("db2")
    marker = f"pgops-s3-plaintext-{secrets.token_hex(8)}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("create table if not exists s3_marker (v text)")
        c.execute("insert into s3_marker select %s from generate_series(1, 200)", (marker,))
    lab.ssh("db2", "cd / && runuser -u postgres -- psql -XAtqc checkpoint")
    found = lab.ssh("db2", f"grep -rl {marker} /var/lib/postgresql/17/main/base | head -1").stdout
    assert found.strip()  # on disk in the cluster, so the check below could fail
    pgops("backup", "-i", str(inv), "--type", "full", "--host", "db2", env=env)
    w = Writer(url, 12, pause=0.2)
    w.run()
    assert w.error is None, w.error
    archive_all(lab, "db2")
    [st] = json.loads(pgops("backup", "list", "-i", str(inv), "--host", "db2", "--json", env=env).stdout)
    assert st["status"] == "ok" and st["backups"][-1]["type"] == "full"
    restores_exactly(lab, 7, str(w.gap_after(7)), "-i", str(inv), "--host", "db2", env=env)
    # The backup and WAL are in the bucket; WAL files are OpenSSL-encrypted and the marker
    # is in no object (pgBackRest encrypts bundled files one by one, inside the bundle).
    keys = json.loads(s3(lab, key, secret, "import json; print(json.dumps([o['Key'] for o in "
                                           f"c.list_objects_v2(Bucket='{BUCKET}')['Contents']]))"))
    assert any("/backup/db2/" in k for k in keys) and any("/archive/db2/" in k for k in keys), keys
    wal = [k for k in keys if "/archive/db2/" in k and k.endswith(".lz4")][:10]
    heads = s3(lab, key, secret, "import json; print(json.dumps([c.get_object(Bucket="
                                 f"'{BUCKET}', Key=k)['Body'].read(8).decode('latin1') for k in "
                                 f"{wal!r}]))")
    assert wal and set(json.loads(heads)) == {"Salted__"}, heads
    hits = s3(lab, key, secret, "print(sum(sys.argv[3].encode() in c.get_object(Bucket="
                                f"'{BUCKET}', Key=o['Key'])['Body'].read() for o in "
                                f"c.list_objects_v2(Bucket='{BUCKET}')['Contents']))", marker)
    assert hits.strip() == "0", hits
