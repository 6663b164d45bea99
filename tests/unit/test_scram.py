"""SCRAM-SHA-256 verifiers: format, determinism, a known-good vector, and matches()."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from pgops.server.scram import matches, verifier

RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
FORMAT = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def expected(password: bytes, salt: bytes, iterations: int = 4096) -> str:
    """RFC 5802 / Postgres verifier, computed without pgops code."""
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def split(v: str) -> tuple[str, str]:
    """(params, digest) as the host reports them: `<iter>:<salt>` and sha256 hex of all."""
    return v.split("$")[1], hashlib.sha256(v.encode()).hexdigest()


def test_format():
    v = verifier("secret")
    m = FORMAT.match(v)
    assert m, v
    assert m.group(1) == "4096"
    assert len(base64.b64decode(m.group(2))) == 16
    assert len(base64.b64decode(m.group(3))) == 32
    assert len(base64.b64decode(m.group(4))) == 32


def test_random_salt_differs():
    assert verifier("secret") != verifier("secret")


def test_deterministic_for_fixed_salt():
    assert verifier("secret", b"0123456789abcdef") == verifier("secret", b"0123456789abcdef")
    assert verifier("secret", b"0123456789abcdef") != verifier("secret", b"0123456789abcdeF")
    assert verifier("secret", b"0123456789abcdef") != verifier("Secret", b"0123456789abcdef")


def test_iterations_in_output():
    assert verifier("x", b"s" * 16, iterations=10).startswith("SCRAM-SHA-256$10:")


def test_rfc7677_pencil_matches_independent_computation():
    assert verifier("pencil", RFC_SALT, 4096) == expected(b"pencil", RFC_SALT, 4096)


def test_rfc7677_server_signature():
    """The verifier's keys reproduce RFC 7677's example exchange (user/pencil)."""
    _, _, keys = verifier("pencil", RFC_SALT, 4096).split("$")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,"
        f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    ).encode()
    server_sig = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert b64(server_sig) == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    # The client's proof from the RFC verifies against StoredKey.
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_sig, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


@pytest.mark.parametrize(
    "password, prepared",
    [
        ("pen\u00adcil", "pencil"),  # soft hyphen: mapped to nothing
        ("a\u00a0b", "a b"),  # non-ASCII space: mapped to space
        ("\u2168", "IX"),  # ROMAN NUMERAL NINE: NFKC
        ("caf\u0065\u0301", "caf\u00e9"),  # combining accent: NFKC composes
        ("a\u0007b", "a\u0007b"),  # prohibited control char: raw password used
    ],
)
def test_saslprep(password, prepared):
    assert verifier(password, RFC_SALT) == expected(prepared.encode(), RFC_SALT)


@pytest.mark.parametrize(
    "password",
    [
        "\u00ad",  # maps to empty: Postgres treats as prohibited, uses raw bytes
        "\uff21\u0221",  # U+0221 is unassigned in Unicode 3.2 (table A.1)
        "\u05d0a\u00a0",  # RandALCat mixed with LCat: bidi rule violated
    ],
)
def test_saslprep_prohibited_falls_back_to_raw_like_postgres(password):
    assert verifier(password, RFC_SALT) == expected(password.encode(), RFC_SALT)


def test_matches_right_password():
    params, digest = split(verifier("correct horse", b"saltsaltsaltsalt"))
    assert matches("correct horse", params, digest) is True


def test_matches_with_random_salt():
    params, digest = split(verifier("s3cret"))
    assert matches("s3cret", params, digest) is True


def test_matches_independent_verifier():
    params, digest = split(expected(b"pencil", RFC_SALT))
    assert params == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    assert matches("pencil", params, digest) is True


def test_matches_wrong_password():
    params, digest = split(verifier("correct horse", b"saltsaltsaltsalt"))
    assert matches("correct horse ", params, digest) is False
    assert matches("Correct horse", params, digest) is False
    assert matches("", params, digest) is False


def test_matches_other_iteration_count_fails():
    v = verifier("pw", RFC_SALT, 4096)
    _, digest = split(v)
    assert matches("pw", "4097:" + b64(RFC_SALT), digest) is False


@pytest.mark.parametrize("params, digest", [(None, "ab"), ("4096:AAAA", None), (None, None), ("", "")])
def test_matches_none_or_empty(params, digest):
    assert matches("pw", params, digest) is False


@pytest.mark.parametrize("params", ["garbage", "x:W22ZaJ0SNY7soEsUEjb6gQ==", "4096:not*base64"])
def test_matches_malformed_params(params):
    _, digest = split(verifier("pw", RFC_SALT))
    assert matches("pw", params, digest) is False
