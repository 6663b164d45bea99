"""pgops.operations.cache.read_together: several facts in one command. The script runs in a
real local shell here, as it would on a host."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

from pyinfra.api import FactBase
from pyinfra.context import ctx_host, ctx_state

from pgops.operations import cache
from tests.operations.harness import FakeHost, FakeInventory, FakeState


def sh(script: str) -> list[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_each_commands_output_and_status_come_back_apart():
    commands = ["printf 'a\\nb\\n'", "true", "echo out; exit 3", "echo 'x  y'",
                'case ",cpu," in *,cpu,*) echo matched ;; esac', "exit 0"]
    got = cache.sections(sh(cache.script(commands, "@@m")), "@@m")
    assert got == {0: (0, ["a", "b"]), 1: (0, []), 2: (3, ["out"]), 3: (0, ["x  y"]),
                   4: (0, ["matched"]), 5: (0, [])}


def test_a_missing_program_is_a_failure_not_empty_output():
    class Needs(FactBase):
        requires_command = "no-such-program-pgops"

        def command(self):
            return "echo never"
    cmd = cache._command(Needs(), {"self": None})
    assert cache.sections(sh(cache.script([cmd, "echo after"], "@@m")), "@@m") == {
        0: (127, []), 1: (0, ["after"])}


class Lines(FactBase):
    def command(self, text: str):
        return f"printf '%s\\n' {text}"

    def process(self, output):
        return output


class Fails(FactBase):
    def command(self):
        return "echo partial; false"


class LocalHost(FakeHost):
    """Runs commands in a local shell, as the host's own shell would."""

    current_deploy_kwargs = None

    def __init__(self):
        inventory = FakeInventory()
        super().__init__("db1", {}, inventory=inventory)
        self.data = SimpleNamespace()
        inventory.hosts["db1"] = self
        self.commands: list[str] = []
        self.reads: list[str] = []

    def run_shell_command(self, command, **kwargs):
        text = command.get_raw_value()
        self.commands.append(text)
        out = subprocess.run(["sh", "-c", text], capture_output=True, text=True)
        return out.returncode == 0, SimpleNamespace(stdout_lines=out.stdout.splitlines())

    def get_fact(self, cls, **kwargs):
        self.reads.append(cls.__name__)
        return f"read alone: {cls.__name__}"


def test_facts_are_cached_from_one_command_and_a_failed_one_is_read_alone():
    h = LocalHost()
    with ctx_state.use(FakeState(h.inventory)), ctx_host.use(h):
        cache.read_together([(Lines, {"text": "one"}), (Lines, {"text": "'two words'"}),
                             (Fails, {})])
        assert len(h.commands) == 1
        assert cache.fact(Lines, text="one") == ["one"]
        assert cache.fact(Lines, text="'two words'") == ["two words"]
        assert h.reads == []
        assert cache.fact(Fails) == "read alone: Fails"
        assert h.reads == ["Fails"]
        cache.read_together([(Lines, {"text": "one"}), (Lines, {"text": "'two words'"})])
        assert len(h.commands) == 1  # both cached: nothing to read


def test_one_fact_alone_is_left_to_fact():
    h = LocalHost()
    with ctx_state.use(FakeState(h.inventory)), ctx_host.use(h):
        cache.read_together([(Lines, {"text": "one"})])
        assert h.commands == []
