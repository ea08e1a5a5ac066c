"""TLS for the CWMP listener's HTTPS side: the server's ``ssl.SSLContext`` (the oldest version
it accepts, ``ACS_TLS_MIN_VERSION``) and a self-signed pair for a lab (``acs tls self-signed``).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

VERSIONS: Final = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}

# TLS 1.0 and 1.1 sign the handshake with MD5+SHA-1 and have only CBC suites with SHA-1 MACs:
# OpenSSL 3 refuses them from security level 1 up, and Python's default cipher list excludes
# SHA-1 MACs. So lowering the version takes OpenSSL's own list at level 0; 1.2 and 1.3 keep
# Python's list (forward secrecy, AEAD first, no SHA-1) at its level 2.
LEGACY_CIPHERS: Final = "DEFAULT:@SECLEVEL=0"


class TlsUnavailable(Exception):
    """The certificate or key cannot be used; the message says which file and why."""


def server_context(certfile: Path, keyfile: Path, min_version: str = "1.2") -> ssl.SSLContext:
    """The HTTPS listener's context: the pair loaded, versions from ``min_version`` (a key of
    ``VERSIONS``) up. ``TlsUnavailable`` if the files cannot be read or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLSv1 and TLSv1_1 are deprecated (RFC 8996): the operator asked for them knowingly
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = VERSIONS[min_version]
    if VERSIONS[min_version] < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers(LEGACY_CIPHERS)
    for path in (certfile, keyfile):  # OpenSSL's own error would not say which
        try:
            path.open("rb").close()
        except OSError as exc:
            raise TlsUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        # A passphrase would be asked on the terminal: an empty one fails instead.
        context.load_cert_chain(certfile, keyfile, password=b"")
    except ssl.SSLError as exc:
        raise TlsUnavailable(
            f"cannot use {certfile} with {keyfile}: {exc.reason or exc} (both PEM, the key "
            "unencrypted and the certificate's)"
        ) from None
    return context


@dataclass(frozen=True)
class SelfSigned:
    """What ``write_self_signed`` wrote."""

    certfile: Path
    keyfile: Path
    not_after: datetime


def write_self_signed(
    hosts: list[str],
    out: Path,
    *,
    days: int = 365,
    key_type: Literal["rsa", "ec"] = "rsa",
    now: datetime | None = None,
) -> SelfSigned:
    """A self-signed certificate for ``hosts`` (the first is its subject; each a SAN,
    addresses as IP SANs) and its key, RSA 2048 (what old phones' TLS stacks all know) or EC
    P-256, as ``out/cert.pem`` and ``out/key.pem`` (0600). ``ValueError`` for an empty host
    or a bad count of days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts or any(not h.strip() for h in hosts):
        raise ValueError("give each --host a name or an address")
    if not 1 <= days <= 3650:
        raise ValueError(f"--days from 1 to 3650, got {days}")
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(h.strip().strip("[]") for h in hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0].strip().strip("[]"))])
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    not_after = start + timedelta(days=days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(hours=1))  # a lab's clocks differ a little
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # its own issuer, so a CA (as `openssl req -x509` makes one): clients that verify
        # strictly (Python 3.13's default) want the key usages and both key identifiers
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_type == "rsa",  # TLS 1.0-1.2's RSA key exchange
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = out / "cert.pem", out / "key.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600, never readable by others even for a moment; an old file is replaced.
    keyfile.unlink(missing_ok=True)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return SelfSigned(certfile.resolve(), keyfile.resolve(), not_after)
