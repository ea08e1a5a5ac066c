"""SQLAlchemy 2.x models. The migrations in ``migrations/`` create exactly these tables.

A device is one row: indexed columns for what operators search by, and the whole
parameter tree as one JSON document (``parameters``), shaped
``{path: {"value": ..., "type": "xsd:...", "updated": "<ISO time>", "writable": bool}}``
(``writable`` only once a GetParameterNames told us). An Inform is then one row write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from acs.db.types import JSONDoc, OrderedJSON, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDoc}


BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Meta(Base):
    """Server-wide values generated once and shared by every node (secret key, ...)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        # Tag filters use jsonb containment (tags @> '["x"]') on PostgreSQL.
        Index(
            "ix_devices_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
        # A status search and the status job: status = x AND inform_deadline <= now, from
        # the index alone (a count of the late in a million reads no table row).
        Index("ix_devices_status_inform_deadline", "status", "inform_deadline"),
        # The device list sorted by last Inform, ties by id: a page is a walk of this index.
        Index("ix_devices_last_inform_id", "last_inform", "id"),
    )

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    manufacturer: Mapped[str] = mapped_column(String(128), default="")
    oui: Mapped[str] = mapped_column(String(32), index=True)
    product_class: Mapped[str] = mapped_column(String(128), default="", index=True)
    serial_number: Mapped[str] = mapped_column(String(128), index=True)
    mac: Mapped[str | None] = mapped_column(String(17), index=True)
    software_version: Mapped[str | None] = mapped_column(String(128), index=True)
    hardware_version: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
    connection_request_url: Mapped[str | None] = mapped_column(Text)
    udp_connection_request_address: Mapped[str | None] = mapped_column(String(128))
    periodic_inform_interval: Mapped[int | None] = mapped_column(Integer)
    cwmp_version: Mapped[str | None] = mapped_column(String(8))
    # NULL for a device registered by an operator that has not informed yet (never_seen)
    first_seen: Mapped[datetime | None]
    last_inform: Mapped[datetime | None]
    last_boot: Mapped[datetime | None]
    last_bootstrap: Mapped[datetime | None]
    last_events: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Per-device CWMP credentials (override the shared pair once set). Digest needs
    # HA1 = H(user:realm:password) per algorithm; the password itself is never kept.
    cwmp_username: Mapped[str | None] = mapped_column(String(256), index=True)  # FTP logins
    cwmp_ha1_md5: Mapped[str | None] = mapped_column(String(32))
    cwmp_ha1_sha256: Mapped[str | None] = mapped_column(String(64))
    # The lifecycle of the pair the ACS gives the device in common mode (NULL: new), a
    # pending pair as HA1s: acs.services.policy.device_credentials
    cwmp_credentials: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    # Connection request credentials the ACS set on the device. The password must be
    # usable (the CPE's Digest realm is unknown in advance), so it is kept encrypted
    # with the server secret (AES-GCM), never in clear.
    cr_username: Mapped[str | None] = mapped_column(String(256))
    cr_password_enc: Mapped[str | None] = mapped_column(Text)
    cr_result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    rpc_methods: Mapped[list[str] | None] = mapped_column(JSONDoc)
    # Monitoring (services/monitoring.py): the status as of its last move, since when, and
    # when it moves on if no Inform comes (an Inform sets it; the status job moves it).
    status: Mapped[str] = mapped_column(String(16), server_default="online")
    status_since: Mapped[datetime | None]
    inform_deadline: Mapped[datetime | None]
    # ACS mode for this device ("common" or "ctc"); NULL follows its phone profile or the
    # server default (ACS_MODE).
    mode: Mapped[str | None] = mapped_column(String(8))
    # Presets (services/presets.py): the mark of the last evaluation that found the device
    # converged (NULL: evaluate at the next Inform), and per preset its failures and backoff.
    presets_mark: Mapped[str | None] = mapped_column(String(255))
    presets_state: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    # The digest of the parameters its last Inform carried (services/inform.py), while the tree
    # holds them as that Inform left them: NULL once anything else wrote the tree.
    inform_digest: Mapped[str | None] = mapped_column(String(32))


class CwmpSession(Base):
    """An open CWMP session. ``device_id`` is unique: one session per device, enforced here,
    whichever worker or node serves it."""

    __tablename__ = "cwmp_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[dict[str, Any]]
    peer_host: Mapped[str] = mapped_column(String(64), index=True)
    peer_port: Mapped[int] = mapped_column(Integer)
    started: Mapped[datetime]
    updated: Mapped[datetime]
    # Not indexed: only the sweeper asks by expiry alone, over open sessions (migration 0004).
    expires: Mapped[datetime]


class InformRecord(Base):
    """History of Informs: when, from where, with which events."""

    __tablename__ = "informs"
    __table_args__ = (Index("ix_informs_device_id_received", "device_id", "received"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    received: Mapped[datetime] = mapped_column(index=True)
    events: Mapped[list[list[str]]] = mapped_column(JSONDoc)  # [[EventCode, CommandKey]]
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    peer_host: Mapped[str | None] = mapped_column(String(64))


class Task(Base):
    """An ACS request queued for a device: run in its next session, in creation order."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_device_id_status", "device_id", "status"),
        Index("ix_tasks_device_id_command_key", "device_id", "command_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    command_key: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    next_attempt: Mapped[datetime | None]
    expires: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    fault: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    session_id: Mapped[str | None] = mapped_column(String(64))


class FaultRecord(Base):
    """A CPE fault or an ACS-side failure, per device and task."""

    __tablename__ = "faults"
    __table_args__ = (Index("ix_faults_device_id_time", "device_id", "time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    time: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(8))  # "cpe" or "acs"
    code: Mapped[int] = mapped_column(Integer)
    string: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin, operator, viewer
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(default=False)
    created: Mapped[datetime]


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored (tokens are 256-bit random)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    operator_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime]
    last_used: Mapped[datetime | None]
    expires: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in operator in the web console (acs/web/console): the cookie carries a
    256-bit random token, only its SHA-256 is stored. A row per session, so that logout and
    disabling an operator end it on every worker and node."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    operator_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    created: Mapped[datetime]
    last_seen: Mapped[datetime]  # moved coarsely; the idle timeout counts from it
    expires: Mapped[datetime] = mapped_column(index=True)  # the absolute end


class InformMinute(Base):
    """Informs received in one closed minute: the console's chart reads these rows, never a
    day of ``informs``. Filled by readers (services/overview.py), once per minute."""

    __tablename__ = "inform_minutes"

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    connection_requests: Mapped[int] = mapped_column(Integer)  # with 6 CONNECTION REQUEST


class AuditEntry(Base):
    """Who changed what, when: every state-changing API request."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(index=True)
    operator: Mapped[str | None] = mapped_column(String(128), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class StoredFile(Base):
    """A file CPEs download: metadata here, bytes in the data dir, named by their SHA-256."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    file_type: Mapped[str] = mapped_column(String(64))
    oui: Mapped[str | None] = mapped_column(String(32))
    product_class: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(128))
    created: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))


class ConfigProfile(Base):
    """Phone configuration settings: a model's general file, or a user-named profile."""

    __tablename__ = "config_profiles"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "general" (name = model) or "named"
    name: Mapped[str] = mapped_column(String(128))
    modules: Mapped[dict[str, Any]] = mapped_column(OrderedJSON)  # {module: {key: value}}
    config_key: Mapped[str | None] = mapped_column(String(64))  # AES key, general file
    common_key: Mapped[str | None] = mapped_column(String(64))  # AES key, other files
    mode: Mapped[str | None] = mapped_column(String(8))
    updated: Mapped[datetime]


class Phone(Base):
    """A VoIP phone known by its MAC: its profile, variables, own settings, $input id."""

    __tablename__ = "phones"

    mac: Mapped[str] = mapped_column(String(12), primary_key=True)  # 12 lower-case hex
    model: Mapped[str | None] = mapped_column(String(32))
    profile: Mapped[str | None] = mapped_column(String(128))
    input_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    variables: Mapped[dict[str, Any]]
    modules: Mapped[dict[str, Any]] = mapped_column(OrderedJSON)  # own settings, merged last
    mode: Mapped[str | None] = mapped_column(String(8))
    updated: Mapped[datetime]
    # the phone's own provisioning credentials: only what Basic and Digest verification
    # need (HA1 = H(username:realm:password) in the CWMP realm), never the password
    prov_username: Mapped[str | None] = mapped_column(String(128), unique=True)
    prov_ha1_md5: Mapped[str | None] = mapped_column(String(32))
    prov_ha1_sha256: Mapped[str | None] = mapped_column(String(64))


class Rendering(Base):
    """A configuration file as the file server sends it, kept until one of its inputs
    changes (profile, phone, assignment, stored file): a fetch is then one read. ``key``:
    ``general:<model>:<fmt>``, ``mac:<mac>:<fmt>`` or ``name:<name>:<fmt>`` (a named
    profile or an $input id); ``base_url``: the URL the phone reached (its AUTOUPDATE URLs
    point there)."""

    __tablename__ = "provisioning_renderings"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    base_url: Mapped[str] = mapped_column(String(512), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str | None] = mapped_column(String(12))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Redirect(Base):
    """A phone (12 hex digits) or a MAC prefix (fewer) sent elsewhere: its requests for
    provisioning files get an HTTP 302 to ``url`` (as Yealink RPS or Fanvil FDPS do)."""

    __tablename__ = "provisioning_redirects"

    prefix: Mapped[str] = mapped_column(String(12), primary_key=True)  # lower-case hex
    url: Mapped[str] = mapped_column(String(1024))
    created: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))


class FileAssignment(Base):
    """Which stored file a model's or a phone's auto-update URL points at."""

    __tablename__ = "file_assignments"
    __table_args__ = (UniqueConstraint("scope", "target", "purpose"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))  # "model" or "phone"
    target: Mapped[str] = mapped_column(String(128))  # model name or MAC
    purpose: Mapped[str] = mapped_column(String(16))  # image, pbook, etc, logo, ...
    file_name: Mapped[str] = mapped_column(
        ForeignKey("files.name", ondelete="CASCADE", onupdate="CASCADE")
    )


class RenderedConfig(Base):
    """The last rendering of each configuration file: its digest decides the version."""

    __tablename__ = "rendered_configs"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    updated: Mapped[datetime]


class Rollout(Base):
    """One task for every device matching a filter, in waves, stopped by failures."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    filter: Mapped[dict[str, Any]]
    task: Mapped[dict[str, Any]]
    wave_size: Mapped[int] = mapped_column(Integer)
    failure_threshold: Mapped[float] = mapped_column(Float)
    connection_request: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    waves: Mapped[int] = mapped_column(Integer, default=0)
    targets: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))
    finished: Mapped[datetime | None]


class RolloutTarget(Base):
    __tablename__ = "rollout_targets"
    __table_args__ = (Index("ix_rollout_targets_rollout_id_wave", "rollout_id", "wave"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(BigId, ForeignKey("rollouts.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(256))
    wave: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int | None] = mapped_column(BigId)


class WorkOrder(Base):
    """CTC: a subscriber's LOID waiting for a device to bind, and what to apply then."""

    __tablename__ = "work_orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    loid: Mapped[str] = mapped_column(String(128), unique=True)
    password: Mapped[str | None] = mapped_column(String(128))
    tasks: Mapped[list[Any]] = mapped_column(JSONDoc)
    profile: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, bound
    device_id: Mapped[str | None] = mapped_column(String(256), index=True)
    created: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))
    bound: Mapped[datetime | None]


class DigestNonce(Base):
    """Highest nonce count seen per nonce; used only with ACS_CWMP_DIGEST_STRICT."""

    __tablename__ = "digest_nonces"

    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_nc: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[datetime] = mapped_column(index=True)


class Event(Base):
    """A fact about a device or the fleet (services/events.py): kept for the API, the
    console and webhooks, written in the transaction of what it records."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_device_id_id", "device_id", "id"),
        Index("ix_events_type_id", "type", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(index=True)
    type: Mapped[str] = mapped_column(String(48))
    # no foreign key: events outlive a deleted device
    device_id: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[dict[str, Any]]


class Webhook(Base):
    """A subscription: events of these types (matching ``filter``) are POSTed to ``url``."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    secret_enc: Mapped[str] = mapped_column(Text)  # sealed (secretbox): it signs deliveries
    event_types: Mapped[list[str]] = mapped_column(JSONDoc, default=list)  # [] = every type
    filter: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    # the last event fanned out into deliveries (events after it are still to be considered)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))


class WebhookDelivery(Base):
    """One event to one webhook: the outbox row, retried until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt", "status", "next_attempt"),
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
        UniqueConstraint("webhook_id", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime]
    delivered: Mapped[datetime | None]


class NatTraversal(Base):
    """How the ACS reaches a device behind a NAT: the STUN credentials it gave the device
    (TR-111), the binding its STUN server saw (the NAT's public address and port, where a
    UDP connection request goes), the XMPP account it made for the device (TR-069 Annex K),
    and what bootstrap provisioning set (``provisioned``: which settings, when)."""

    __tablename__ = "nat_traversal"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    stun_username: Mapped[str | None] = mapped_column(String(256), unique=True)
    stun_password_enc: Mapped[str | None] = mapped_column(Text)  # sealed (secretbox)
    stun_host: Mapped[str | None] = mapped_column(String(64))
    stun_port: Mapped[int | None] = mapped_column(Integer)
    # the last Binding Request from that binding (written at most once a minute per worker)
    stun_seen: Mapped[datetime | None]
    stun_changed: Mapped[datetime | None]  # when the binding last moved
    xmpp_jid: Mapped[str | None] = mapped_column(String(256))  # the account made for it
    xmpp_password_enc: Mapped[str | None] = mapped_column(Text)  # sealed
    xmpp_account: Mapped[str | None] = mapped_column(String(16))  # pending, created, failed
    provisioned: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class XmppRequest(Base):
    """Work only the worker holding the cluster's XMPP session can do: a connection request
    (written by the worker an operator asked) or a device's account to make (written by
    bootstrap provisioning); taken and answered by the holder."""

    __tablename__ = "xmpp_requests"
    __table_args__ = (Index("ix_xmpp_requests_taken_by_id", "taken_by", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(24))  # connection_request, account
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(3071))  # ConnReqJabberID, or the account's JID
    username: Mapped[str | None] = mapped_column(String(256))  # connection request's
    password_enc: Mapped[str] = mapped_column(Text)  # sealed: the CR's, or the account's
    created: Mapped[datetime]
    expires: Mapped[datetime] = mapped_column(index=True)
    taken_by: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    finished: Mapped[datetime | None]


class Lease(Base):
    """A role one worker of the whole cluster holds at a time (the XMPP session), until
    ``expires`` unless its holder renews it; ``detail`` is what the holder reports."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires: Mapped[datetime]
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class Preset(Base):
    """A declarative preset (services/presets.py): the devices it is for (``filter``), when
    it acts (``events``, ``schedule``), its order (``weight``) and the state those devices
    must reach (``desired``). ``version`` moves on every change."""

    __tablename__ = "presets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    filter: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    events: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    schedule: Mapped[str | None] = mapped_column(String(128))
    desired: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime]
    updated: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))
