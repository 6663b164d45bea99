"""A small certificate authority per purpose: pgBackRest's TLS transport (pg_backup_tls_dir)
and a cluster's etcd and Patroni REST API (Settings.ha_pki_dir).

It lives on the machine that runs pgops, in a directory outside git (by default beside the
secrets file), like the secrets themselves: one CA per directory, and per host a key and a
certificate whose CN is the inventory name (what pgBackRest's `tls-server-auth` checks) and
whose subjectAltName holds the names the peers dial. Certificates carry the key identifiers
and usages strict verifiers require (Python 3.13's default context refuses a certificate
without an Authority Key Identifier). Files are made once and then reused, so a second
deploy puts the same bytes and changes nothing; a host whose names change gets a new
certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 3650


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _alt(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _ca(directory: Path, ca_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_file, cert_file = directory / "ca.key", directory / "ca.crt"
    if key_file.exists() and cert_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_file.read_bytes())
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(ca_name))
            .issuer_name(_name(ca_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_file, _key_pem(key), private=True)
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return key, cert


def _reusable(key_file: Path, cert_file: Path, wanted: list[str], ca: x509.Certificate) -> bool:
    """A host's key and certificate exist, name exactly `wanted` and come from this CA."""
    if not (key_file.exists() and cert_file.exists()):
        return False
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = sorted([str(v) for v in san.get_values_for_type(x509.DNSName)]
                  + [str(v) for v in san.get_values_for_type(x509.IPAddress)])
    return have == wanted and cert.issuer == ca.subject


def ca_file(directory: Path, ca_name: str) -> str:
    """The CA's certificate (PEM; the CA is made on first use), for hosts that only verify."""
    return _ca(directory, ca_name)[1].public_bytes(serialization.Encoding.PEM).decode()


def host_files(directory: Path, host: str, names: list[str],
               ca_name: str = "pgops pgBackRest CA") -> dict[str, str]:
    """PEM texts for one host: ca.crt, its certificate and its key (made on first use;
    `ca_name` names a CA made here)."""
    ca_key, ca_cert = _ca(directory, ca_name)
    key_file, cert_file = directory / f"{host}.key", directory / f"{host}.crt"
    wanted = sorted(set(names))
    if not _reusable(key_file, cert_file, wanted, ca_cert):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                .add_extension(x509.SubjectAlternativeName(_alt(wanted)), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write(key_file, _key_pem(key), private=True)
        _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return {"ca": ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
            "cert": cert_file.read_text(), "key": key_file.read_text()}
