"""A Prosody XMPP server of the test's own (Debian's ``prosody`` package): a config and a
self-signed certificate written here, a free port, run as ``nobody`` when the tests run as
root (Prosody will not run as root). ``require_prosody()`` skips a test without it, or fails
it under ACS_TEST_REQUIRE_TOOLS=1 (as CI runs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REQUIRE_TOOLS = os.environ.get("ACS_TEST_REQUIRE_TOOLS", "") not in ("", "0", "false")


def require_tool(name: str, package: str) -> None:
    """Skip (or, with ACS_TEST_REQUIRE_TOOLS, fail) without the program ``name``."""
    if shutil.which(name) is None:
        message = f"no {name} here (Debian's {package} package)"
        if REQUIRE_TOOLS:
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)


def require_prosody() -> None:
    require_tool("prosody", "prosody")
    require_tool("prosodyctl", "prosody")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for the DNS name ``name`` (and its key): its own CA too."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Prosody:
    """One server for ``domain`` (the ACS's account an admin of it: it makes the devices'
    accounts with XEP-0133), listening for clients on ``host``:``port``."""

    def __init__(self, domain: str = "acs.test", *, host: str = "127.0.0.1", admins=()):
        self.domain = domain
        self.host = host
        self.port = free_port(host)
        self.folder = Path(tempfile.mkdtemp(prefix="acs-prosody-"))
        self.folder.chmod(0o755)
        (self.folder / "data").mkdir()
        self.cert, self.key = self_signed(self.folder, domain)
        self.config = self.folder / "prosody.cfg.lua"
        self.log = self.folder / "prosody.log"
        self.admins = tuple(admins)
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_nobody = os.geteuid() == 0
        self._write_config()
        if self._as_nobody:
            for path in (self.folder, *self.folder.iterdir()):
                shutil.chown(path, "nobody", "nogroup")

    def _write_config(self) -> None:
        admins = "; ".join(f'"{a}"' for a in self.admins)
        self.config.write_text(
            f"""
admins = {{ {admins} }}
modules_enabled = {{ "disco"; "roster"; "saslauth"; "tls"; "ping"; "admin_adhoc"; }}
modules_disabled = {{ "s2s"; }}
pidfile = "{self.folder}/prosody.pid"
data_path = "{self.folder}/data"
certificates = "{self.folder}"
c2s_ports = {{ {self.port} }}
c2s_interfaces = {{ "{self.host}" }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = true
authentication = "internal_hashed"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.log}" }} }}
VirtualHost "{self.domain}"
  ssl = {{ certificate = "{self.cert}", key = "{self.key}" }}
"""
        )

    def _run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            argv,
            capture_output=True,
            timeout=30,
            check=True,
            user="nobody" if self._as_nobody else None,
            group="nogroup" if self._as_nobody else None,
            **kwargs,  # type: ignore[arg-type]
        )

    def register(self, user: str, password: str) -> str:
        """An account (prosodyctl); its bare JID."""
        self._run(
            ["prosodyctl", "--config", str(self.config), "register", user, self.domain, password]
        )
        return f"{user}@{self.domain}"

    def start(self, seconds: float = 15) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["prosody", "--config", str(self.config), "-F"],
                stdout=out,
                stderr=subprocess.STDOUT,
                user="nobody" if self._as_nobody else None,
                group="nogroup" if self._as_nobody else None,
            )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prosody did not listen in time: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"
