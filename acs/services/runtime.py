"""Everything a worker process needs, built once: settings, database, services."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from acs.config import Settings
from acs.db import migrate
from acs.db.engine import Database
from acs.db.errors import DatabaseUnavailable
from acs.services import device_credentials
from acs.services.connreq import ConnectionRequester
from acs.services.cpe_auth import CpeAuthenticator
from acs.services.cwmp import CwmpService
from acs.services.files import FileStore
from acs.services.monitoring import Watch
from acs.services.notify import Notifier
from acs.services.operators import ensure_admin
from acs.services.policy import default_policy
from acs.services.presets import PresetStore
from acs.services.provisioning import Provisioning
from acs.services.provisioning_files import ProvisioningFiles
from acs.services.redirects import Redirects
from acs.services.secretbox import SecretBox
from acs.services.server_secrets import SharedPair, load_secret_key, load_shared_pair
from acs.services.stun import StunServer
from acs.services.webhooks import Policy as WebhookPolicy
from acs.services.webhooks import Webhooks
from acs.services.xmpp import XmppService

log = logging.getLogger("acs")


@dataclass(frozen=True, slots=True)
class ServerSecrets:
    secret_key: bytes
    shared: SharedPair  # the shared CPE credentials (HA1s)


async def load_secrets(db: Database, settings: Settings, *, warn: bool = True) -> ServerSecrets:
    """The server secret and the shared CPE credentials (``acs.services.server_secrets``:
    neither is kept in clear in the database)."""
    key = await load_secret_key(db, settings, warn=warn)
    return ServerSecrets(key, await load_shared_pair(db, settings))


class SchemaOutdated(DatabaseUnavailable):
    """The database's schema is not the one this acs needs (the message says what to run)."""


async def check_schema(db: Database) -> None:
    """Refuse to start on a database whose schema is not the one this code expects."""
    current, head = await migrate.revisions(db)
    if current != head:
        raise SchemaOutdated(
            f"database schema is at {current or 'nothing'}, this acs needs {head}: "
            "run `acs db upgrade`"
        )


class Runtime:
    """Settings, database and services of one worker process."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        server_secrets: ServerSecrets,
        *,
        device_credentials: bool = False,
    ):
        self.settings = settings
        self.db = db
        self.authenticator = CpeAuthenticator(
            settings, server_secrets.secret_key, server_secrets.shared.credentials
        )
        self.box = SecretBox(server_secrets.secret_key, "connection-request")
        # the web console's CSRF tokens are HMACs of the session under this key
        self.console_key = hashlib.sha256(server_secrets.secret_key + b"\0console-csrf").digest()
        self.notifier = Notifier()
        self.files = FileStore(
            db,
            settings.data_dir / "files",
            server_secrets.secret_key,
            max_bytes=settings.max_file_bytes,
        )
        self.provisioning = Provisioning(db, self.files, settings)
        self.redirects = Redirects(db)
        self.provisioning_files = ProvisioningFiles(
            self.files,
            self.provisioning,
            CpeAuthenticator.for_provisioning(
                settings, server_secrets.secret_key, server_secrets.shared.credentials
            ),
        )
        self.device_credentials = device_credentials  # each device gets a pair of its own
        self.policy = default_policy(
            settings, self.box, self.provisioning, device_credentials=device_credentials
        )
        self.cwmp = CwmpService(
            db, settings, self.authenticator, self.policy, after_commit=self.notifier.pulse
        )
        # reaching CPEs behind NAT: the STUN server listens once acs.server hands it its
        # socket; the XMPP session runs in the background (acs.server starts both)
        self.stun = StunServer(db, self.box) if settings.stun_port is not None else None
        self.xmpp = XmppService(db, self.box, settings) if settings.xmpp_jid else None
        self.connection_requests = ConnectionRequester(
            db, self.box, settings, stun=self.stun, xmpp=self.xmpp
        )
        self.webhooks = Webhooks(
            db,
            SecretBox(server_secrets.secret_key, "webhook"),
            WebhookPolicy(
                timeout=settings.webhook_timeout, max_attempts=settings.webhook_max_attempts
            ),
        )
        self.presets = PresetStore(
            db,
            mode=settings.mode,
            spread=settings.spread_inform_time,
            timezone=settings.presets_timezone,
        )
        self.watch = Watch(grace=settings.silent_grace, offline_after=settings.offline_after_missed)
        self._background: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()  # set when the worker stops: long responses end

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background (e.g. connection requests to a whole wave)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @classmethod
    async def start(
        cls, settings: Settings, *, migrate_sqlite: bool = True, warn: bool = True
    ) -> Runtime:
        """``warn``: log what is wrong with where secrets are kept (``acs serve``'s workers
        do not: their parent did, once)."""
        db = Database(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        try:
            await db.probe(create=migrate_sqlite)
            if db.is_sqlite and migrate_sqlite:
                await migrate.upgrade(db)
            await check_schema(db)
            server_secrets = await load_secrets(db, settings, warn=warn)
            own_credentials = await device_credentials.enabled(db, settings)
            if settings.admin_password:
                await ensure_admin(db, settings.admin_password, datetime.now(UTC))
        except BaseException:
            await db.dispose()
            raise
        return cls(settings, db, server_secrets, device_credentials=own_credentials)

    async def close(self) -> None:
        if self.stun is not None:
            await self.stun.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.db.dispose()
