"""What a lab host exposes, seen from another: the TCP ports it listens on beyond loopback,
and how each answers an outsider (plain text, TLS 1.1, TLS 1.2, an unauthenticated request)."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

from pgops.lab import Lab

#: Lists the TCP sockets listening beyond loopback, from the kernel's own tables.
LISTENING = r"""
import socket, struct
ports = set()
for path, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
    for line in open(path).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":
            continue
        addr, port = local.split(":")
        raw = bytes.fromhex(addr)
        if fam == socket.AF_INET:
            ip = socket.inet_ntop(fam, struct.pack("<I", int(addr, 16)))
        else:
            ip = socket.inet_ntop(fam, b"".join(struct.pack("<I", struct.unpack(">I", raw[i:i + 4])[0])
                                               for i in range(0, 16, 4)))
        if not (ip.startswith("127.") or ip == "::1"):
            ports.add(int(port, 16))
print(" ".join(map(str, sorted(ports))))
"""
#: Run on another host: each (address, port, kind) probed as an outsider would. `pg`: the
#: PostgreSQL protocol (SSLRequest first); `https`: TLS from the first byte. Prints one JSON
#: object per probe: whether plain text was served, whether TLS 1.1 and TLS 1.2 completed a
#: handshake, and for `https` the HTTP status of an unauthenticated unsafe request.
PROBE = r"""
import json, socket, ssl, struct, sys
def tls(addr, port, kind, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = version
    s = socket.create_connection((addr, port), timeout=5)
    try:
        if kind == "pg":
            s.sendall(struct.pack("!ii", 8, 80877103))
            if s.recv(1) != b"S":
                return False
        t = ctx.wrap_socket(s)
        if kind == "https":
            t.sendall(b"POST /switchover HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
            return t.recv(64).decode(errors="replace").split(" ")[1]
        return True
    except (ssl.SSLError, OSError):
        return False
    finally:
        s.close()
def plain(addr, port, kind):
    s = socket.create_connection((addr, port), timeout=5)
    try:
        if kind == "pg":  # a StartupMessage without SSL: any authentication request is a failure
            body = struct.pack("!i", 196608) + b"user\0app\0database\0app\0\0"
            s.sendall(struct.pack("!i", len(body) + 4) + body)
            return s.recv(1) == b"R"
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False
    finally:
        s.close()
for addr, port, kind in json.loads(sys.stdin.read()):
    print(json.dumps({"addr": addr, "port": port, "plain": plain(addr, port, kind),
                      "tls1.1": tls(addr, port, kind, ssl.TLSVersion.TLSv1_1),
                      "tls1.2": tls(addr, port, kind, ssl.TLSVersion.TLSv1_2)}))
"""


def probe_ports(lab: Lab, expected: dict[str, dict[int, str]], kinds: dict[int, str]) -> list[dict]:
    """Every lab host's listening ports, each one `expected` for its role (else the test
    fails naming it), probed from the repository host (an outsider to the database hosts):
    one PROBE row per port of a known kind."""
    probes = []
    for h in lab.hosts():
        seen = {int(p) for p in lab.ssh(h, "python3 -", input=LISTENING).stdout.split()}
        want = expected[h.role]
        assert seen <= set(want), f"{h.name} listens on unexpected ports {sorted(seen - set(want))}"
        probes += [(h.address, p, kinds[p]) for p in sorted(seen) if p in kinds]
    prober = next(h for h in lab.hosts() if h.role == "backup")
    out = lab.ssh(prober, f"python3 -c {shlex.quote(PROBE)}", input=json.dumps(probes)).stdout
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == len(probes), out
    return rows


#: Every process's argv, as fast as the shell can read /proc, one argument per line, each line
#: kept once (in D/argv.log); the loop count when it stops (D/argv.count: the sampling rate).
SAMPLER = """D={d}; mkdir -p $D; touch $D/argv.on; rm -f $D/argv.log $D/argv.count
nohup sh -c '{{ i=0; while [ -e {d}/argv.on ]; do i=$((i+1)); cat /proc/[0-9]*/cmdline 2>/dev/null \\
  | tr "\\0" "\\n"; {pause} done; echo $i > {d}/argv.count; }} | awk "!seen[\\$0]++" > {d}/argv.log' \\
  >/dev/null 2>&1 &
"""
STOP = ("rm -f {d}/argv.on; for i in $(seq 50); do [ -s {d}/argv.count ] && break; sleep 0.1; done; "
        "sleep 0.5; cat {d}/argv.count")


class ArgvSampler:
    """Every process's argv sampled on the controller (into `local_dir`) and on every lab host
    while the `with` block runs: `argv` maps each host (and "controller") to the distinct
    arguments seen, `rate` to its samples per second. `pause`: seconds between samples (on
    the cluster lab, six samplers flat out on two CPUs slow what they watch several times)."""

    REMOTE = "/run/pgops-argv"

    def __init__(self, lab: Lab, local_dir: Path, pause: float = 0.0):
        self.lab, self.local = lab, local_dir
        self.pause = f"sleep {pause};" if pause else ""
        self.hosts = [h.name for h in lab.hosts()]
        self.argv: dict[str, str] = {}
        self.rate: dict[str, float] = {}

    def __enter__(self) -> ArgvSampler:
        for h in self.hosts:
            self.lab.ssh(h, SAMPLER.format(d=self.REMOTE, pause=self.pause))
        subprocess.run(["sh", "-c", SAMPLER.format(d=self.local, pause=self.pause)], check=True)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.t0
        loops = {h: self.lab.ssh(h, STOP.format(d=self.REMOTE)).stdout for h in self.hosts}
        loops["controller"] = subprocess.run(["sh", "-c", STOP.format(d=self.local)],
                                             capture_output=True, text=True).stdout
        self.rate = {h: int(n.strip() or 0) / self.seconds for h, n in loops.items()}
        self.argv = {h: self.lab.ssh(h, f"cat {self.REMOTE}/argv.log").stdout for h in self.hosts}
        self.argv["controller"] = (self.local / "argv.log").read_text(errors="replace")

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        """"host: secret name" for each secret found in a host's sampled arguments."""
        return [f"{h}: {k}" for h, text in self.argv.items() for k, v in secrets.items() if v in text]

    def slowest_rate(self) -> float:
        return min(self.rate.values())

    def summary(self) -> str:
        return f"argv sampled for {self.seconds:.0f} s: " + ", ".join(
            f"{h} {self.rate[h]:.0f}/s ({len(self.argv[h].splitlines())} distinct arguments)"
            for h in self.argv)
