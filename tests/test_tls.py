"""acs.tls (the HTTPS listener's context, self-signed pairs) and the settings of the CWMP
listener's two sides."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from acs.config import Settings
from acs.tls import TlsUnavailable, server_context, write_self_signed

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = write_self_signed(["127.0.0.1"], tmp_path_factory.mktemp("tls"))
    return made.certfile, made.keyfile


def _sha1_suites(context: ssl.SSLContext) -> list[str]:
    return [c["name"] for c in context.get_ciphers() if c["name"].endswith("-SHA")]


@pytest.mark.parametrize(
    ("version", "minimum", "legacy"),
    [
        ("1.0", ssl.TLSVersion.TLSv1, True),
        ("1.1", ssl.TLSVersion.TLSv1_1, True),
        ("1.2", ssl.TLSVersion.TLSv1_2, False),
        ("1.3", ssl.TLSVersion.TLSv1_3, False),
    ],
)
def test_server_context_minimum_version_and_ciphers(pair, version, minimum, legacy):
    context = server_context(*pair, version)
    assert context.minimum_version == minimum
    assert context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    # 1.0 and 1.1 have only SHA-1 MAC suites: offered only when the version is lowered
    assert ("ECDHE-RSA-AES128-SHA" in _sha1_suites(context)) == legacy
    assert bool(_sha1_suites(context)) == legacy


def test_server_context_refusals_name_the_file(pair, tmp_path):
    cert, key = pair
    with pytest.raises(TlsUnavailable) as missing:
        server_context(cert, tmp_path / "nope.pem")
    assert str(missing.value) == f"cannot read {tmp_path / 'nope.pem'}: No such file or directory"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TlsUnavailable) as bad:
        server_context(garbage, key)
    assert str(bad.value).startswith(f"cannot use {garbage} with {key}: ")
    # an encrypted key fails (its passphrase is not asked for on the terminal)
    locked = tmp_path / "locked.pem"
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    locked.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsUnavailable) as encrypted:
        server_context(cert, locked)
    assert str(encrypted.value).startswith(f"cannot use {cert} with {locked}: ")


def test_self_signed_names_every_host_and_keeps_the_key_private(tmp_path):
    out = tmp_path / "new" / "tls"
    made = write_self_signed(
        ["acs.lab", "192.0.2.7", "[2001:db8::1]", "acs.lab"], out, days=30, now=NOW
    )
    assert (made.certfile, made.keyfile) == (out / "cert.pem", out / "key.pem")
    assert stat.S_IMODE(made.keyfile.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(made.certfile.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [
        x509.DNSName("acs.lab"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
    ]
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=acs.lab"
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (
        NOW - timedelta(hours=1),
        NOW + timedelta(days=30),
    )
    assert made.not_after == NOW + timedelta(days=30)
    key = serialization.load_pem_private_key(made.keyfile.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.public_key() == key.public_key()
    # the pair works as a server's; made again, the key is replaced and still private
    server_context(made.certfile, made.keyfile)
    made.keyfile.chmod(0o644)
    again = write_self_signed(["acs.lab"], out, key_type="ec", now=NOW)
    assert stat.S_IMODE(again.keyfile.stat().st_mode) == 0o600
    ec_key = serialization.load_pem_private_key(again.keyfile.read_bytes(), None)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and ec_key.curve.name == "secp256r1"
    server_context(again.certfile, again.keyfile)


@pytest.mark.parametrize(
    ("hosts", "days", "error"),
    [
        ([], 365, "give each --host a name or an address"),
        (["acs.lab", " "], 365, "give each --host a name or an address"),
        (["acs.lab"], 0, "--days from 1 to 3650, got 0"),
        (["acs.lab"], 3651, "--days from 1 to 3650, got 3651"),
    ],
)
def test_self_signed_refusals(tmp_path, hosts, days, error):
    with pytest.raises(ValueError) as refused:
        write_self_signed(hosts, tmp_path, days=days)
    assert str(refused.value) == error
    assert list(tmp_path.iterdir()) == []


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_cwmp_base_url_for_urls_no_request_names(pair):
    cert, key = pair
    tls = {"cwmp_tls_certfile": cert, "cwmp_tls_keyfile": key}
    assert _settings().cwmp_base_url("192.0.2.1") == "http://192.0.2.1:7547"
    assert _settings(cwmp_port=80).cwmp_base_url("2001:db8::1") == "http://[2001:db8::1]:80"
    assert _settings(**tls).cwmp_base_url("192.0.2.1") == "https://192.0.2.1:7548"
    assert _settings(**tls, cwmp_tls_port=443).cwmp_base_url("[::1]") == "https://[::1]:443"
    public = _settings(**tls, public_url="http://acs.example:7547/")
    assert public.cwmp_base_url("192.0.2.1") == "http://acs.example:7547"


def test_plain_http_off_needs_a_certificate(pair, monkeypatch):
    cert, key = pair
    monkeypatch.setenv("ACS_CWMP_HTTP", "off")
    with pytest.raises(ValidationError) as refused:
        _settings()
    assert "ACS_CWMP_HTTP=false leaves no CWMP listener" in str(refused.value)
    https_only = _settings(cwmp_tls_certfile=cert, cwmp_tls_keyfile=key)
    assert (https_only.cwmp_http, https_only.tls_min_version) == (False, "1.2")
    monkeypatch.setenv("ACS_TLS_MIN_VERSION", "1.0")
    assert _settings(cwmp_tls_certfile=cert, cwmp_tls_keyfile=key).tls_min_version == "1.0"
    monkeypatch.setenv("ACS_TLS_MIN_VERSION", "1")
    with pytest.raises(ValidationError):
        _settings(cwmp_tls_certfile=cert, cwmp_tls_keyfile=key)


def test_http_and_https_on_one_port_is_refused_naming_both(pair):
    from acs.server import ListenerUnavailable, bind_listeners

    cert, key = pair
    same = _settings(
        bind="127.0.0.1",
        cwmp_port=7547,
        cwmp_tls_port=7547,
        cwmp_tls_certfile=cert,
        cwmp_tls_keyfile=key,
    )
    with pytest.raises(ListenerUnavailable) as refused:
        bind_listeners(same)
    assert str(refused.value) == (
        "the CWMP listener and the CWMP listener (HTTPS) are both on port 7547: give them "
        "different ports (ACS_CWMP_PORT, ACS_CWMP_TLS_PORT)"
    )
    # HTTPS alone: no HTTP socket, the HTTPS one bound (port 0: any free one)
    alone = _settings(
        bind="127.0.0.1",
        cwmp_http=False,
        cwmp_tls_port=0,
        api_port=0,
        cwmp_tls_certfile=cert,
        cwmp_tls_keyfile=key,
    )
    sockets = bind_listeners(alone)
    try:
        assert sockets.cwmp is None and sockets.cwmp_tls is not None
        assert sockets.cwmp_tls.getsockname()[1] != 0
    finally:
        for sock in (sockets.cwmp_tls, sockets.api):
            if sock is not None:
                sock.close()
