"""Typed settings from ``ACS_*`` environment variables, a ``.env`` file and CLI flags."""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from acs.cwmp import digest
from acs.provisioning.url import check_url

# The async driver acs uses for each database, and the URL forms that mean it.
_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
_BACKEND_ALIASES = {"postgres": "postgresql"}
URL_FORMS = "postgresql://user:password@host:5432/dbname or sqlite:////absolute/path/acs.db"


def database_url(raw: str) -> str:
    """A database URL as acs connects to it: ``postgresql://`` and ``postgres://`` become
    ``postgresql+asyncpg://``, ``sqlite://`` becomes ``sqlite+aiosqlite://`` with its path
    made absolute. ``ValueError`` (never echoing the URL, which may hold a password) for what
    acs cannot use."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise ValueError(f"not a database URL: write {URL_FORMS}") from None
    backend, _, driver = url.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    if backend not in _DRIVERS:
        raise ValueError(f"acs does not support {backend!r} databases: write {URL_FORMS}")
    wanted = _DRIVERS[backend]
    if driver and driver != wanted:
        raise ValueError(
            f"acs talks to {backend} through {wanted}: write {backend}:// "
            f"(or {backend}+{wanted}://), not {url.drivername}://"
        )
    url = url.set(drivername=f"{backend}+{wanted}")
    path = url.database
    if backend == "sqlite" and path and path != ":memory:" and not path.startswith("file:"):
        url = url.set(database=str(Path(path).expanduser().resolve()))
    return url.render_as_string(hide_password=False)


# What a parameter path given to the ACS for indexing may contain (it is written into SQL,
# inside quotes, as an index expression).
INDEXABLE_PATH_RE = re.compile(r"^[A-Za-z0-9_.{}-]{1,256}$")

# The paths a connection request may take (ACS_CONNECTION_REQUEST_ORDER).
CONNECTION_REQUEST_PATHS = ("http", "udp", "xmpp")
HOST_PORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
JID_RE = re.compile(r"^[^@/\s]+@[^@/\s]+$")

# Secrets that may be given as a file instead, ACS_<NAME>_FILE (Docker and Kubernetes mount
# secrets as files; an environment variable shows in `docker inspect` and /proc).
SECRET_FILE_SETTINGS = ("admin_password", "cwmp_password", "secret_key", "xmpp_password")


class Settings(BaseSettings):
    """Everything an operator can set. Each field is ``ACS_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="ACS_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(Path("data"), description="where the SQLite file and files live")
    database_url: str | None = Field(
        None,
        description="default: SQLite in the data dir. PostgreSQL: postgresql://user:pass@host/db "
        "(postgres:// and postgresql+asyncpg:// too); SQLite: sqlite:///path/acs.db",
    )
    db_pool_size: int = Field(
        20,
        ge=1,
        le=1000,
        description="PostgreSQL connections each worker keeps open; requests beyond wait",
    )
    db_max_overflow: int = Field(
        0,
        ge=0,
        le=1000,
        description="connections a worker may open beyond the pool in a burst; each is "
        "closed again when returned, so a steady load beyond the pool pays a new connection "
        "per transaction",
    )
    bind: str = Field("0.0.0.0", description="address both listeners bind to")  # noqa: S104
    cwmp_port: int = Field(7547, ge=0, le=65535)
    api_port: int = Field(7557, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto", description="workers' event loop; auto: uvloop where installed"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="text lines, or one JSON object a line for log shippers"
    )
    secret_key: str | None = Field(
        None,
        description="signs Digest nonces and URLs, seals CR passwords; the same on every "
        "node. Default: SQLite, a key file beside the database (<db>.key, 0600); PostgreSQL "
        "needs it",
    )
    secret_key_file: Path | None = Field(
        None, description="read ACS_SECRET_KEY from this file (e.g. a Docker secret)"
    )

    # --- connections, on both listeners (acs.web.guard) ------------------------------------
    http_header_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a client has to send a request's headers, from its connection "
        "(or, on a kept-alive one, from the request's first byte); then it is closed",
    )
    http_body_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds a client has to send a request's body, plus one per "
        "ACS_HTTP_BODY_MIN_RATE bytes it sent; then it is closed",
    )
    http_body_min_rate: int = Field(
        500,
        ge=1,
        description="bytes per second that earn a body one more second (large bodies over "
        "slow links go on; a byte every few seconds does not)",
    )
    http_max_connections_per_source: int = Field(
        256,
        ge=1,
        description="connections a worker keeps open from one address (IPv6: one /64); "
        "more are closed at once. CPEs behind carrier-grade NAT share an address",
    )
    http_idle_connections: int = Field(
        1024,
        ge=1,
        description="kept-alive connections a worker holds between requests, per listener; "
        "beyond, the longest idle is closed",
    )

    # --- CWMP listener -----------------------------------------------------------------
    cwmp_auth: Literal["digest", "basic", "none"] = "digest"
    cwmp_username: str = "acs"
    cwmp_password: str | None = Field(
        None, description="shared CPE password; default: generated once, kept in the DB"
    )
    cwmp_password_file: Path | None = Field(
        None, description="read ACS_CWMP_PASSWORD from this file (e.g. a Docker secret)"
    )
    cwmp_realm: str = "acs"
    cwmp_device_credentials: bool | None = Field(
        None,
        description="common mode: give each device a CWMP username/password of its own on its "
        "first session, after which the shared pair no longer admits it. Default: on for new "
        "installs, off for databases that had devices before this acs",
    )
    cwmp_digest_algorithms: str = Field(
        "MD5",
        description="offered in this order, a header each; most CPEs know only MD5 and read "
        "one header, the first or the last",
    )
    cwmp_nonce_lifetime: int = Field(300, ge=10)
    cwmp_digest_strict: bool = Field(
        False,
        description="refuse reused nonce counts and answers without qop (many CPEs do both)",
    )
    cwmp_allow_basic_over_http: bool = Field(
        False, description="accept Basic without TLS, for legacy CPEs that send it pre-emptively"
    )
    cwmp_session_timeout: int = Field(30, ge=1, description="seconds without a request")
    cwmp_max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    cwmp_max_sessions: int = Field(
        500, ge=1, description="sessions a worker keeps open at once; new ones beyond: 503"
    )
    cwmp_max_inflight: int = Field(
        2048, ge=1, description="requests a worker holds at once (bodies in memory); beyond: 503"
    )
    cwmp_tls_certfile: Path | None = Field(
        None, description="PEM certificate (chain): serve HTTPS on ACS_CWMP_TLS_PORT too"
    )
    cwmp_tls_keyfile: Path | None = Field(None, description="PEM private key of the certificate")
    cwmp_tls_port: int = Field(
        7548,
        ge=0,
        le=65535,
        description="port of the CWMP listener's HTTPS side (with a certificate configured)",
    )
    cwmp_http: bool = Field(
        True,
        description="serve plain HTTP on ACS_CWMP_PORT; false (off): HTTPS only, which needs a "
        "certificate",
    )
    tls_min_version: Literal["1.0", "1.1", "1.2", "1.3"] = Field(
        "1.2",
        description="oldest TLS version the HTTPS listener accepts; 1.0 and 1.1 (deprecated, "
        "RFC 8996) also lower OpenSSL's security level, for old phones only",
    )

    # --- tasks and provisioning on first contact -----------------------------------------
    periodic_inform_interval: int = Field(
        3600, ge=0, description="set on every new device (0: leave the device's own setting)"
    )
    spread_inform_time: bool = Field(
        True,
        description="with the periodic inform interval, set PeriodicInformTime at an offset "
        "within the interval derived from the device id, so a fleet does not inform at once",
    )
    presets_timezone: str = Field(
        "UTC", description="time zone of the presets' schedule windows (an IANA name)"
    )
    task_max_attempts: int = Field(5, ge=1, description="tries of a task before it faults")
    task_retry_base_seconds: float = Field(
        60.0, ge=0, description="first retry delay after a transient fault; doubles each time"
    )
    task_default_ttl: int = Field(
        7 * 86400, ge=60, description="seconds a task may wait for its device before it expires"
    )
    transfer_timeout: int = Field(
        3600, ge=10, description="seconds a Download/Upload may wait for its TransferComplete"
    )
    boot_timeout: int = Field(
        900, ge=10, description="seconds a Reboot/FactoryReset may wait for the boot Inform"
    )
    scheduler_interval: float = Field(
        5.0, gt=0, description="seconds between housekeeping runs (expiry, rollouts, silence)"
    )
    silent_grace: int = Field(
        120, ge=0, description="seconds past a missed periodic Inform before a device is late"
    )
    offline_after_missed: int = Field(
        3, ge=2, le=1000, description="missed periodic Informs that make a device offline"
    )
    watched_parameters: str = Field(
        "",
        description="comma-separated parameter paths whose changes are recorded as events",
    )
    event_retention_days: int = Field(30, ge=1, description="days events are kept")
    webhook_timeout: float = Field(10.0, gt=0, le=120, description="seconds per delivery")
    webhook_max_attempts: int = Field(
        10, ge=1, le=100, description="attempts of a delivery before it is failed"
    )

    # --- the web console ------------------------------------------------------------------
    console_idle_timeout: int = Field(
        1800, ge=60, description="seconds without a request after which a console sign-in ends"
    )
    console_session_max: int = Field(
        12 * 3600, ge=300, description="seconds a console sign-in lasts at most, however busy"
    )

    # --- connection requests -------------------------------------------------------------
    connection_request_timeout: float = Field(5.0, gt=0)
    udp_connection_request_repeats: int = Field(3, ge=1, le=10)
    connection_request_order: str = Field(
        "http,udp,xmpp",
        description="the paths a connection request tries, in this order (http, udp, xmpp); "
        "a path the device has no means for is skipped, and one that gets no answer gives "
        "way to the next",
    )

    # --- reaching CPEs behind NAT: STUN (TR-111 part 2) and XMPP (TR-069 Annex K) ---------
    stun_port: int | None = Field(
        None, ge=1, le=65535, description="UDP port of the STUN server (3478); unset: off"
    )
    stun_server_address: str | None = Field(
        None,
        description="STUNServerAddress given to devices; default: the host of ACS_PUBLIC_URL, "
        "else the host the device used to reach the CWMP listener",
    )
    stun_keepalive: int = Field(
        30,
        ge=1,
        le=3600,
        description="STUNMinimumKeepAlivePeriod and STUNMaximumKeepAlivePeriod given to "
        "devices: seconds between their Binding Requests (shorter than the NAT's UDP timeout)",
    )
    xmpp_jid: str | None = Field(
        None, description="the ACS's XMPP account (user@domain); unset: no XMPP"
    )
    xmpp_password: str | None = None
    xmpp_password_file: Path | None = Field(
        None, description="read ACS_XMPP_PASSWORD from this file (e.g. a Docker secret)"
    )
    xmpp_server: str | None = Field(
        None, description="host:port of the XMPP server; default: the JID's domain, port 5222"
    )
    xmpp_ca_file: Path | None = Field(
        None,
        description="CA certificates the XMPP server's certificate is checked against "
        "(default: the system's); TLS is always required",
    )
    xmpp_cpe_domain: str | None = Field(
        None,
        description="make each device an XMPP account on this domain at bootstrap (the ACS's "
        "account must be an admin of the server: XEP-0133); unset: devices bring their own",
    )
    xmpp_cpe_server: str | None = Field(
        None,
        description="host:port devices connect to for their XMPP account; default: they "
        "look the domain up (DNS SRV)",
    )

    # --- provisioning -------------------------------------------------------------------
    mode: Literal["common", "ctc"] = Field(
        "common",
        description="ACS mode (common TR-069, or China Telecom ITMS extensions); "
        "a device, phone or profile may override it",
    )
    public_url: str | None = Field(
        None,
        description="how CPEs reach the CWMP listener (http://acs.example:7547), for the "
        "URLs the ACS hands out; default: the Host the CPE used",
    )
    file_url_ttl: int = Field(86400, ge=60, description="lifetime of signed Download URLs")
    max_file_bytes: int = Field(1024**3, ge=1024, description="largest file the store accepts")
    provisioning_auth: Literal["digest", "basic", "any", "none"] = Field(
        "digest",
        description="how phones authenticate to fetch files and configurations without a "
        "signed URL (the shared CWMP pair, or a phone's own): digest (Basic too where allowed), "
        "basic, any (both challenged), none (anyone may fetch anything)",
    )
    provisioning_allow_basic_over_http: bool = Field(
        False,
        description="accept Basic credentials for provisioning files over plain HTTP (always "
        "over HTTPS and FTP): they travel in clear",
    )
    provisioning_shared_reads_all: bool = Field(
        False,
        description="the shared pair may fetch every phone's MAC file too (they carry SIP "
        "passwords); off: only the phone's own credentials (or a signed URL) may",
    )
    phone_aes_mode: Literal["ecb", "cbc"] = Field(
        "ecb", description="AES-256 mode of encrypted phone configuration files"
    )

    # --- TFTP and FTP: the same provisioning files, for phones that fetch them so ---------
    tftp_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="serve provisioning files over TFTP on this UDP port (69 in production); "
        "unset: no TFTP",
    )
    tftp_allow: str = Field(
        "",
        description="comma-separated networks (CIDR) whose phones may fetch over TFTP, which "
        "has no authentication; required with ACS_TFTP_PORT",
    )
    file_cache_mb: int = Field(
        64,
        ge=0,
        description="MiB of stored files each worker keeps in memory for TFTP and FTP, so a "
        "firmware 1,000 phones fetch at once is read once; 0: read each time",
    )
    tftp_max_transfers: int = Field(
        1000,
        ge=1,
        description="TFTP transfers a worker serves at once; requests beyond get no answer "
        "(the phone asks again)",
    )
    ftp_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="serve provisioning files over FTP (read-only) on this TCP port; unset: no FTP",
    )
    ftp_passive_ports: str | None = Field(
        None, description="lo-hi: the ports passive FTP data connections use; unset: any"
    )
    ftp_passive_address: str | None = Field(
        None,
        description="the IPv4 address passive FTP replies announce (a NAT's public address); "
        "unset: the address the client reached",
    )

    # --- SIP PnP: phones that ask, by multicast, where their configuration is --------------
    sip_pnp_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="answer phones' SIP PnP SUBSCRIBEs on this UDP port (5060 in "
        "production); unset: no SIP PnP",
    )
    sip_pnp_url: str | None = Field(
        None,
        description="the URL a NOTIFY carries ($mac, $vendor, $model, $version filled in); "
        "default: ACS_PUBLIC_URL, else http://<the address the phone reached>:<ACS_CWMP_PORT>, "
        "then /prov/$mac.cfg",
    )
    sip_pnp_multicast: bool = Field(
        True,
        description="join 224.0.1.75, where phones send their SUBSCRIBE (unicast is "
        "answered either way)",
    )
    sip_pnp_mac_prefixes: str = Field(
        "", description="comma-separated MAC prefixes (hex) of the phones to answer; empty: any"
    )
    sip_pnp_models: str = Field(
        "", description="comma-separated models (the SUBSCRIBE's Event model) to answer; empty: any"
    )
    sip_pnp_known_only: bool = Field(
        False, description="answer only phones the ACS has (PUT /api/v1/phones/{mac})"
    )

    # --- management API --------------------------------------------------------------------
    admin_password: str | None = Field(
        None,
        min_length=8,
        description="if set, an 'admin' operator with this password is created at start",
    )
    admin_password_file: Path | None = Field(
        None, description="read ACS_ADMIN_PASSWORD from this file (e.g. a Docker secret)"
    )
    metrics_public: bool = Field(False, description="serve /metrics without authentication")
    indexed_parameters: str = Field(
        "", description="comma-separated parameter paths to index for device searches"
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """ACS_<NAME>_FILE: the secret is the file's content, read here, once, when the
        settings are made at start. Errors name the file, never what it holds."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        problems: list[InitErrorDetails] = []
        for name in SECRET_FILE_SETTINGS:
            path = data.get(f"{name}_file")
            if path is None or str(path) == "":
                continue
            problem: str | None
            if data.get(name) not in (None, ""):
                problem = f"set ACS_{name.upper()} or ACS_{name.upper()}_FILE, not both"
            else:
                data[name], problem = _read_secret(Path(path))
            if problem is not None:
                error = PydanticCustomError("secret_file", "{problem}", {"problem": problem})
                problems.append({"type": error, "loc": (f"{name}_file",), "input": str(path)})
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return data

    @field_validator("connection_request_order")
    @classmethod
    def _order(cls, value: str) -> str:
        paths = [p.strip().lower() for p in value.split(",") if p.strip()]
        unknown = [p for p in paths if p not in CONNECTION_REQUEST_PATHS]
        if not paths or unknown or len(set(paths)) != len(paths):
            raise ValueError(
                f"a comma-separated order of {', '.join(CONNECTION_REQUEST_PATHS)}, each once; "
                f"got {value!r}"
            )
        return ",".join(paths)

    @field_validator("xmpp_server", "xmpp_cpe_server")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value and not HOST_PORT_RE.fullmatch(value.strip()):
            raise ValueError(f"host:port (or [v6]:port), got {value!r}")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _xmpp(self) -> Settings:
        if self.xmpp_jid and not JID_RE.fullmatch(self.xmpp_jid):
            raise ValueError(f"ACS_XMPP_JID is user@domain, got {self.xmpp_jid!r}")
        if bool(self.xmpp_jid) != bool(self.xmpp_password):
            raise ValueError("ACS_XMPP_JID and ACS_XMPP_PASSWORD go together")
        if self.xmpp_cpe_domain and not self.xmpp_jid:
            raise ValueError("ACS_XMPP_CPE_DOMAIN needs ACS_XMPP_JID (the ACS makes the accounts)")
        return self

    @property
    def connection_request_paths(self) -> tuple[str, ...]:
        return tuple(self.connection_request_order.split(","))

    @field_validator("indexed_parameters", "watched_parameters")
    @classmethod
    def _indexable(cls, value: str) -> str:
        bad = [
            p for p in value.split(",") if p.strip() and not INDEXABLE_PATH_RE.fullmatch(p.strip())
        ]
        if bad:
            raise ValueError(f"not parameter paths: {bad} (letters, digits and _ . {{ }} -)")
        return value

    @property
    def indexed_parameter_list(self) -> list[str]:
        return [p.strip() for p in self.indexed_parameters.split(",") if p.strip()]

    @property
    def watched_parameter_list(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(p.strip() for p in self.watched_parameters.split(",") if p.strip())
        )

    @field_validator("presets_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (e.g. Europe/Paris)") from None
        return value

    @field_validator("tftp_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"{part.strip()!r} is not a network: write CIDRs such as "
                        "192.0.2.0/24,2001:db8::/32 (0.0.0.0/0,::/0 for everyone)"
                    ) from None
        return value

    @property
    def tftp_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(p.strip(), strict=False)
            for p in self.tftp_allow.split(",")
            if p.strip()
        )

    @field_validator("ftp_passive_ports")
    @classmethod
    def _port_range(cls, value: str | None) -> str | None:
        if not value:
            return None
        low, dash, high = value.partition("-")
        if not (dash and low.strip().isdigit() and high.strip().isdigit()):
            raise ValueError(f"write lo-hi, such as 50000-50999; got {value!r}")
        if not 1 <= int(low) <= int(high) <= 65535:
            raise ValueError(f"ports from 1 to 65535, the first no higher; got {value!r}")
        return f"{int(low)}-{int(high)}"

    @property
    def ftp_passive_port_range(self) -> range | None:
        if self.ftp_passive_ports is None:
            return None
        low, _, high = self.ftp_passive_ports.partition("-")
        return range(int(low), int(high) + 1)

    @field_validator("ftp_passive_address")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise ValueError(f"an IPv4 address (PASV announces only those): {value!r}") from None

    @field_validator("sip_pnp_url")
    @classmethod
    def _sip_pnp_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        return check_url(value.strip())

    @field_validator("sip_pnp_mac_prefixes")
    @classmethod
    def _mac_prefixes(cls, value: str) -> str:
        prefixes = []
        for part in value.split(","):
            prefix = re.sub(r"[:.-]", "", part.strip()).lower()
            if part.strip() and not re.fullmatch(r"[0-9a-f]{1,12}", prefix):
                raise ValueError(
                    f"{part.strip()!r} is not a MAC prefix: write hex digits, such as 0c383e,001565"
                )
            if prefix:
                prefixes.append(prefix)
        return ",".join(prefixes)

    @property
    def sip_pnp_mac_prefix_list(self) -> tuple[str, ...]:
        return tuple(p for p in self.sip_pnp_mac_prefixes.split(",") if p)

    @property
    def sip_pnp_model_list(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(m.strip().lower() for m in self.sip_pnp_models.split(",") if m.strip())
        )

    @field_validator("cwmp_digest_algorithms")
    @classmethod
    def _algorithms(cls, value: str) -> str:
        names = [a.strip().upper() for a in value.split(",") if a.strip()]
        unknown = [a for a in names if a not in digest.ALGORITHMS]
        if not names or unknown:
            raise ValueError(f"choose from {', '.join(digest.ALGORITHMS)}; got {value!r}")
        return ",".join(names)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return None if not value else database_url(value)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.cwmp_tls_certfile is None) != (self.cwmp_tls_keyfile is None):
            raise ValueError("ACS_CWMP_TLS_CERTFILE and ACS_CWMP_TLS_KEYFILE go together")
        if not self.cwmp_http and not self.cwmp_tls:
            raise ValueError(
                "ACS_CWMP_HTTP=false leaves no CWMP listener: configure a certificate "
                "(ACS_CWMP_TLS_CERTFILE/KEYFILE) for HTTPS"
            )
        return self

    @model_validator(mode="after")
    def _tftp_allow_given(self) -> Settings:
        if self.tftp_port is not None and not self.tftp_networks:
            raise ValueError(
                "ACS_TFTP_PORT needs ACS_TFTP_ALLOW: the networks whose phones may fetch "
                "over TFTP (it has no authentication, and MAC files carry SIP passwords)"
            )
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        """The URL acs connects to, with its async driver (``database_url``)."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'acs.db').resolve()}"

    @property
    def redacted_database_url(self) -> str:
        """``resolved_database_url`` with the password masked, for messages."""
        return make_url(self.resolved_database_url).render_as_string(hide_password=True)

    @property
    def storage(self) -> str:
        """Where this acs keeps its data, for messages: "database ..., data dir ..."."""
        return f"database {self.redacted_database_url}, data dir {self.data_dir.resolve()}"

    @property
    def cwmp_tls(self) -> bool:
        """A certificate is configured: the CWMP listener serves HTTPS (on ACS_CWMP_TLS_PORT)."""
        return self.cwmp_tls_certfile is not None

    def cwmp_base_url(self, host: str) -> str:
        """``scheme://host:port`` of the CPE-facing listener, for URLs the ACS hands out where
        no HTTP request says how the device reached it (TFTP, FTP, SIP PnP, the API's
        previews): ``ACS_PUBLIC_URL``, else HTTPS when a certificate is configured (MAC files
        carry SIP passwords), else HTTP. ``host`` is an address or name, IPv6 unbracketed."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        if self.cwmp_tls:
            return f"https://{host}:{self.cwmp_tls_port}"
        return f"http://{host}:{self.cwmp_port}"

    @property
    def digest_algorithms(self) -> tuple[str, ...]:
        return tuple(self.cwmp_digest_algorithms.split(","))


def _read_secret(path: Path) -> tuple[str | None, str | None]:
    """A secret file's content without its trailing newline (``echo pw > file`` adds one),
    or why there is none."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or type(exc).__name__}"
    except UnicodeDecodeError:
        return None, f"{path} is not UTF-8 text"
    return (value, None) if value else (None, f"{path} is empty")
