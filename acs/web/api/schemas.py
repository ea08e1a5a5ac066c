"""API schemas, kept apart from the ORM models (XPublic, XsPublic(data, count), XCreate...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Page(BaseModel):
    count: int = Field(description="how many match in all (not only this page)")


class ParameterPublic(BaseModel):
    value: Any = None
    type: str | None = None
    writable: bool | None = None
    updated: str | None = Field(
        None,
        description="when the ACS last wrote this value: read or set it, or an Inform changed "
        "it (an Inform repeating it does not; the device's last_inform says when it was seen)",
    )
    object: bool | None = None
    notification: int | None = None
    access_list: list[str] | None = None


class ConnectionRequestAttempt(BaseModel):
    via: str = Field(description="http, udp or xmpp")
    outcome: str = Field(description="ok, failed, or skipped (the device has no means for it)")
    detail: str = Field(description="the error, or why the path was taken or skipped")


class ConnectionRequestPublic(BaseModel):
    ok: bool
    method: str = Field(description="the path that settled it: http, udp, xmpp (none: no path)")
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    time: str = ""
    target: str | None = Field(
        None, description="where it went: the URL, the NAT binding or address, the JID"
    )
    reason: str = Field("", description="why this path (ACS_CONNECTION_REQUEST_ORDER)")
    attempts: list[ConnectionRequestAttempt] = Field(
        default_factory=list, description="every path considered, in the order tried"
    )


class DevicePublic(BaseModel):
    id: str
    manufacturer: str
    oui: str
    product_class: str
    serial_number: str
    mac: str | None
    software_version: str | None
    hardware_version: str | None
    ip: str | None
    connection_request_url: str | None
    udp_connection_request_address: str | None
    periodic_inform_interval: int | None
    cwmp_version: str | None
    first_seen: datetime | None = Field(description="its first Inform; null: never seen")
    last_inform: datetime | None
    last_boot: datetime | None
    last_bootstrap: datetime | None
    last_events: list[str]
    tags: list[str]
    status: str = Field(
        description="never_seen (registered, no Inform yet), online, late (missed a periodic "
        "Inform), offline (missed ACS_OFFLINE_AFTER_MISSED), unknown (no periodic interval)"
    )
    status_since: datetime | None = Field(description="when the status last moved")
    next_deadline: datetime | None = Field(
        description="when the status moves on if no Inform comes (late, then offline)"
    )
    silent_since: datetime | None = Field(
        description="deprecated (one release): status_since while late or offline"
    )
    connection_request: ConnectionRequestPublic | None
    connection_request_credentials_set: bool
    own_cwmp_credentials: bool
    cwmp_credentials: Literal["new", "pending", "own", "shared"] = Field(
        description="the device's CWMP credentials: new (the shared pair; common mode gives it "
        "its own next session), pending (given its own, not used yet: both admit it), own "
        "(only its own admits it), shared (it could not take its own: the shared pair)"
    )
    cwmp_credentials_reason: str | None = Field(
        description="why it is shared, or the sessions it has gone on using the shared pair "
        "while pending"
    )
    rpc_methods: list[str] | None
    mode: str | None = Field(description="ACS mode override (common/ctc), null: the default")


class NatPublic(BaseModel):
    stun_username: str | None = Field(description="the STUNUsername the ACS gave the device")
    stun_binding: str | None = Field(
        description="the NAT's public address and port the STUN server saw (host:port)"
    )
    stun_seen: datetime | None = Field(description="its last Binding Request (to a minute)")
    stun_changed: datetime | None = Field(description="when the binding last moved")
    stun_fresh: bool = Field(description="recent enough for a UDP connection request")
    xmpp_jid: str | None = Field(description="the XMPP account the ACS made for the device")
    xmpp_account: str | None = Field(description="pending, created or failed")
    provisioned: dict[str, Any] | None = Field(
        description="what bootstrap provisioning set (stun, xmpp), when, and any error"
    )


class DeviceDetail(DevicePublic):
    parameters: dict[str, ParameterPublic]
    nat: NatPublic | None = Field(
        None, description="STUN and XMPP: how the ACS reaches the device behind a NAT"
    )


class DevicesPublic(Page):
    data: list[DevicePublic]


class TagsPublic(BaseModel):
    tags: list[str]


class TaskPublic(BaseModel):
    id: int
    device_id: str
    name: str
    arguments: dict[str, Any]
    status: str
    command_key: str | None
    created: datetime
    created_by: str | None
    started: datetime | None
    finished: datetime | None
    next_attempt: datetime | None
    expires: datetime | None
    attempts: int
    result: dict[str, Any] | None
    fault: dict[str, Any] | None


class TasksPublic(Page):
    data: list[TaskPublic]


class TasksSubmitted(TasksPublic):
    connection_request: ConnectionRequestPublic | None = None


class FaultPublic(BaseModel):
    id: int
    device_id: str
    task_id: int | None
    time: datetime
    source: str = Field(description="cpe (a CWMP fault from the device) or acs")
    code: int
    string: str
    meaning: str
    detail: dict[str, Any] | None


class FaultsPublic(Page):
    data: list[FaultPublic]


class OperatorPublic(BaseModel):
    name: str
    role: str
    disabled: bool
    created: datetime


class OperatorCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: str = Field(description="admin, operator or viewer")
    password: str | None = Field(None, min_length=8, max_length=1024)


class OperatorUpdate(BaseModel):
    role: str | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)
    disabled: bool | None = None


class TokenCreate(BaseModel):
    name: str = Field("token", min_length=1, max_length=128)
    operator: str | None = Field(None, description="whose token (admins only; default: yours)")
    ttl_seconds: int | None = Field(None, ge=60)


class TokenPublic(BaseModel):
    id: int
    operator: str
    name: str
    created: datetime
    last_used: datetime | None
    expires: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="shown this once; only its hash is kept")


class MePublic(BaseModel):
    name: str
    role: str
    via: str


class AuditPublic(BaseModel):
    id: int
    time: datetime
    operator: str | None
    method: str
    path: str
    status: int
    client: str | None
    detail: dict[str, Any] | None


class AuditsPublic(Page):
    data: list[AuditPublic]


class FilePublic(BaseModel):
    name: str
    file_type: str
    oui: str | None
    product_class: str | None
    version: str | None
    sha256: str
    size: int
    content_type: str
    created: datetime
    created_by: str | None


class FilesPublic(Page):
    data: list[FilePublic]


class RolloutCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    filter: dict[str, Any] = Field(
        description="device filter: product_class, software_version, oui, tag, status, ids, "
        "serial_number, mac, ip, parameters ([[path, value], ...])"
    )
    task: dict[str, Any] = Field(description="one task, as for POST /devices/{id}/tasks")
    wave_size: int = Field(ge=1, le=100_000)
    failure_threshold: float = Field(0.1, ge=0, le=1, description="stop above this share")
    connection_request: bool = False
    task_ttl: int | None = Field(None, ge=60, description="seconds a device may take to run it")


class WaveProgress(BaseModel):
    wave: int
    targets: int
    done: int
    failed: int
    pending: int


class RolloutPublic(BaseModel):
    id: int
    name: str
    filter: dict[str, Any]
    task: dict[str, Any]
    wave_size: int
    failure_threshold: float
    connection_request: bool
    status: str = Field(description="running, stopped or done")
    current_wave: int
    waves: int
    targets: int
    reason: str | None
    created: datetime
    created_by: str | None
    finished: datetime | None
    progress: dict[str, int]
    wave_progress: list[WaveProgress]


class RolloutsPublic(Page):
    data: list[RolloutPublic]


class WorkOrderCreate(BaseModel):
    loid: str = Field(min_length=1, max_length=128)
    password: str | None = Field(None, max_length=128)
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    profile: str | None = Field(None, max_length=128)


class WorkOrderPublic(BaseModel):
    id: int
    loid: str
    has_password: bool
    tasks: list[dict[str, Any]]
    profile: str | None
    status: str
    device_id: str | None
    created: datetime
    created_by: str | None
    bound: datetime | None


class WorkOrdersPublic(Page):
    data: list[WorkOrderPublic]


class ProfilePublic(BaseModel):
    kind: str
    name: str
    modules: dict[str, dict[str, str]]
    config_key_set: bool
    common_key_set: bool
    mode: str | None
    updated: Any


class PhonePublic(BaseModel):
    mac: str
    model: str | None
    profile: str | None
    input_id: str | None
    variables: dict[str, str]
    modules: dict[str, dict[str, str]]
    mode: str | None
    updated: Any
    prov_username: str | None = Field(
        None, description="the phone's own provisioning username (its password is kept hashed)"
    )


class PhonesPublic(Page):
    data: list[PhonePublic]


class DeviceUpdate(BaseModel):
    mode: str | None = Field(None, description="common, ctc, or null to follow the default")


class DeviceRegister(BaseModel):
    """A device to expect: its id is the one its first Inform will give."""

    model_config = ConfigDict(extra="forbid")

    oui: str = Field(min_length=1, max_length=32)
    product_class: str = Field("", max_length=128)
    serial_number: str = Field(min_length=1, max_length=128)
    tags: list[str] = Field(default_factory=list, max_length=64)
    mode: str | None = Field(None, description="common, ctc, or null to follow the default")


class EventPublic(BaseModel):
    id: int
    time: datetime
    type: str
    device_id: str | None
    details: dict[str, Any]


class EventsPublic(BaseModel):
    data: list[EventPublic]
    next: int = Field(description="the cursor for the next page: pass it as after=")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http:// or https:// URL events are POSTed to")
    event_types: list[str] = Field(
        default_factory=list, description="the types delivered; empty: every type"
    )
    filter: dict[str, str] = Field(
        default_factory=dict, description="device_id (exact) and/or device_prefix"
    )
    secret: str | None = Field(
        None, min_length=16, max_length=256, description="signs deliveries; default: generated"
    )


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2048)
    event_types: list[str] | None = None
    filter: dict[str, str] | None = None
    enabled: bool | None = None
    secret: str | None = Field(None, min_length=16, max_length=256)


class WebhookPublic(BaseModel):
    id: int
    url: str
    event_types: list[str]
    filter: dict[str, str]
    enabled: bool
    cursor: int = Field(description="the last event considered for delivery")
    created: datetime
    created_by: str | None


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="shown once: the key of X-ACS-Signature")


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]


class DeliveryPublic(BaseModel):
    id: int
    webhook_id: int
    event_id: int
    status: str = Field(description="pending, sending, delivered or failed")
    attempts: int
    next_attempt: datetime
    last_status: int | None
    last_error: str | None
    created: datetime
    delivered: datetime | None


class DeliveriesPublic(Page):
    data: list[DeliveryPublic]


class PresetUpdate(BaseModel):
    """The fields to replace; the others are kept."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    enabled: bool | None = None
    weight: int | None = None
    filter: dict[str, Any] | None = None
    events: list[str] | None = None
    schedule: str | None = Field(None, description="a window; '' removes it")
    desired: dict[str, Any] | None = None


class PresetPublic(BaseModel):
    id: int
    name: str
    enabled: bool
    weight: int
    filter: dict[str, Any]
    events: list[str]
    schedule: str | None
    desired: dict[str, Any]
    version: int = Field(description="moves on every change")
    created: datetime
    updated: datetime
    created_by: str | None


class PresetsPublic(BaseModel):
    data: list[PresetPublic]


class PresetDevicePlan(BaseModel):
    id: str
    matches: bool | None = Field(description="null: it depends on values the ACS does not know")
    acts_now: bool = Field(description="its schedule window (if any) is open now")
    converged: bool
    would: dict[str, Any] = Field(description="what a session would do now, in order")


class PresetDryRun(Page):
    preset: str
    devices: list[str] = Field(description="the first page of matching device ids")
    device: PresetDevicePlan | None = None
