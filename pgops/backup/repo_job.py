#!/usr/bin/python3
"""pgops's scheduled jobs on a pgBackRest repository host, run by systemd timers that
`pgops deploy` installs (pg_backup_timers). Standard library only (the host has no pgops):
it imports rules.py, installed beside it, so it judges health by `pgops status`'s rules and
thresholds (WAL by max_wal_age_s and `pgbackrest check`: this host sees no pg_stat_archiver).

    pgops-repo-job full|diff|incr|drill|status STANZA

One JSON line per run on stdout (the journal); exit 1 on failure, so the unit fails and
`systemctl --failed` or an OnFailure= hook alerts. Backups and drills never overlap: they
take one lock per repository host (pgBackRest also refuses two backups of a stanza).

The drill restores the latest point on this host itself, into a scratch directory (no load
on the database host), starts it with this host's PostgreSQL binaries, runs pg_amcheck,
records the RTO where `pgops status` reads drills, and always removes the copy.
"""

import fcntl
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import time

if __package__:  # imported from the pgops package (tests)
    from pgops.backup import rules
else:  # run as a script on the repository host, installed beside rules.py
    import rules  # type: ignore[no-redef]

LOCK = f"{rules.REPO_HOME}/pgops-jobs.lock"
SCRATCH = f"{rules.REPO_HOME}/pgops-drill-scratch"


def sh(*args, timeout=6 * 3600):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd="/")
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed: {(r.stderr or r.stdout).strip()[-1500:]}")
    return r.stdout


def pgbackrest(stanza, *args, timeout=6 * 3600):
    return sh("pgbackrest", f"--stanza={stanza}", *args, timeout=timeout)


def info(stanza):
    raw = json.loads(pgbackrest(stanza, "--output=json", "info", timeout=120))
    return raw[0] if raw else {}


def backup(stanza, kind):
    pgbackrest(stanza, f"--type={kind}", "backup")
    last = info(stanza)["backup"][-1]
    return {"label": last["label"], "type": last["type"], "size": last["info"]["size"]}


def newest_wal_time(stanza):
    def ls(path):
        return json.loads(pgbackrest(stanza, "--output=json", "repo-ls", path, timeout=120))

    return rules.newest_wal_time(ls, stanza)


def status(stanza, thresholds=None):
    """Backup ages, the newest archived WAL's age and the last drill, judged by the rules
    `pgops status` uses (exit 1 past the thresholds). This host sees no pg_stat_archiver:
    when no WAL has been archived within max_wal_age_s, it proves archiving with
    `pgbackrest check`, and alerts only if that fails."""
    t = thresholds or rules.Thresholds.from_env(os.environ)
    st = info(stanza)
    now = time.time()
    ages = rules.backup_ages(st.get("backup", []), now)
    wal_time = newest_wal_time(stanza)
    wal_age = round(now - wal_time) if wal_time else None
    alerts = rules.age_alerts(ages, t)
    if wal_age is None or wal_age > t.max_wal_age_s:
        # An idle database archives nothing (no archive_timeout switch without WAL worth it):
        # prove archiving end to end instead (a WAL switch, archived and found) before alerting.
        try:
            pgbackrest(stanza, "check", timeout=300)
            wal_age = 0
        except RuntimeError as e:
            alerts.append(f"no WAL archived within {t.max_wal_age_s} s and check fails: {e}")
    alerts += rules.drill_alerts(rules.last_drill(_tail(rules.drill_log(stanza))))
    if (st.get("status") or {}).get("code", 1) != 0:
        alerts.append(f"stanza: {(st.get('status') or {}).get('message')}")
    result = {"backup_age_s": ages, "last_wal_age_s": wal_age, "alerts": alerts}
    if alerts:
        raise RuntimeError(json.dumps(result))
    return result


def _tail(path):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return ""
    return lines[-1] if lines else ""


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("no PostgreSQL binaries on this host (pgops deploy installs them for drills)")
    return os.path.dirname(found[-1])


def drill(stanza):
    """Restore the end of the archive to scratch, promote, pg_amcheck; record and clean up."""
    bindir, data = _bindir(), f"{SCRATCH}/{stanza}"
    entry = rules.new_drill(stanza, "latest", "end of archive", at=time.time(),
                            where=os.uname().nodename)
    t0 = time.monotonic()
    started = False
    try:
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data, mode=0o700)
        pgbackrest(stanza, f"--pg1-path={data}", "--reset-pg1-host", "--archive-mode=off",
                   "--type=default", "restore")
        port = "55432"
        with open(f"{data}/postgresql.conf", "w") as f:
            f.write(f"port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{data}'\n"
                    "shared_buffers = '64MB'\narchive_mode = off\n"
                    + rules.recovery_limits_conf(sh(f"{bindir}/pg_controldata", data)))
        with open(f"{data}/pg_hba.conf", "w") as f:
            f.write("local all all peer map=drill\n")
        with open(f"{data}/pg_ident.conf", "w") as f:
            f.write(f"drill {pwd.getpwuid(os.getuid()).pw_name} postgres\n")
        sh(f"{bindir}/pg_ctl", "-D", data, "-l", f"{data}/drill.log", "-w", "-t", "3600", "start")
        started = True
        psql = [f"{bindir}/psql", "-XAtq", "-h", data, "-p", port, "-U", "postgres", "-d", "postgres"]
        while sh(*psql, "-c", "select pg_is_in_recovery()").strip() == "t":
            time.sleep(0.2)
        entry["rto_s"] = round(time.monotonic() - t0, 2)
        amcheck = subprocess.run([f"{bindir}/pg_amcheck", "-h", data, "-p", port, "-U", "postgres",
                                  "--all", "--install-missing", "--heapallindexed"],
                                 capture_output=True, text=True)
        entry["amcheck"] = rules.amcheck_result(amcheck.returncode, amcheck.stdout + amcheck.stderr)
        entry["databases"] = sh(*psql, "-c", "select count(*) from pg_database where datallowconn").strip()
        entry["ok"] = entry["amcheck"] == "ok"
    except Exception as e:  # recorded as a failed drill, then re-raised
        entry.update(ok=False, error=str(e)[-1500:])
    finally:
        if started:
            subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
        entry["cleaned_up"] = True
        os.makedirs(rules.DRILL_DIR, exist_ok=True)
        with open(rules.drill_log(stanza), "a") as f:
            f.write(rules.drill_line(entry))
    if not entry["ok"]:
        raise RuntimeError(entry.get("error") or f"pg_amcheck: {entry['amcheck']}")
    return {"rto_s": entry["rto_s"], "amcheck": "ok"}


def main(argv):
    if len(argv) != 3 or argv[1] not in rules.JOBS:
        print(f"usage: pgops-repo-job {'|'.join(rules.JOBS)} STANZA", file=sys.stderr)
        return 2
    job, stanza = argv[1], argv[2]
    record = {"job": job, "stanza": stanza, "started": time.time()}
    try:
        if job == "status":
            record["result"] = status(stanza)
        else:
            with open(LOCK, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # never overlap: wait for the running job
                record["waited_s"] = round(time.time() - record["started"], 3)
                record["result"] = drill(stanza) if job == "drill" else backup(stanza, job)
        record["ok"] = True
    except Exception as e:  # reported as one line; the unit fails
        record.update(ok=False, error=f"{e.__class__.__name__}: {str(e).strip()[:2000]}")
    record["seconds"] = round(time.time() - record["started"], 3)
    print(json.dumps(record), flush=True)
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
