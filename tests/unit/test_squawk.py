"""squawk (from PyPI) lints the shipped migrations with the repo's .squawk.toml, and it
catches the dangerous patterns it exists for."""

import shutil
import subprocess
import sys
from pathlib import Path

from pgops import PROJECT_ROOT
from pgops.schema.migrate import MIGRATIONS_DIR

SQUAWK = shutil.which("squawk", path=str(Path(sys.executable).parent)) or "squawk"


def lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SQUAWK, "--config", str(PROJECT_ROOT / ".squawk.toml"), "--reporter", "gcc",
                           *map(str, files)], capture_output=True, text=True, cwd=PROJECT_ROOT)


def test_shipped_migrations_pass_squawk():
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    assert len(files) >= 3
    r = lint(*files)
    assert r.returncode == 0, r.stdout + r.stderr


def test_squawk_catches_dangerous_patterns(tmp_path):
    bad = tmp_path / "0004_bad.sql"
    bad.write_text("alter table clients add column plan text not null;\n"
                   "create index clients_name_idx on clients (name);\n"
                   "alter table users alter column email type varchar(100);\n")
    r = lint(bad)
    assert r.returncode != 0
    for rule in ("adding-required-field", "require-concurrent-index-creation", "changing-column-type"):
        assert rule in r.stdout
