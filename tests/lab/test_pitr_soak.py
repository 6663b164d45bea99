"""The small sample of bench/pitr_soak.py that CI runs, on the shared lab: a full backup under
a writer, random targets between commits, each restore exact to the row (the soak itself adds
incremental and differential backups; test_restore.py restores after a differential)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.lab.conftest import PROJECT_ROOT

pytestmark = pytest.mark.lab


def test_a_sample_of_the_pitr_soak_restores_every_target_exactly(lab, first_deploy):
    r = subprocess.run([sys.executable, "bench/pitr_soak.py", "--lab", lab.name, "--targets", "2",
                        "--segment-s", "2", "--backups", "0", "--json"], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=900, env=os.environ)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    result = json.loads(r.stdout)
    print(f"\nPITR soak sample (seed {result['seed']}): {result['exact']}/{result['targets']} exact, "
          f"RTO median {result['rto_s']['median']:.1f} s, from {result['restored_from']}")
    assert result["exact"] == result["targets"] == 2, (result["wrong"], r.stderr[-3000:])
    assert r.returncode == 0
