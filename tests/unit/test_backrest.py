"""pgBackRest configuration rendering: real option names, one stanza per host, secrets apart."""

import pytest

from pgops.backup import backrest, rules
from pgops.errors import ConfigError
from pgops.settings import load_settings


def settings(**over):
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1", **over}
    return load_settings("db1", data, environ={
        "PGOPS_BACKUP_CIPHER_PASS": "s3cret-pass", "PGOPS_PATRONI_API_PASSWORD": "api",
        "PGOPS_ROLE_PGBOUNCER_PASSWORD": "pool",
        "PGOPS_ROLE_REPLICATOR_PASSWORD": "r", "PGOPS_ROLE_REWINDER_PASSWORD": "w"})


def parse(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
        elif "=" in line and section:
            k, v = line.split("=", 1)
            out[section][k] = v
    return out


def test_repo_conf_has_defaults_user_overrides_and_a_stanza_per_host():
    s1 = settings(pgbackrest={"repo1-retention-full": 4, "compress-type": "zst"})
    s2 = settings(pg_port=5433)
    conf = parse(backrest.repo_conf({"db1": ("10.0.0.11", s1), "db2": ("10.0.0.12", s2)}, 3))
    g = conf["global"]
    assert g["repo1-cipher-type"] == "aes-256-cbc" and g["process-max"] == "3"
    assert g["repo1-retention-full"] == "2" and g["compress-type"] == "lz4"
    assert g["start-fast"] == "y" and g["repo1-path"] == rules.REPO_HOME
    assert "repo1-cipher-pass" not in g  # the passphrase has a file of its own
    # Each host's own options go to its stanza: they override [global] for it alone.
    assert conf["db1"] == {"repo1-retention-full": "4", "compress-type": "zst",
                           "pg1-host": "10.0.0.11", "pg1-host-user": "postgres",
                           "pg1-path": "/var/lib/postgresql/17/main", "pg1-port": "5432"}
    assert conf["db2"]["pg1-port"] == "5433" and "compress-type" not in conf["db2"]


S3 = {"repo2-type": "s3", "repo2-path": "/pgops", "repo2-s3-bucket": "b",
      "repo2-s3-endpoint": "s3.example.net", "repo2-s3-region": "eu-west-1"}
S3_ENV = {"PGOPS_BACKUP_CIPHER_PASS": "s3cret-pass", "PGOPS_BACKUP_S3_KEY": "AKIA1",
          "PGOPS_BACKUP_S3_KEY_SECRET": "shh"}


def test_an_s3_repository_is_encrypted_and_its_keys_are_kept_with_the_secrets():
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1",
            "pgbackrest": S3}
    s3 = load_settings("db1", data, environ=S3_ENV)
    conf = parse(backrest.repo_conf({"db1": ("10.0.0.11", s3), "db2": ("10.0.0.12", settings())}, 1))
    assert conf["db1"]["repo2-type"] == "s3" and conf["db1"]["repo2-cipher-type"] == "aes-256-cbc"
    assert "repo2-type" not in conf["db2"]
    text = backrest.repo_conf({"db1": ("10.0.0.11", s3)}, 1)
    assert "AKIA1" not in text and "shh" not in text
    secrets = parse(backrest.secrets_conf({"db1": s3, "db2": settings()}))
    assert secrets["global"] == {"repo1-cipher-pass": "s3cret-pass"}
    assert secrets["db1"] == {"repo2-cipher-pass": "s3cret-pass", "repo2-s3-key": "AKIA1",
                              "repo2-s3-key-secret": "shh"}
    assert "db2" not in secrets


def test_an_s3_repository_needs_its_keys_and_location():
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1",
            "pgbackrest": S3}
    with pytest.raises(ConfigError) as e:
        load_settings("db1", data, environ={"PGOPS_BACKUP_CIPHER_PASS": "x"})
    assert "PGOPS_BACKUP_S3_KEY " in str(e.value) and "PGOPS_BACKUP_S3_KEY_SECRET" in str(e.value)
    with pytest.raises(ConfigError, match="repo2-type: s3 needs repo2-s3-endpoint"):
        settings(pgbackrest={k: v for k, v in S3.items() if k != "repo2-s3-endpoint"})
    with pytest.raises(ConfigError, match="repo1-type: 'gcs': pgops deploys posix and s3"):
        settings(pgbackrest={"repo1-type": "gcs"})
    with pytest.raises(ConfigError, match="repo2-s3-key-secret is a secret"):
        settings(pgbackrest={"repo2-s3-key-secret": "oops"})


def test_an_s3_repository_with_instance_credentials_needs_no_keys():
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1",
            "pgbackrest": {**S3, "repo2-s3-key-type": "auto"}}
    s3 = load_settings("db1", data, environ={"PGOPS_BACKUP_CIPHER_PASS": "s3cret-pass"})
    assert parse(backrest.secrets_conf({"db1": s3}))["db1"] == {"repo2-cipher-pass": "s3cret-pass"}
    assert parse(backrest.repo_conf({"db1": ("10.0.0.11", s3)}, 1))["db1"]["repo2-s3-key-type"] == "auto"


def test_backups_are_sized_to_the_database_hosts_cores_unless_set():
    conf = parse(backrest.repo_conf({"db1": ("10.0.0.11", settings()),
                                     "db2": ("10.0.0.12", settings(pgbackrest={"process-max": 3}))},
                                    2, {"db1": 16, "db2": 16}))
    assert conf["global"]["process-max"] == "2" and conf["db1:backup"] == {"process-max": "8"}
    assert "db2:backup" not in conf and conf["db2"]["process-max"] == "3"
    assert [backrest.backup_process_max(n) for n in (1, 2, 3, 4, 8, 32)] == [1, 2, 2, 2, 4, 16]


def test_db_conf_points_at_the_repository_and_archives_asynchronously():
    conf = parse(backrest.db_conf("db1", settings(), "10.0.0.20", 2))
    assert conf["global"]["repo1-host"] == "10.0.0.20"
    assert conf["global"]["repo1-host-user"] == backrest.REPO_USER
    assert conf["global"]["archive-async"] == "y" and conf["global"]["spool-path"] == backrest.SPOOL
    assert conf["db1"]["pg1-path"] == "/var/lib/postgresql/17/main"
    assert "s3cret-pass" not in backrest.db_conf("db1", settings(), "10.0.0.20", 2)


def test_secrets_conf_and_archive_command():
    assert parse(backrest.secrets_conf({"db1": settings()})) == {
        "global": {"repo1-cipher-pass": "s3cret-pass"}}
    assert backrest.archive_command("db1") == \
        "/usr/local/lib/pgops/archive-wal %p pgbackrest --stanza=db1 archive-push %p"


def test_authorized_key_forces_pgbackrest_only():
    line = backrest.authorized_key("ssh-ed25519 AAAAkey user@host\n")
    assert line.startswith('command="/usr/bin/pgbackrest ${SSH_ORIGINAL_COMMAND#* }",')
    assert "no-port-forwarding" in line and line.endswith("ssh-ed25519 AAAAkey user@host")


def test_known_host_line():
    assert backrest.known_host(["10.0.0.1", "db1"], "ssh-ed25519 AAAA root@db1") == \
        "10.0.0.1,db1 ssh-ed25519 AAAA"


def test_cipher_pass_is_refused_in_the_inventory():
    import pytest

    from pgops.errors import ConfigError

    with pytest.raises(ConfigError, match="is a secret"):
        settings(pgbackrest={"repo1-cipher-pass": "oops"})


def test_tls_transport_renders_servers_and_clients_on_both_sides():
    tls = settings(pg_backup_transport="tls")
    text = backrest.repo_conf({"db1": ("10.0.0.11", tls), "db2": ("10.0.0.12", settings())}, 2)
    assert text.count("tls-server-auth=") == 1 and "tls-server-auth=db1=db1,db2\n" in text
    conf = parse(text)
    assert conf["db1"]["pg1-host-type"] == "tls"
    assert conf["db1"]["pg1-host-key-file"] == backrest.TLS_FILES["key"]
    assert "pg1-host-type" not in conf["db2"]  # db2 stays on SSH
    db = parse(backrest.db_conf("db1", tls, "10.0.0.20", 2))["global"]
    assert db["repo1-host-type"] == "tls" and db["tls-server-auth"] == "backup1=db1"
    assert "tls-server-auth" not in parse(backrest.db_conf("db2", settings(), "10.0.0.20", 2))["global"]


def test_tls_transport_needs_a_repository_host():
    with pytest.raises(ConfigError, match="pg_backup_transport: 'tls' needs a repository host"):
        settings(pg_backup_transport="tls", pg_backup_host="local")


def test_pki_issues_once_and_reissues_when_names_change(tmp_path):
    from cryptography import x509

    from pgops import pki
    first = pki.host_files(tmp_path, "db1", ["db1", "10.0.0.11"])
    assert pki.host_files(tmp_path, "db1", ["10.0.0.11", "db1"]) == first
    assert all((tmp_path / f).stat().st_mode & 0o077 == 0 for f in ("ca.key", "db1.key"))
    moved = pki.host_files(tmp_path, "db1", ["db1", "10.0.0.99"])
    assert moved["cert"] != first["cert"] and moved["ca"] == first["ca"]
    cert = x509.load_pem_x509_certificate(moved["cert"].encode())
    assert cert.subject.rfc4514_string() == "CN=db1"
    assert "10.0.0.99" in str(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def test_ssh_client_conf_prefers_aes_gcm_for_the_pgbackrest_user_and_its_peers_only():
    text = backrest.ssh_client_conf("pgbackrest", ["db1", "10.0.0.11", "db1"])
    match, ciphers = [line.strip() for line in text.splitlines() if not line.startswith("#")]
    assert match == "Match localuser pgbackrest host 10.0.0.11,db1"
    assert ciphers.split(" ", 1) == ["Ciphers", backrest.SSH_CIPHERS]
    assert backrest.SSH_CIPHERS.startswith("aes128-gcm@openssh.com,")
    assert backrest.SSH_CIPHERS.endswith(",chacha20-poly1305@openssh.com")  # the fallback


def test_a_cluster_is_one_stanza_that_knows_every_member_so_backups_follow_the_leader():
    members = {n: settings(pg_ha_cluster="main") for n in ("db1", "db2", "db3")}
    addr = {"db1": "10.0.0.11", "db2": "10.0.0.12", "db3": "10.0.0.13"}
    conf = parse(backrest.repo_conf({n: (addr[n], s) for n, s in members.items()}, 2,
                                    {"db1": 4, "db2": 2, "db3": 4}))
    assert set(conf) == {"global", "main", "main:backup"}
    for i, n in enumerate(("db1", "db2", "db3"), 1):
        assert conf["main"][f"pg{i}-host"] == addr[n]
        assert conf["main"][f"pg{i}-path"] == "/var/lib/postgresql/17/main"
    assert conf["main:backup"]["process-max"] == "2"  # the smallest member's share
    member = parse(backrest.db_conf("db2", members["db2"], "10.0.0.20", 1))
    assert member["main"] == {"pg1-path": "/var/lib/postgresql/17/main", "pg1-port": "5432"}
    assert backrest.archive_command(backrest.stanza("db2", members["db2"])) == \
        "/usr/local/lib/pgops/archive-wal %p pgbackrest --stanza=main archive-push %p"
    assert backrest.by_stanza({**members, "solo": settings()}) == {
        "main": ["db1", "db2", "db3"], "solo": ["solo"]}
