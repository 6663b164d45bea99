"""pyinfra's run config (read by `pyinfra` from the working directory).

A host that cannot be reached fails the whole run before any operation executes: no other
host is left half-deployed because one was down.
"""

from pyinfra import config

config.FAIL_PERCENT = 0
