"""Operations on a Patroni cluster through its REST API: its dynamic (DCS) configuration."""

from __future__ import annotations

from typing import Any

from pyinfra import host, logger
from pyinfra.api import operation

from pgops.facts.patroni import PatroniDynamicConfig, patch_command
from pgops.ha.patroni import config_patch


@operation()
def dynamic_config(desired: dict[str, Any], conf_path: str):
    """Make the cluster-wide configuration hold `desired` (what pgops sets; other keys are
    left alone). Run on the leader, as postgres. A parameter that needs a restart leaves
    the members with a pending restart: `pgops cluster restart --pending` does it rolling.

    + desired: e.g. pgops.ha.patroni.dcs_config(...)
    + conf_path: the member's patroni.yml (the REST API's credentials are read from it)
    """
    current = host.get_fact(PatroniDynamicConfig)
    if current is None:
        host.noop("Patroni does not answer here: nothing to compare")
        return
    patch = config_patch(current, desired)
    if not patch:
        host.noop("the cluster's dynamic configuration is current")
        return
    logger.info(f"{host.print_prefix}dynamic configuration: {', '.join(_paths(patch))}")
    yield patch_command(conf_path, patch)


def _paths(patch: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in patch.items():
        out += _paths(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out
