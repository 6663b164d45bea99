"""Facts about the local Patroni member, read from its REST API (GET needs no password).

Each returns None when Patroni is not installed, not configured or not answering, so a
first deploy plans against a host that runs no Patroni yet.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase

from pgops.ha.patroni import TLS_DIR
from pgops.settings.ha import PATRONI_PORT
from pgops.shell import wait_until

#: GET one REST endpoint of the local member over TLS with the cluster's CA, printing the
#: body (argv[3] == "body") or the HTTP status; always exits 0 (Patroni down is a state, not
#: a failure: "null", or status 0). Patroni answers 503 with the same JSON body on /patroni
#: when Postgres is not running, which is still a state to read.
_GET = """
import ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    r = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=3)
    code, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read().decode()
except Exception:
    code, body = 0, ""
print((body or "null") if sys.argv[3] == "body" else code)
"""


def _get(path: str, what: str) -> str:
    url = shlex.quote(f"https://127.0.0.1:{PATRONI_PORT}{path}")
    return f"python3 -c {shlex.quote(_GET)} {url} {TLS_DIR}/ca.crt {what}"


def get_command(path: str) -> str:
    """A shell command printing the local member's JSON answer on `path` ("null": none)."""
    return _get(path, "body") + " 2>/dev/null || echo null"


#: Send the JSON in argv[2] to the local member's URL argv[3] with method argv[4] (PATCH
#: /config, POST /switchover), authenticated with the REST API's user from Patroni's own
#: config file (argv[1]), so no secret is on a command line; prints Patroni's answer.
REQUEST = """
import base64, json, ssl, sys, urllib.error, urllib.request
conf = json.loads(open(sys.argv[1]).read().split("\\n", 1)[1])
auth = conf["restapi"]["authentication"]
token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
ctx = ssl.create_default_context(cafile=conf["ctl"]["cacert"])
req = urllib.request.Request(sys.argv[3], data=sys.argv[2].encode(), method=sys.argv[4],
                             headers={"Authorization": "Basic " + token,
                                      "Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, context=ctx, timeout=300).read().decode())
except urllib.error.HTTPError as e:
    sys.exit(f"Patroni answered {e.code} to {sys.argv[4]} {sys.argv[3]}: {e.read().decode()[:300]}")
"""


def request_command(conf_path: str, method: str, path: str, body: dict) -> str:
    """A shell command (as root or postgres: it reads Patroni's config file) sending `body`
    to the local member's REST API."""
    url = f"https://127.0.0.1:{PATRONI_PORT}{path}"
    return (f"python3 -c {shlex.quote(REQUEST)} {shlex.quote(conf_path)} "
            f"{shlex.quote(json.dumps(body, sort_keys=True))} {shlex.quote(url)} {method}")


def patch_command(conf_path: str, body: dict) -> str:
    """A shell command (run as postgres) PATCHing the local member's dynamic configuration."""
    return request_command(conf_path, "PATCH", "/config", body)


#: Wait until the file argv[3] is gone (a stat every 0.02 s: no process started, no CPU taken
#: from a promotion), then poll argv[1] every argv[4] s until it answers 200 (the CA in
#: argv[2]); after argv[5] s in all, fail with the reason. One process from the start, so the
#: first poll comes as the file goes, not a Python start later.
_WAIT_AFTER = """
import os, ssl, sys, time, urllib.request
url, gone, interval, seconds = sys.argv[1], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
end = time.monotonic() + seconds
ctx = ssl.create_default_context(cafile=sys.argv[2])
while os.path.exists(gone):
    if time.monotonic() > end:
        sys.exit(f"{gone} still there after {seconds:g} s")
    time.sleep(0.02)
while True:
    try:
        if urllib.request.urlopen(url, context=ctx, timeout=3).status == 200:
            break
    except Exception:
        pass
    if time.monotonic() > end:
        sys.exit(f"Patroni did not answer 200 on {url} within {seconds:g} s")
    time.sleep(interval)
"""


def wait_after_command(path: str, gone: str, seconds: int, interval: float = 0.05) -> str:
    """A shell command waiting until the file `gone` no longer exists, then until the local
    member answers 200 on `path`, failing with the reason after `seconds` in all."""
    url = shlex.quote(f"https://127.0.0.1:{PATRONI_PORT}{path}")
    return (f"python3 -c {shlex.quote(_WAIT_AFTER)} {url} {TLS_DIR}/ca.crt {shlex.quote(gone)} "
            f"{interval} {seconds}")


def status_command(path: str) -> str:
    """A shell command printing the HTTP status of the local member on `path` (0: none)."""
    return _get(path, "status") + " 2>/dev/null || echo 0"


def wait_command(path: str, seconds: int, interval: float = 1) -> str:
    """A shell command polling the local member every `interval` s until `path` answers 200
    (Patroni's health endpoints), failing with the reason after `seconds` (each poll starts
    Python and may wait 3 s for an answer)."""
    return wait_until(f"[ \"$({status_command(path)})\" = 200 ]", seconds, interval,
                      f"Patroni did not answer 200 on {path} within {seconds} s")


class _RestFact(FactBase[Any]):
    PATH = "/"

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "python3"

    def command(self) -> str:
        return get_command(self.PATH)

    def process(self, output: list[str]) -> Any:
        text = "\n".join(output).strip()
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return None


class PatroniMember(_RestFact):
    """This member: state, role (primary/replica), timeline, scope, pending_restart."""

    PATH = "/patroni"


class PatroniCluster(_RestFact):
    """The whole cluster as this member sees it: members with role, state, lag, timeline."""

    PATH = "/cluster"


class PatroniDynamicConfig(_RestFact):
    """The cluster-wide configuration Patroni keeps in the DCS (ttl, parameters, ...)."""

    PATH = "/config"
