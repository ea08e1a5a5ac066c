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
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from acs.db.types import JSONDoc, UTCDateTime

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
    first_seen: Mapped[datetime]
    last_inform: Mapped[datetime] = mapped_column(index=True)
    last_boot: Mapped[datetime | None]
    last_bootstrap: Mapped[datetime | None]
    last_events: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Per-device CWMP credentials (override the shared pair once set). Digest needs
    # HA1 = H(user:realm:password) per algorithm; the password itself is never kept.
    cwmp_username: Mapped[str | None] = mapped_column(String(256))
    cwmp_ha1_md5: Mapped[str | None] = mapped_column(String(32))
    cwmp_ha1_sha256: Mapped[str | None] = mapped_column(String(64))


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
    expires: Mapped[datetime] = mapped_column(index=True)


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


class DigestNonce(Base):
    """Highest nonce count seen per nonce; used only with ACS_CWMP_DIGEST_STRICT."""

    __tablename__ = "digest_nonces"

    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_nc: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[datetime] = mapped_column(index=True)
