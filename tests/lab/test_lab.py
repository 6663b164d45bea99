"""`pgops lab up/status/down` on a second, throwaway lab beside the session's one."""

from __future__ import annotations

import json
import subprocess

from tests.lab.conftest import pgops

PROBE = {"PGOPS_LAB": "probe"}


def test_lab_up_status_down(lab):
    pgops("lab", "up", "--hosts", "1", "--no-backup", env=PROBE)
    try:
        st = json.loads(pgops("lab", "status", "--json", env=PROBE).stdout)
        assert st["lab"] == "probe" and st["network"] == "pgops-probe"
        assert st["firewall_rules"] == 5
        [host] = st["hosts"]
        assert host["name"] == "db1" and host["state"] == "running"
        assert host["address"].startswith(st["subnet"].rsplit(".", 1)[0] + ".")
        assert host["ssh_user"] == "root" and host["ssh_key"].endswith("/ssh/id_ed25519")
        # Strict host key checking against the key recorded at boot works.
        r = subprocess.run(
            ["ssh", "-i", host["ssh_key"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={host['ssh_key'].rsplit('/', 1)[0]}/known_hosts",
             f"root@{host['address']}", "systemctl is-system-running"],
            capture_output=True, text=True, timeout=30,
        )
        assert r.stdout.strip() in ("running", "degraded"), r.stderr
    finally:
        pgops("lab", "down", env=PROBE)
    st = json.loads(pgops("lab", "status", "--json", env=PROBE).stdout)
    assert st["hosts"] == [] and st["network"] is None and st["firewall_rules"] == 0
    # The session's lab is untouched, and so is the engine it runs on.
    assert lab.network_exists() and [h.name for h in lab.hosts()] == ["db1", "db2", "backup1"]


def test_commands_refuse_a_lab_that_is_not_up():
    run = pgops("deploy", env={"PGOPS_LAB": "nolab"}, check=False)
    assert run.rc == 2
    assert "the lab 'nolab' is not up: run `pgops lab up`" in run.out
