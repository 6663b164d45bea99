"""DSN-mode dumps: the client tools must be at least the server's major version, and the
commands the dev image runs (migrate, seed, dump, load, schedule) import without pyinfra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pgops.client.dump_dsn import DumpError, client


def tools(root, *majors):
    for m in majors:
        b = root / str(m) / "bin"
        b.mkdir(parents=True)
        (b / "pg_dump").write_text("#!/bin/sh\n")
    return root


def test_client_prefers_the_servers_major_then_a_newer_one(tmp_path):
    root = tools(tmp_path, 15, 17)
    assert client("pg_dump", 17, "fix", root) == str(root / "17/bin/pg_dump")
    assert client("pg_dump", 16, "fix", root) == str(root / "17/bin/pg_dump")
    assert client("pg_dump", 15, "fix", root) == str(root / "15/bin/pg_dump")


def test_client_too_old_names_the_fix(tmp_path):
    root = tools(tmp_path, 15, 17)
    with pytest.raises(DumpError, match=r"pg_dump 18 or newer .*install postgresql-client-18.*the dev stack: "
                                        r"docker-compose -f docker-compose.dev.yml exec backup pgops dump"):
        client("pg_dump", 18, "docker-compose -f docker-compose.dev.yml exec backup pgops dump", root)


def test_dev_image_commands_need_no_pyinfra():
    code = (
        "import sys; sys.modules['pyinfra'] = None\n"  # any pyinfra import now fails
        "from click.testing import CliRunner\n"
        "from pgops import cli\n"
        "from pgops.client import dump_dsn, targets\n"
        "from pgops.schema import migrate, seed\n"
        "from pgops.schedule import pgops_jobs\n"
        "[job] = pgops_jobs(None, {'dump': '1h'}, ('dump',), 3, targets.Target('', 'x'))\n"
        "assert job.name == 'dump' and job.every_s == 3600\n"
        "for args in (['migrate', '--help'], ['seed', '--help'], ['dump', '--help'], ['load', '--help'],\n"
        "             ['schedule', 'run', '--help']):\n"
        "    r = CliRunner().invoke(cli.main, args)\n"
        "    assert r.exit_code == 0, (args, r.output, r.exception)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
