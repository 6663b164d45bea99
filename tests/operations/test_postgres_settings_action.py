"""settings_action: how a settings change is applied (start, restart, reload or nothing),
from what changed and the server's pg_settings contexts and pending restarts."""

from __future__ import annotations

import pytest

from pgops.operations.postgres import settings_action


def setting(context: str, pending: bool = False) -> dict:
    return {"setting": "1", "unit": None, "context": context, "pending_restart": pending}


SETTINGS = {
    "shared_buffers": setting("postmaster"),
    "max_connections": setting("postmaster"),
    "work_mem": setting("user"),
    "archive_timeout": setting("sighup"),
    "log_connections": setting("superuser-backend"),
}


def with_pending(*names: str) -> dict:
    return {k: setting(v["context"], k in names) for k, v in SETTINGS.items()}


def test_server_down_is_started_whatever_changed():
    assert settings_action(set(), None) == ("start", [])
    assert settings_action({"work_mem", "shared_buffers"}, None) == ("start", [])


def test_nothing_changed_nothing_pending():
    assert settings_action(set(), SETTINGS) == ("none", [])


@pytest.mark.parametrize("changed", [{"work_mem"}, {"archive_timeout", "log_connections"}])
def test_reload_when_every_change_allows_it(changed):
    assert settings_action(changed, SETTINGS) == ("reload", sorted(changed))


def test_restart_for_a_postmaster_setting_names_only_those():
    assert settings_action({"work_mem", "shared_buffers", "max_connections"}, SETTINGS) == (
        "restart", ["max_connections", "shared_buffers"])


def test_unknown_setting_counts_as_postmaster():
    assert settings_action({"no_such_setting"}, SETTINGS) == ("restart", ["no_such_setting"])


def test_pending_restart_alone_restarts():
    assert settings_action(set(), with_pending("shared_buffers")) == ("restart", ["shared_buffers"])


def test_pending_restart_wins_over_a_reload():
    assert settings_action({"work_mem"}, with_pending("max_connections")) == (
        "restart", ["max_connections"])


def test_changed_postmaster_settings_come_first_then_pending():
    assert settings_action({"shared_buffers"}, with_pending("max_connections")) == (
        "restart", ["shared_buffers", "max_connections"])
