"""pgBackRest configuration rendering: real option names, one stanza per host, secrets apart."""

from pgops import backrest
from pgops.config import load_settings


def settings(**over):
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1", **over}
    return load_settings("db1", data, environ={"PGOPS_BACKUP_CIPHER_PASS": "s3cret-pass"})


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
    assert g["repo1-retention-full"] == "4" and g["compress-type"] == "zst"
    assert g["start-fast"] == "y" and g["repo1-path"] == backrest.REPO_HOME
    assert "repo1-cipher-pass" not in g  # the passphrase has a file of its own
    assert conf["db1"] == {"pg1-host": "10.0.0.11", "pg1-host-user": "postgres",
                           "pg1-path": "/var/lib/postgresql/17/main", "pg1-port": "5432"}
    assert conf["db2"]["pg1-port"] == "5433"


def test_db_conf_points_at_the_repository_and_archives_asynchronously():
    conf = parse(backrest.db_conf("db1", settings(), "10.0.0.20", 2))
    assert conf["global"]["repo1-host"] == "10.0.0.20"
    assert conf["global"]["repo1-host-user"] == backrest.REPO_USER
    assert conf["global"]["archive-async"] == "y" and conf["global"]["spool-path"] == backrest.SPOOL
    assert conf["db1"]["pg1-path"] == "/var/lib/postgresql/17/main"
    assert "s3cret-pass" not in backrest.db_conf("db1", settings(), "10.0.0.20", 2)


def test_cipher_conf_and_archive_command():
    assert backrest.cipher_conf("p") == "[global]\nrepo1-cipher-pass=p\n"
    assert backrest.archive_command("db1") == "pgbackrest --stanza=db1 archive-push %p"


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
