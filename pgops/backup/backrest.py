"""pgBackRest configuration rendered from flat mappings of its own option names (pure).

Repository-host mode: backups run on the repository host over SSH to each database host;
each database host pushes WAL to the repository asynchronously. One stanza per database
host, named after it; one per Patroni cluster, named after the cluster, that knows every
member (pg1..pgN): pgBackRest backs up whichever is primary, and whichever is primary
archives, so backups follow the leader with no redeploy. The encryption passphrase lives
only on the repository host, in a file of its own. Local mode (pg_backup_host = "local"):
the database host keeps the repository itself (its disk, or S3), and so holds the
passphrase.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pgops.backup.rules import REPO_HOME
from pgops.server.cluster import Cluster
from pgops.settings import S3_KEY, S3_KEY_SECRET, Settings, SettingValue
from pgops.settings.secrets import shared_key_s3

REPO_USER = "pgbackrest"
CONF = "/etc/pgbackrest/pgbackrest.conf"
CONF_DIR = "/etc/pgbackrest/conf.d"
SECRETS_CONF = f"{CONF_DIR}/secrets.conf"
#: Where an earlier pgops kept the passphrase (removed on deploy).
OLD_CIPHER_CONF = f"{CONF_DIR}/cipher.conf"
LEGACY_CONF = "/etc/pgbackrest.conf"
SPOOL = "/var/spool/pgbackrest"
#: pg_backup_transport = "tls": the CA, this host's certificate and key (from pgops.pki).
TLS_DIR = "/etc/pgbackrest/tls"
TLS_FILES = {"ca": f"{TLS_DIR}/ca.crt", "cert": f"{TLS_DIR}/host.crt", "key": f"{TLS_DIR}/host.key"}
#: The systemd unit that runs `pgbackrest server` (pgBackRest's default port, 8432).
TLS_SERVICE = "pgops-pgbackrest-server.service"
LOG = "/var/log/pgbackrest"
#: pgops's scripts on a host (the timers' job runner, the archive wrapper).
LIB_DIR = "/usr/local/lib/pgops"
#: The archive_command's wrapper around archive-push, and its source here.
ARCHIVE_WAL = f"{LIB_DIR}/archive-wal"
ARCHIVE_WAL_SOURCE = Path(__file__).parent / "archive_wal.sh"
#: OpenSSH client settings for pgBackRest's connections (Debian's ssh_config includes these).
SSH_CLIENT_CONF = "/etc/ssh/ssh_config.d/pgops-pgbackrest.conf"
#: AES-GCM first: with the CPU's AES instructions it costs a fraction of OpenSSH's default
#: chacha20-poly1305, which stays as the fallback for a peer without AES-GCM.
SSH_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"
DIRS = (REPO_HOME, SPOOL, LOG)

#: A pgBackRest option's value: an inventory setting's, or a list for an option given once
#: per value (tls-server-auth).
OptionValue = SettingValue | list[str]
#: One pgbackrest.conf section: option name -> value.
Options = dict[str, OptionValue]

#: pgops's defaults for the repository host's [global]; `pgbackrest` in the inventory wins.
REPO_DEFAULTS: dict[str, SettingValue] = {
    "repo1-path": REPO_HOME,
    "repo1-cipher-type": "aes-256-cbc",
    "repo1-retention-full": 2,
    "repo1-retention-diff": 7,
    "repo1-bundle": True,
    # Block incremental: an incremental stores the changed blocks, not whole changed files
    # (bench/backup.py: 30 s of pgbench made a file-level incremental 95% of the database).
    "repo1-block": True,
    "compress-type": "lz4",
    "start-fast": True,
    "delta": True,
    "log-level-console": "info",
    "log-level-file": "detail",
}


def stanza(db_host: str, s: Settings) -> str:
    """A database host's stanza: its cluster's (shared by every member), else its own name."""
    return s.pg_ha_cluster or db_host


def command(stanza_name: str, args: str) -> str:
    """A pgBackRest command line for one stanza (stanza names are validated identifiers)."""
    return f"pgbackrest --stanza={stanza_name} {args}"


def archive_command(stanza_name: str) -> str:
    """archive-push behind ARCHIVE_WAL, which skips a past timeline's segment that holds
    none of the server's history (archive_wal.sh says why)."""
    return f"{ARCHIVE_WAL} %p {command(stanza_name, 'archive-push %p')}"


def by_stanza(dbs: Mapping[str, Settings]) -> dict[str, list[str]]:
    """stanza -> its database hosts (a cluster's members in inventory order)."""
    out: dict[str, list[str]] = {}
    for name, s in dbs.items():
        out.setdefault(stanza(name, s), []).append(name)
    return out


def _tls_server(auth: dict[str, list[str]]) -> Options:
    """The TLS server's options: which client CN (inventory name) may use which stanzas."""
    return {"tls-server-address": "*", "tls-server-ca-file": TLS_FILES["ca"],
            "tls-server-cert-file": TLS_FILES["cert"], "tls-server-key-file": TLS_FILES["key"],
            "tls-server-auth": [f"{cn}={','.join(st)}" for cn, st in sorted(auth.items())]}


def _tls_client(prefix: str) -> Options:
    return {f"{prefix}-host-type": "tls", f"{prefix}-host-ca-file": TLS_FILES["ca"],
            f"{prefix}-host-cert-file": TLS_FILES["cert"], f"{prefix}-host-key-file": TLS_FILES["key"]}


def _value(v: SettingValue) -> str:
    if isinstance(v, bool):
        return "y" if v else "n"
    return str(v)


def render(sections: Mapping[str, Options]) -> str:
    out = ["# Managed by pgops: edits here are overwritten on the next deploy.\n"]
    for name, options in sections.items():
        out.append(f"\n[{name}]\n")
        for k, v in options.items():  # a list: the option once per value (tls-server-auth)
            out.extend(f"{k}={_value(x)}\n" for x in (v if isinstance(v, list) else [v]))
    return "".join(out)


def repos(options: Mapping[str, OptionValue]) -> list[int]:
    """The repository indexes a host's options use (repo1 always: pgops's default)."""
    found = {int(m[1]) for k in options if (m := re.match(r"^repo(\d+)-", k))}
    return sorted(found | {1})


def _repository_options(s: Settings) -> Options:
    """A host's own `pgbackrest` options, every extra repository encrypted like repo1."""
    extra = {f"repo{n}-cipher-type": "aes-256-cbc" for n in repos(s.pgbackrest) if n > 1}
    return {**extra, **s.pgbackrest}


def _pg(i: int, s: Settings) -> Options:
    return {f"pg{i}-path": Cluster.of(s).data, f"pg{i}-port": s.pg_port}


def backup_process_max(db_cpus: int) -> int:
    """Processes for a backup from the repository host: pgBackRest compresses, checksums and
    encrypts where it reads, on the database host, so half that host's cores (at least 2 where
    it has them), the rest left to PostgreSQL."""
    return max(1, min(db_cpus, max(2, db_cpus // 2)))


def repo_conf(dbs: dict[str, tuple[str, Settings]], process_max: int,
              db_cpus: dict[str, int] | None = None) -> str:
    """The repository host's file: [global] with pgops's defaults, and one section per
    stanza with its own `pgbackrest` options (pgBackRest reads repository options per
    stanza, so one database host can keep its repository in S3 and another on disk) and its
    database hosts as pg1..pgN (a cluster's members), plus a `[stanza:backup]` section
    sizing backups to the smallest member's cores unless its options set process-max.

    + dbs: db host name -> (address the repository reaches it at, its settings)
    + process_max: the repository host's own commands (restores in drills, expire)
    + db_cpus: db host name -> its cores
    """
    sections: dict[str, Options] = {"global": {**REPO_DEFAULTS, "process-max": process_max}}
    groups = by_stanza({n: s for n, (_, s) in dbs.items()})
    tls = sorted(n for n, (_, s) in dbs.items() if s.pg_backup_transport == "tls")
    if tls:  # a TLS database host may restore any stanza here (--onto), as over SSH
        sections["global"].update(_tls_server({n: sorted(groups) for n in tls}))
    for st, members in sorted(groups.items()):
        first = dbs[members[0]][1]
        section: Options = dict(_repository_options(first))
        for i, name in enumerate(members, 1):
            address, s = dbs[name]
            section.update({f"pg{i}-host": address, f"pg{i}-host-user": "postgres", **_pg(i, s)})
            if s.pg_backup_transport == "tls":
                section.update(_tls_client(f"pg{i}"))
        sections[st] = section
        if db_cpus and all(m in db_cpus for m in members) and "process-max" not in first.pgbackrest:
            sections[f"{st}:backup"] = {
                "process-max": min(backup_process_max(db_cpus[m]) for m in members)}
    return render(sections)


def db_conf(name: str, s: Settings, repo_address: str, process_max: int) -> str:
    """A database host's file: where the repository is, and asynchronous WAL archiving."""
    return render({
        "global": {
            "repo1-host": repo_address,
            "repo1-host-user": REPO_USER,
            "archive-async": True,
            "spool-path": SPOOL,
            "process-max": process_max,
            "compress-type": s.pgbackrest.get("compress-type", REPO_DEFAULTS["compress-type"]),
            "log-level-console": "info",
            "log-level-file": "detail",
            **_db_tls(name, s),
        },
        stanza(name, s): _pg(1, s),
    })


def _db_tls(name: str, s: Settings) -> Options:
    """A TLS database host's options: a client of the repository host's TLS server, and a
    server that lets the repository host (by its certificate's CN) use its stanza."""
    if s.pg_backup_transport != "tls":
        return {}
    if s.pg_backup_host is None:  # load_settings refuses this; a hand-built Settings may not
        raise ValueError(f"{name}: pg_backup_transport 'tls' needs a repository host in pg_backup_host")
    return _tls_client("repo1") | _tls_server({s.pg_backup_host: [stanza(name, s)]})


def local_conf(name: str, s: Settings, process_max: int) -> str:
    """A database host that keeps its own repository (pg_backup_host = "local"): pgops's
    repository defaults, asynchronous archiving, and its `pgbackrest` options in its stanza."""
    return render({
        "global": {**REPO_DEFAULTS, "process-max": process_max, "archive-async": True,
                   "spool-path": SPOOL},
        stanza(name, s): {**_repository_options(s), **_pg(1, s)},
    })


def secrets_conf(dbs: dict[str, Settings]) -> str:
    """The repository host's secrets file: the cipher passphrase (one for every repository)
    and, per stanza, the keys of its S3 repositories. Only the repository host holds it."""
    first = next(iter(dbs.values()))
    sections: dict[str, Options] = {"global": {"repo1-cipher-pass": first.cipher_pass}}
    for st, members in sorted(by_stanza(dbs).items()):
        s = dbs[members[0]]
        sec: Options = {}
        for n in repos(s.pgbackrest):
            if n > 1:
                sec[f"repo{n}-cipher-pass"] = s.cipher_pass
            if shared_key_s3(s.pgbackrest, n):
                sec[f"repo{n}-s3-key"] = s.secrets[S3_KEY].get_secret_value()
                sec[f"repo{n}-s3-key-secret"] = s.secrets[S3_KEY_SECRET].get_secret_value()
        if sec:
            sections[st] = sec
    return render(sections)


def authorized_key(public_key: str) -> str:
    """An authorized_keys line that lets the peer run pgbackrest and nothing else."""
    forced = 'command="/usr/bin/pgbackrest ${SSH_ORIGINAL_COMMAND#* }"'
    return f"{forced},no-agent-forwarding,no-X11-forwarding,no-port-forwarding {public_key.strip()}"


def ssh_client_conf(user: str, peers: list[str]) -> str:
    """ssh_config lines that make `user`'s connections to pgBackRest's peers (names and
    addresses) prefer AES-GCM; other users' and other hosts' connections are untouched."""
    return ("# Managed by pgops: pgBackRest's SSH connections prefer AES-GCM (this host's CPU\n"
            "# has AES instructions; bench/backup.py measured the cipher's CPU).\n"
            f"Match localuser {user} host {','.join(sorted(set(peers)))}\n"
            f"    Ciphers {SSH_CIPHERS}\n")


def known_host(names: list[str], host_key: str) -> str:
    keytype, key = host_key.split()[:2]
    return f"{','.join(names)} {keytype} {key}"
