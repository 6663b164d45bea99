"""SCRAM-SHA-256 verifiers computed locally, so a plaintext password never reaches a host.

pgops sends Postgres the verifier (as psql's \\password does), and checks an existing one by
recomputing it with the same salt and iteration count: a correct password is never re-set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata


def _saslprep(password: str) -> str:
    """RFC 4013 SASLprep as Postgres applies it (src/common/saslprep.c): where the result
    would be invalid (prohibited or unassigned code points, a broken bidi rule, empty), it
    uses the raw password, and so must we for the verifier to match."""
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in password
        if not stringprep.in_table_b1(c)
    )
    norm = unicodedata.normalize("NFKC", mapped)
    if not norm:
        return password
    prohibited = (
        stringprep.in_table_a1, stringprep.in_table_c12, stringprep.in_table_c21_c22,
        stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
        stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if any(check(c) for c in norm for check in prohibited):
        return password
    if any(stringprep.in_table_d1(c) for c in norm):
        if any(stringprep.in_table_d2(c) for c in norm):
            return password
        if not (stringprep.in_table_d1(norm[0]) and stringprep.in_table_d1(norm[-1])):
            return password
    return norm


def verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` string Postgres stores."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def matches(password: str, params: str | None, digest: str | None) -> bool:
    """Does `password` produce the verifier whose `<iter>:<salt>` part is `params` and whose
    sha256 hex digest is `digest`? (The host reports only those, never the verifier.)"""
    if not params or not digest:
        return False
    try:
        iterations, salt = params.split(":", 1)
        v = verifier(password, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.sha256(v.encode()).hexdigest(), digest)
