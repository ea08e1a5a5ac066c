"""CWMP messages as frozen dataclasses, named exactly as TR-069 Annex A names them.

Each RPC and struct of the spec is a class of the same name; each argument is a field
whose name is the spec's argument in snake_case (``CommandKey`` -> ``command_key``,
``URL`` -> ``url``). That mapping is mechanical (see ``xml_name``), which is what lets
``acs.cwmp.soap`` encode and decode every message with one codec, and lets the task API
take an RPC's arguments by the same names.

Field order is the spec's element order: CPEs that parse positionally get it right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from acs.cwmp import xsd

# Argument names whose XML spelling is not plain CamelCase of the snake_case name.
_ACRONYMS: Final = {"url": "URL", "oui": "OUI"}


def xml_name(attr: str) -> str:
    """``command_key`` -> ``CommandKey``; ``success_url`` -> ``SuccessURL``."""
    return "".join(_ACRONYMS.get(part, part[:1].upper() + part[1:]) for part in attr.split("_"))


def _escape_id_part(text: str) -> str:
    return "".join(
        ch
        if ch.isascii() and (ch.isalnum() or ch == "_")
        else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in text
    )


# --- structs (A.3.x) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceIdStruct:
    manufacturer: str = ""
    oui: str = ""
    product_class: str = ""
    serial_number: str = ""

    @property
    def device_id(self) -> str:
        """``<OUI>-<ProductClass>-<SerialNumber>``, escaped as GenieACS escapes it.

        Every byte outside ``[A-Za-z0-9_]`` becomes ``%XX`` (so ``-`` inside a part is
        ``%2D`` and the id splits unambiguously). ProductClass is optional in TR-069;
        without it the id is ``<OUI>-<SerialNumber>``.
        """
        parts = [self.oui, self.product_class, self.serial_number]
        if not self.product_class:
            parts = [self.oui, self.serial_number]
        return "-".join(_escape_id_part(p) for p in parts)


@dataclass(frozen=True, slots=True)
class EventStruct:
    event_code: str
    command_key: str = ""


@dataclass(frozen=True, slots=True)
class ParameterValueStruct:
    """A parameter and its value; ``type`` is the ``xsi:type`` of the ``Value`` element."""

    name: str
    value: xsd.Value = ""
    type: str = xsd.STRING


@dataclass(frozen=True, slots=True)
class ParameterInfoStruct:
    name: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class SetParameterAttributesStruct:
    name: str
    notification_change: bool = False
    notification: int = 0
    access_list_change: bool = False
    access_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParameterAttributeStruct:
    name: str
    notification: int = 0
    access_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FaultStruct:
    """Outcome of a transfer in TransferComplete; ``fault_code`` 0 means success."""

    fault_code: int = 0
    fault_string: str = ""


@dataclass(frozen=True, slots=True)
class ArgStruct:
    name: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class TimeWindowStruct:
    window_start: int = 0
    window_end: int = 0
    window_mode: str = "1 At Any Time"
    user_message: str = ""
    max_retries: int = -1


@dataclass(frozen=True, slots=True)
class QueuedTransferStruct:
    command_key: str = ""
    state: int = 1


@dataclass(frozen=True, slots=True)
class AllQueuedTransferStruct:
    command_key: str = ""
    state: int = 1
    is_download: bool = True
    file_type: str = ""
    file_size: int = 0
    target_file_name: str = ""


@dataclass(frozen=True, slots=True)
class SetParameterValuesFault:
    parameter_name: str
    fault_code: int
    fault_string: str = ""


# --- CPE -> ACS requests and the ACS's responses (A.3.3) -------------------------------


@dataclass(frozen=True, slots=True)
class Inform:
    device_id: DeviceIdStruct
    event: tuple[EventStruct, ...] = ()
    max_envelopes: int = 1
    current_time: datetime | None = None
    retry_count: int = 0
    parameter_list: tuple[ParameterValueStruct, ...] = ()

    @property
    def event_codes(self) -> tuple[str, ...]:
        return tuple(e.event_code for e in self.event)


@dataclass(frozen=True, slots=True)
class InformResponse:
    max_envelopes: int = 1


@dataclass(frozen=True, slots=True)
class TransferComplete:
    command_key: str = ""
    fault_struct: FaultStruct = field(default_factory=FaultStruct)
    start_time: datetime | None = None
    complete_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class TransferCompleteResponse:
    pass


@dataclass(frozen=True, slots=True)
class AutonomousTransferComplete:
    announce_url: str = ""
    transfer_url: str = ""
    is_download: bool = True
    file_type: str = ""
    file_size: int = 0
    target_file_name: str = ""
    fault_struct: FaultStruct = field(default_factory=FaultStruct)
    start_time: datetime | None = None
    complete_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class AutonomousTransferCompleteResponse:
    pass


@dataclass(frozen=True, slots=True)
class RequestDownload:
    file_type: str = ""
    file_type_arg: tuple[ArgStruct, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestDownloadResponse:
    pass


@dataclass(frozen=True, slots=True)
class Kicked:
    command: str = ""
    referer: str = ""
    arg: str = ""
    next: str = ""


@dataclass(frozen=True, slots=True)
class KickedResponse:
    next_url: str = ""


# GetRPCMethods goes both ways (A.3.1.1): the same message for either side.
@dataclass(frozen=True, slots=True)
class GetRPCMethods:
    pass


@dataclass(frozen=True, slots=True)
class GetRPCMethodsResponse:
    method_list: tuple[str, ...] = ()


# --- ACS -> CPE requests and the CPE's responses (A.3.2) ------------------------------


@dataclass(frozen=True, slots=True)
class SetParameterValues:
    parameter_list: tuple[ParameterValueStruct, ...]
    parameter_key: str = ""


@dataclass(frozen=True, slots=True)
class SetParameterValuesResponse:
    status: int = 0


@dataclass(frozen=True, slots=True)
class GetParameterValues:
    parameter_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetParameterValuesResponse:
    parameter_list: tuple[ParameterValueStruct, ...] = ()


@dataclass(frozen=True, slots=True)
class GetParameterNames:
    parameter_path: str = ""
    next_level: bool = False


@dataclass(frozen=True, slots=True)
class GetParameterNamesResponse:
    parameter_list: tuple[ParameterInfoStruct, ...] = ()


@dataclass(frozen=True, slots=True)
class SetParameterAttributes:
    parameter_list: tuple[SetParameterAttributesStruct, ...]


@dataclass(frozen=True, slots=True)
class SetParameterAttributesResponse:
    pass


@dataclass(frozen=True, slots=True)
class GetParameterAttributes:
    parameter_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetParameterAttributesResponse:
    parameter_list: tuple[ParameterAttributeStruct, ...] = ()


@dataclass(frozen=True, slots=True)
class AddObject:
    object_name: str
    parameter_key: str = ""


@dataclass(frozen=True, slots=True)
class AddObjectResponse:
    instance_number: int = 0
    status: int = 0


@dataclass(frozen=True, slots=True)
class DeleteObject:
    object_name: str
    parameter_key: str = ""


@dataclass(frozen=True, slots=True)
class DeleteObjectResponse:
    status: int = 0


@dataclass(frozen=True, slots=True)
class Download:
    command_key: str = ""
    file_type: str = ""
    url: str = ""
    username: str = ""
    password: str = ""
    file_size: int = 0
    target_file_name: str = ""
    delay_seconds: int = 0
    success_url: str = ""
    failure_url: str = ""


@dataclass(frozen=True, slots=True)
class DownloadResponse:
    """``status`` 0: done already; 1: not yet, a TransferComplete will follow."""

    status: int = 0
    start_time: datetime | None = None
    complete_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Upload:
    command_key: str = ""
    file_type: str = ""
    url: str = ""
    username: str = ""
    password: str = ""
    delay_seconds: int = 0


@dataclass(frozen=True, slots=True)
class UploadResponse:
    status: int = 0
    start_time: datetime | None = None
    complete_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reboot:
    command_key: str = ""


@dataclass(frozen=True, slots=True)
class RebootResponse:
    pass


@dataclass(frozen=True, slots=True)
class FactoryReset:
    pass


@dataclass(frozen=True, slots=True)
class FactoryResetResponse:
    pass


@dataclass(frozen=True, slots=True)
class ScheduleInform:
    delay_seconds: int = 0
    command_key: str = ""


@dataclass(frozen=True, slots=True)
class ScheduleInformResponse:
    pass


@dataclass(frozen=True, slots=True)
class ScheduleDownload:
    command_key: str = ""
    file_type: str = ""
    url: str = ""
    username: str = ""
    password: str = ""
    file_size: int = 0
    target_file_name: str = ""
    time_window_list: tuple[TimeWindowStruct, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduleDownloadResponse:
    pass


@dataclass(frozen=True, slots=True)
class CancelTransfer:
    command_key: str = ""


@dataclass(frozen=True, slots=True)
class CancelTransferResponse:
    pass


@dataclass(frozen=True, slots=True)
class GetQueuedTransfers:
    pass


@dataclass(frozen=True, slots=True)
class GetQueuedTransfersResponse:
    transfer_list: tuple[QueuedTransferStruct, ...] = ()


@dataclass(frozen=True, slots=True)
class GetAllQueuedTransfers:
    pass


@dataclass(frozen=True, slots=True)
class GetAllQueuedTransfersResponse:
    transfer_list: tuple[AllQueuedTransferStruct, ...] = ()


# --- SOAP Fault with a CWMP fault in its detail (A.4.1.6? "Fault Handling") ------------


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP Fault carrying a CWMP fault: either side may send one instead of a response."""

    fault_code: int
    fault_string: str = ""
    set_parameter_values_fault: tuple[SetParameterValuesFault, ...] = ()
    soap_faultcode: str = "Server"
    soap_faultstring: str = "CWMP fault"


# --- registries -----------------------------------------------------------------------

# What the CPE may ask of the ACS, and what the ACS answers (A.3.3).
CPE_REQUEST_RESPONSES: Final[dict[type, type]] = {
    Inform: InformResponse,
    TransferComplete: TransferCompleteResponse,
    AutonomousTransferComplete: AutonomousTransferCompleteResponse,
    GetRPCMethods: GetRPCMethodsResponse,
    RequestDownload: RequestDownloadResponse,
    Kicked: KickedResponse,
}

# What the ACS may ask of the CPE, and what the CPE answers (A.3.2).
ACS_REQUEST_RESPONSES: Final[dict[type, type]] = {
    GetRPCMethods: GetRPCMethodsResponse,
    SetParameterValues: SetParameterValuesResponse,
    GetParameterValues: GetParameterValuesResponse,
    GetParameterNames: GetParameterNamesResponse,
    SetParameterAttributes: SetParameterAttributesResponse,
    GetParameterAttributes: GetParameterAttributesResponse,
    AddObject: AddObjectResponse,
    DeleteObject: DeleteObjectResponse,
    Download: DownloadResponse,
    Upload: UploadResponse,
    Reboot: RebootResponse,
    FactoryReset: FactoryResetResponse,
    ScheduleInform: ScheduleInformResponse,
    ScheduleDownload: ScheduleDownloadResponse,
    CancelTransfer: CancelTransferResponse,
    GetQueuedTransfers: GetQueuedTransfersResponse,
    GetAllQueuedTransfers: GetAllQueuedTransfersResponse,
}

# The methods this ACS answers, for a CPE's GetRPCMethods (A.3.3.1 lists them).
ACS_METHODS: Final = tuple(cls.__name__ for cls in CPE_REQUEST_RESPONSES)

# Every message class by its element name, for the decoder.
MESSAGES: Final[dict[str, type]] = {
    cls.__name__: cls
    for pair in (*CPE_REQUEST_RESPONSES.items(), *ACS_REQUEST_RESPONSES.items())
    for cls in pair
}
