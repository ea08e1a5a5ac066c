"""FakeCpe: the device side of a CWMP session, with no I/O.

It renders what a CPE sends (through acs.cwmp.soap, so every test also exercises the codec
from the CPE's side) and answers ACS requests through the simulator's CpeModel.
"""

from __future__ import annotations

from typing import Any

from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.simulator import datamodels
from acs.simulator.model import CpeModel


class FakeCpe:
    def __init__(
        self,
        model: CpeModel | None = None,
        *,
        namespace: str = soap.CWMP_NAMESPACES["1.2"],
        supported_versions: tuple[str, ...] = (),
    ):
        self.model = model or datamodels.gateway("SN0001")
        self.namespace = namespace
        self.supported_versions = supported_versions
        self.next_id = 1
        self.received: list[soap.Envelope] = []

    def _render(self, message: Any, cwmp_id: str | None, **header: Any) -> bytes:
        return soap.render_envelope(message, namespace=self.namespace, cwmp_id=cwmp_id, **header)

    def inform(self, *events: str, **header: Any) -> bytes:
        cwmp_id = str(self.next_id)
        self.next_id += 1
        if self.supported_versions:
            header.setdefault("supported_cwmp_versions", self.supported_versions)
        return self._render(self.model.inform(events or ("2 PERIODIC",)), cwmp_id, **header)

    def request(self, message: Any) -> bytes:
        cwmp_id = str(self.next_id)
        self.next_id += 1
        return self._render(message, cwmp_id)

    def answer(self, acs_body: bytes) -> bytes:
        """Parse an ACS request and render the CPE's answer to it (same cwmp:ID)."""
        envelope = soap.parse_envelope(acs_body)
        self.received.append(envelope)
        return self._render(self.model.handle(envelope.message), envelope.cwmp_id)

    @staticmethod
    def parse(body: bytes) -> soap.Envelope:
        return soap.parse_envelope(body)


def device_id(cpe: FakeCpe) -> str:
    return m.DeviceIdStruct(
        cpe.model.manufacturer, cpe.model.oui, cpe.model.product_class, cpe.model.serial_number
    ).device_id
