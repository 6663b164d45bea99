"""Rendering and parsing of the pgops conf.d file and pg_hba.conf."""

from __future__ import annotations

from pgops.server.pgconf import (
    HEADER,
    changed_keys,
    parse_conf,
    paths,
    quote,
    render_conf,
    render_hba,
    settings,
)
from pgops.server.tuning import GB, MB, Resources, tune
from pgops.settings import Settings

RES = Resources(memory_bytes=2 * GB, cpus=2, rotational=False, shm_bytes=64 * MB)


def body(text: str) -> list[str]:
    """Non-comment, non-empty lines."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


# --- conf.d file --------------------------------------------------------------------------


def test_quote():
    assert quote(True) == "on"
    assert quote(False) == "off"
    assert quote(5432) == "5432"
    assert quote(0.9) == "0.9"
    assert quote("it's") == "'it''s'"


def test_render_conf_is_sorted_with_header():
    text = render_conf({"b": 1, "a": "x"})
    assert text.startswith(HEADER)
    assert body(text) == ["a = 'x'", "b = 1"]


def test_round_trip():
    values = {
        "ssl": True,
        "log_connections": False,
        "port": 5432,
        "checkpoint_completion_target": 0.9,
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "search_path": "\"$user\", public",
        "application_name": "it's 'quoted'",
        "archive_command": "test ! -f /a/%f # not a comment",
        "empty": "",
        "pg_stat_statements.track": "all",
    }
    parsed = parse_conf(render_conf(values))
    assert parsed == {
        "ssl": "on",
        "log_connections": "off",
        "port": "5432",
        "checkpoint_completion_target": "0.9",
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "search_path": "\"$user\", public",
        "application_name": "it's 'quoted'",
        "archive_command": "test ! -f /a/%f # not a comment",
        "empty": "",
        "pg_stat_statements.track": "all",
    }


def test_parse_conf_ignores_comments_and_accepts_no_equals():
    text = (
        "# a comment\n"
        "#shared_buffers = 1GB\n"
        "work_mem = 8MB   # trailing comment\n"
        "   \n"
        "fsync on\n"
        "Not_A_Setting = 1\n"
    )
    assert parse_conf(text) == {"work_mem": "8MB", "fsync": "on"}


def test_parse_conf_last_value_wins():
    assert parse_conf("work_mem = 4MB\nwork_mem = 8MB\n") == {"work_mem": "8MB"}


def test_changed_keys():
    old = {"a": "1", "b": "2", "gone": "x"}
    new = {"a": "1", "b": "3", "added": "y"}
    assert changed_keys(old, new) == {"b", "gone", "added"}
    assert changed_keys(new, new) == set()


def test_changed_keys_after_round_trip_detects_value_change():
    before = parse_conf(render_conf({"ssl": True, "work_mem": "4MB"}))
    after = parse_conf(render_conf({"ssl": False, "work_mem": "4MB"}))
    assert changed_keys(before, after) == {"ssl"}


# --- settings() ---------------------------------------------------------------------------


def test_settings_include_policy_and_tuning():
    s = Settings()
    out = settings(s, RES)
    assert out["ssl"] is True
    assert out["password_encryption"] == "scram-sha-256"
    assert out["port"] == 5432
    assert out["ssl_cert_file"] == paths(s)["cert"]
    for k, v in tune(RES, s.pg_tuning).items():
        assert out[k] == v


def test_user_settings_win_over_tuning_and_policy():
    s = Settings(pg_settings={"shared_buffers": "1GB", "log_connections": True, "jit": False})
    assert tune(RES, s.pg_tuning)["shared_buffers"] == "512MB"
    out = settings(s, RES)
    assert out["shared_buffers"] == "1GB"
    assert out["log_connections"] is True
    assert out["jit"] is False


def test_wal_compression_depends_on_major():
    assert settings(Settings(pg_major=17), RES)["wal_compression"] == "lz4"
    assert settings(Settings(pg_major=14), RES)["wal_compression"] == "on"


def test_listen_addresses_joined():
    out = settings(Settings(pg_listen_addresses=("10.0.0.5", "localhost"), pg_port=5433), RES)
    assert out["listen_addresses"] == "10.0.0.5,localhost"
    assert out["port"] == 5433


def test_paths_follow_major_and_cluster():
    p = paths(Settings(pg_major=16, pg_cluster="prod"))
    assert p["conf"] == "/etc/postgresql/16/prod/conf.d/50-pgops.conf"
    assert p["hba"] == "/etc/postgresql/16/prod/pg_hba.conf"
    assert p["data"] == "/var/lib/postgresql/16/prod"
    assert p["service"] == "postgresql@16-prod"


# --- pg_hba.conf --------------------------------------------------------------------------

HBA = Settings(
    pg_hba_rules=(
        {"database": "app", "user": "app,migrator", "address": "10.0.0.0/8"},
        {"database": "replication", "user": "repl", "address": "192.168.0.0/16", "method": "cert"},
        {"database": "all", "user": "all", "address": "0.0.0.0/0", "method": "reject"},
    ),
    pg_hba_extra=("  local   app   backup   peer  ", "hostssl all monitor 10.1.0.0/16 cert"),
)


def test_hba_local_peer_for_postgres_first():
    assert body(render_hba(HBA))[0].split() == ["local", "all", "postgres", "peer"]
    assert body(render_hba(Settings()))[0].split() == ["local", "all", "postgres", "peer"]


def test_hba_rules_are_hostssl():
    lines = body(render_hba(HBA))
    for rule in HBA.pg_hba_rules:
        matching = [ln.split() for ln in lines if ln.split()[3:4] == [rule.address]]
        assert matching == [["hostssl", rule.database, rule.user, rule.address, rule.method]]
    assert not any(ln.split()[0] in ("host", "hostnossl") for ln in lines)


def test_hba_never_trust():
    for s in (HBA, Settings()):
        assert "trust" not in render_hba(s)


def test_hba_rule_order_kept():
    managed = render_hba(HBA).split("# extra lines from pg_hba_extra")[0]
    addrs = [ln.split()[3] for ln in body(managed) if ln.startswith("hostssl")]
    assert addrs == ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "192.168.0.0/16", "0.0.0.0/0"]


def test_hba_extra_lines_appended_last():
    text = render_hba(HBA)
    lines = body(text)
    assert lines[-2:] == ["local   app   backup   peer", "hostssl all monitor 10.1.0.0/16 cert"]
    assert text.index("# extra lines from pg_hba_extra") < text.index("local   app   backup")
    assert text.startswith(HEADER)


def test_hba_without_extra_has_no_extra_section():
    assert "pg_hba_extra" not in render_hba(Settings())
