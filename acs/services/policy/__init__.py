"""The session policy: small components chained in a fixed order (see ``base``)."""

from __future__ import annotations

from acs.config import Settings
from acs.services.policy.base import (
    Answer,
    Answered,
    Component,
    JsonState,
    Offer,
    Ref,
    SessionContext,
    SessionFacts,
    SessionPolicy,
)
from acs.services.policy.bootstrap import BootstrapProvisioning
from acs.services.policy.ctc_binding import CtcBinding
from acs.services.policy.device_credentials import DeviceCredentialsProvisioning
from acs.services.policy.nat import NatProvisioning
from acs.services.policy.presets import Presets
from acs.services.policy.task_queue import DownloadResolver, TaskQueue
from acs.services.secretbox import SecretBox

__all__ = [
    "Answer",
    "Answered",
    "Component",
    "JsonState",
    "Offer",
    "Ref",
    "SessionContext",
    "SessionFacts",
    "SessionPolicy",
    "default_policy",
]


def default_policy(
    settings: Settings,
    box: SecretBox,
    downloads: DownloadResolver | None = None,
    *,
    device_credentials: bool = False,
) -> SessionPolicy:
    """Built-in provisioning first (NAT traversal's and the device's own credentials with
    it), then CTC binding (whose work order queues tasks), then presets, then the task queue."""
    return SessionPolicy(
        [
            BootstrapProvisioning(settings, box),
            NatProvisioning(settings, box),
            DeviceCredentialsProvisioning(settings, enabled=device_credentials),
            CtcBinding(settings),
            Presets(settings),
            TaskQueue(settings, downloads),
        ]
    )
