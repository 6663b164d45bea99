"""Copies restored beside the live cluster: their names and ports, their making (pgBackRest
restores into a new directory, then pg_createcluster adopts it), their removal, and the sweep
of what killed runs left. Only `restore_*` clusters are ever touched here: never the live one.

A copy's conf directory is made first and holds, while the copy is being made, the port it
will take (`pgops-port`: the next plan skips it, until it is a cluster) and a mark naming the
run (`pgops-scratch`: a killed run's is swept). A user's copy loses its mark once it runs and
is verified (kept()); a transient one (a drill's, a tenant restore's) keeps it until its run
removes it."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import socket
from collections.abc import Callable
from pathlib import Path

from pgops.backup import rules
from pgops.remote import run
from pgops.server import pgconf
from pgops.server.cluster import Cluster
from pgops.settings import Settings

PREFIX = "restore_"
_NAME = re.compile(rf"{PREFIX}\d+(_\d+)?")  # restore_STAMP_PID (restore_STAMP before 12/2026)
_OLD_NAME = re.compile(rf"{PREFIX}\d+")


def name(now: dt.datetime, pid: int) -> str:
    """A copy's cluster name: the time it was made, and the process making it (two runs in
    one second, a timer's drill and a user's, get two names)."""
    return f"{PREFIX}{now:%Y%m%d%H%M%S}_{pid}"


def is_copy(cluster: str) -> bool:
    return bool(_NAME.fullmatch(cluster))


#: A transient copy's access (a drill's, a tenant restore's): Debian's default, local peer and
#: loopback with a password; TLS with the snakeoil certificate where the owner can read it.
_LOCAL_HBA = ("local all postgres peer\nlocal all all peer\n"
              "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")
_SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")


#: Port reserved by a copy being made (a file in its conf directory), until it is a cluster.
PORT_FILE = "pgops-port"
FIRST_PORT = 5433
SPOOL_DIR = "pgops-spool"  # in a copy's data directory: its own pgBackRest spool
_LOCK_ROOT = "/tmp/pgbackrest"  # pgBackRest's default lock path, where it makes its own
LOCK_SECONDS = 60  # the choice of a port and its reservation take the host's copies' lock
#: Lines of the host's live configuration a copy takes, as initdb chose them for the host.
_LOCALE = ("datestyle", "lc_messages", "lc_monetary", "lc_numeric", "lc_time",
           "default_text_search_config", "timezone", "log_timezone")


def _first_free(major: int, start: int) -> str:
    """Shell setting $p: the first port from `start` no cluster of the host uses and no copy
    being made has reserved."""
    return (f"ls=$(pg_lsclusters -h) && used=$({{ printf '%s\\n' \"$ls\" | awk '{{print $3}}'; "
            f"cat /etc/postgresql/{major}/{PREFIX}*/{PORT_FILE} 2>/dev/null || true; }}) && p={start} && "
            f"while printf '%s\\n' \"$used\" | grep -qx \"$p\"; do p=$((p + 1)); done")


def free_port(h, major: int, start: int = FIRST_PORT) -> int:
    """The port a copy planned now would take (the copy takes the first free one when it is
    made: another may have been made meanwhile)."""
    return int(run(h, f"{_first_free(major, start)} && echo $p").strip())


def access(s: Settings) -> tuple[str, str]:
    """A user's copy (`pgops restore`), which applications may be pointed at: the target
    host's listen addresses, TLS and pg_hba.conf as pgops deploys them, with the host's own
    overrides of those settings (postgresql.conf lines, pg_hba.conf). Not its memory
    settings: the copy runs beside the live cluster."""
    values = pgconf.access(s)
    values.update({k: v for k, v in s.pg_settings.items() if k in values or k.startswith("ssl")})
    lines = "".join(f"{k} = {pgconf.quote(v)}\n" for k, v in values.items())
    hba = pgconf.render_hba(s).replace(pgconf.HEADER, "# A copy restored by pgops: its host's "
                                                      "access as pgops deployed it.\n")
    return lines, hba


def _config_files(data: str, live: Cluster, conf: tuple[str, str] | None) -> str:
    """Shell: a restored data directory's postgresql.conf, pg_hba.conf and pg_ident.conf, for
    pg_createcluster to adopt (it adds the paths, port, socket and createcluster.conf's options,
    conf.d included). What the source's own held, Patroni's for a member, is overwritten: the
    copy is configured here. Time zone, locale and date style as the host's live cluster has
    them (initdb chose them; the host's time zone without one); conf: access(), or None for
    a local-only copy (Debian's default access, TLS with the snakeoil certificate where the
    owner can read it)."""
    pattern = "|".join(_LOCALE)
    base = (f"tz=$(readlink -f /etc/localtime | sed -n 's|^/usr/share/zoneinfo/||p') && "
            f"{{ printf \"# a copy restored by pgops\\ntimezone = '%s'\\nlog_timezone = '%s'\\n\" "
            f"\"${{tz:-UTC}}\" \"${{tz:-UTC}}\"; grep -hE '^({pattern})[[:space:]]*=' "
            f"{live.etc}/postgresql.base.conf {live.etc}/postgresql.conf 2>/dev/null; true; }} "
            f"> {data}/postgresql.conf")
    if conf:
        lines, hba = conf
        tls = f"printf '%s' {shlex.quote(lines)} >> {data}/postgresql.conf"
    else:
        cert, key, hba = *_SNAKEOIL, _LOCAL_HBA
        tls = (f"if [ -e {cert} ] && runuser -u postgres -- test -r {key}; then printf "
               f"\"ssl = on\\nssl_cert_file = '{cert}'\\nssl_key_file = '{key}'\\n\" "
               f">> {data}/postgresql.conf; fi")
    return (f"{base} && {tls} && printf '%s' {shlex.quote(hba)} > {data}/pg_hba.conf && "
            f": > {data}/pg_ident.conf")


def create_and_restore(c: Cluster, restore_command: str, live: Cluster, mark: str,
                       conf: tuple[str, str] | None = None, start: int = FIRST_PORT) -> str:
    """One shell command: the copy's conf directory, with its port chosen and reserved under
    a lock (two copies made at once take two ports) and its run marked, and its data
    directory; the pgBackRest restore into it; then the Debian cluster made around it by
    pg_createcluster adopting the directory. It prints `pgops-port=PORT` (parse_port). No
    initdb: it took 1-1.5 s of a small restore's RTO, and beside a large one CPU from the
    restore (bench/pitr_rto.py). A name taken fails first and removes nothing; any later
    failure removes what this command made.
    live: the host's cluster (its locale); mark: this run's (this_run()); conf: a user's
    copy's access (access()), handed over by kept() once it runs; None: a transient copy,
    local only, marked until its run removes it."""
    if not is_copy(c.name):  # never the live cluster
        raise ValueError(f"not a copy: {c.name}")
    data, etc = c.data, c.etc
    # Made with start.conf manual, so pg_createcluster skips its `systemctl daemon-reload`
    # (systemd starts a postgresql@ instance without one), and marked: kept() hands a user's
    # copy over once it runs. The lock is the conf root's directory (root's: no other user
    # can take its place).
    return (f"{{ flock -w {LOCK_SECONDS} 9 && {_first_free(c.major, start)} && mkdir {etc} && "
            f"{{ {{ printf '%s' {shlex.quote(mark)} > {etc}/{rules.SCRATCH_MARK} && "
            f"echo $p > {etc}/{PORT_FILE}; }} || {{ rm -rf {etc}; false; }}; }}; }} "
            f"9</etc/postgresql/{c.major} && "
            f"{{ mkdir -m 700 {data} || {{ rm -rf {etc}; false; }}; }} && "
            f"{{ ( chown postgres:postgres {data} && "
            f"runuser -u postgres -- {restore_command} --archive-mode=off restore && "
            f"[ -f {data}/PG_VERSION ] && {_config_files(data, live, conf)} && "
            f"pg_createcluster {c.major} {c.name} --port $p -d {data} --start-conf manual "
            f">/dev/null && rm -f {etc}/{PORT_FILE} ) || {{ {remove(c)}; false; }}; }} && "
            f"echo pgops-port=$p")


def kept(c: Cluster) -> str:
    """Shell: a user's copy, running and verified, handed over: unmarked (no sweep removes
    it) and started with the host. Until then a failed or interrupted restore's copy is
    swept like a transient one."""
    if not is_copy(c.name):
        raise ValueError(f"not a copy: {c.name}")
    return f"rm -f {c.etc}/{rules.SCRATCH_MARK} && echo auto > {c.etc}/start.conf"


def parse_port(output: str) -> int:
    """The port create_and_restore's copy took, from its output."""
    found = re.findall(r"^pgops-port=(\d+)$", output, re.MULTILINE)
    if not found:
        raise ValueError(f"no port in the copy's creation output: {output[-500:]!r}")
    return int(found[-1])


def controller() -> str:
    """This machine: its hostname and, where it has one, its machine id (two containers or
    runners may share a hostname; a copy another machine's run is using must never look
    like one of ours)."""
    try:
        machine = Path("/etc/machine-id").read_text().strip()[:12]
    except OSError:
        machine = ""
    return f"{socket.gethostname()}@{machine}" if machine else socket.gethostname()


def this_run() -> str:
    """The scratch mark of this process on this machine."""
    return rules.scratch_mark(controller(), os.getpid())


def backrest_paths(data: str, name: str) -> str:
    """pgBackRest options of a copy's restore, carried into its restore_command: its own
    spool and lock paths. The asynchronous archive-get of the host's live cluster and of
    every other copy of the same stanza take `<lock-path>/<stanza>-archive.lock` and share
    one spool queue: a second copy recovering at once waited 60 s for WAL and failed. The
    spool (up to a queue of prefetched WAL) is in the data directory, so pg_dropcluster
    removes it; the lock path is a directory of /tmp."""
    return f"--spool-path={data}/{SPOOL_DIR} --lock-path={_LOCK_ROOT}/{name}"


def remove(c: Cluster) -> str:
    """A copy, all of it, made or half-made: pg_dropcluster leaves a conf directory that holds
    files it does not know (the mark), and a copy killed while restoring is no cluster yet
    (and one made before 12/2026 may have left a throwaway initdb directory, `.init`)."""
    if not is_copy(c.name):  # never the live cluster
        raise ValueError(f"not a copy: {c.name}")
    return (f"pg_dropcluster {c.major} {c.name} --stop 2>/dev/null; "
            f"rm -rf {c.etc} {c.data} {c.data}.init {_LOCK_ROOT}/{c.name}")


def sweep(h, major: int, say: Callable[[str], None]) -> None:
    """Remove the copies that killed runs of this controller left on a host, made or half-made
    (each holds a server's memory and a database's disk); name the ones another run may be
    using. A transient copy dropped by hand leaves its mark: removed the same way."""
    found = run(h, f"for m in /etc/postgresql/{major}/{PREFIX}*/{rules.SCRATCH_MARK}; do "
                   '[ -f "$m" ] && printf \'%s:%s\\n\' "$m" "$(cat "$m")"; done; true')
    marks = {line.split("/")[4]: line.partition(":")[2]  # /etc/postgresql/MAJOR/CLUSTER/MARK:text
             for line in found.splitlines() if line.count("/") >= 5}
    marks = {k: v for k, v in marks.items() if is_copy(k)}
    old = {k: v for k, v in marks.items() if _OLD_NAME.fullmatch(k)}  # marked by hostname alone
    gone, left = rules.stale_scratch({k: v for k, v in marks.items() if k not in old},
                                     controller(), _alive)
    gone_old, left_old = rules.stale_scratch(old, socket.gethostname(), _alive)
    for cluster in gone + gone_old:
        say(f"removing {major}/{cluster} on {h.name}: a copy left by a killed run")
        run(h, remove(Cluster(major, cluster)))
    for cluster in left + left_old:
        say(f"{major}/{cluster} on {h.name} is another run's copy ({marks[cluster].strip()}): "
            "left alone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
