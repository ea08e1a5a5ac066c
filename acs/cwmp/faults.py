"""CWMP fault codes (TR-069 Amendment 6, A.5.1 for ACS faults, A.5.2 for CPE faults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class FaultCode:
    """One row of the spec's fault tables: the code, its SOAP faultcode and meaning."""

    code: int
    soap: str  # "Client" or "Server": which side the spec blames
    meaning: str


# A.5.1: faults the ACS returns to CPE requests.
ACS_METHOD_NOT_SUPPORTED: Final = 8000
ACS_REQUEST_DENIED: Final = 8001
ACS_INTERNAL_ERROR: Final = 8002
ACS_INVALID_ARGUMENTS: Final = 8003
ACS_RESOURCES_EXCEEDED: Final = 8004
ACS_RETRY_REQUEST: Final = 8005
ACS_VERSION_INCOMPATIBLE: Final = 8006

# A.5.2: faults CPEs return to ACS requests (the ones the ACS acts on by name).
CPE_METHOD_NOT_SUPPORTED: Final = 9000
CPE_REQUEST_DENIED: Final = 9001
CPE_INTERNAL_ERROR: Final = 9002
CPE_INVALID_ARGUMENTS: Final = 9003
CPE_RESOURCES_EXCEEDED: Final = 9004
CPE_INVALID_PARAMETER_NAME: Final = 9005

_TABLE: Final[tuple[FaultCode, ...]] = (
    FaultCode(8000, "Server", "Method not supported"),
    FaultCode(8001, "Server", "Request denied (no reason specified)"),
    FaultCode(8002, "Server", "Internal error"),
    FaultCode(8003, "Client", "Invalid arguments"),
    FaultCode(8004, "Server", "Resources exceeded"),
    FaultCode(8005, "Server", "Retry request"),
    FaultCode(8006, "Server", "ACS version incompatible with CPE"),
    FaultCode(9000, "Server", "Method not supported"),
    FaultCode(9001, "Server", "Request denied (no reason specified)"),
    FaultCode(9002, "Server", "Internal error"),
    FaultCode(9003, "Client", "Invalid arguments"),
    FaultCode(9004, "Server", "Resources exceeded"),
    FaultCode(9005, "Client", "Invalid parameter name"),
    FaultCode(9006, "Client", "Invalid parameter type"),
    FaultCode(9007, "Client", "Invalid parameter value"),
    FaultCode(9008, "Client", "Attempt to set a non-writable parameter"),
    FaultCode(9009, "Server", "Notification request rejected"),
    FaultCode(9010, "Server", "File transfer failure"),
    FaultCode(9011, "Server", "Upload failure"),
    FaultCode(9012, "Server", "File transfer server authentication failure"),
    FaultCode(9013, "Server", "Unsupported protocol for file transfer"),
    FaultCode(9014, "Server", "File transfer failure: unable to join multicast group"),
    FaultCode(9015, "Server", "File transfer failure: unable to contact file server"),
    FaultCode(9016, "Server", "File transfer failure: unable to access file"),
    FaultCode(9017, "Server", "File transfer failure: unable to complete download"),
    FaultCode(9018, "Server", "File transfer failure: file corrupted or otherwise unusable"),
    FaultCode(9019, "Server", "File transfer failure: file authentication failure"),
    FaultCode(9020, "Server", "File transfer failure: unable to complete within time windows"),
    FaultCode(9021, "Client", "Cancelation of file transfer not permitted in current state"),
    FaultCode(9022, "Client", "Invalid UUID format"),
    FaultCode(9023, "Client", "Unknown Execution Environment"),
    FaultCode(9024, "Client", "Disabled Execution Environment"),
    FaultCode(9025, "Client", "Deployment Unit to Execution Environment mismatch"),
    FaultCode(9026, "Client", "Duplicate Deployment Unit"),
    FaultCode(9027, "Server", "System resources exceeded"),
    FaultCode(9028, "Client", "Unknown Deployment Unit"),
    FaultCode(9029, "Client", "Invalid Deployment Unit state"),
    FaultCode(9030, "Client", "Invalid Deployment Unit Update: downgrade not permitted"),
    FaultCode(9031, "Client", "Invalid Deployment Unit Update: version not specified"),
    FaultCode(9032, "Client", "Invalid Deployment Unit Update: version already exists"),
)

FAULTS: Final[dict[int, FaultCode]] = {f.code: f for f in _TABLE}

# ACS-side failures recorded in the fault log (never sent on the wire). They sit in the
# vendor range of ACS faults (A.5.1 reserves 8800-8899) so they cannot clash with CPE codes.
ACS_NO_ANSWER: Final = 8890
ACS_SESSION_LOST: Final = 8891
ACS_TRANSFER_TIMEOUT: Final = 8892
ACS_BOOT_TIMEOUT: Final = 8893
ACS_INVALID_TASK: Final = 8894
ACS_UNMATCHED_TRANSFER: Final = 8895
ACS_CONNECTION_REQUEST_FAILED: Final = 8896
ACS_FIRMWARE_MISMATCH: Final = 8897
ACS_INVALID_RESPONSE: Final = 8898
ACS_PRESET_LOOP: Final = 8899

_ACS_SIDE: Final = {
    ACS_NO_ANSWER: "No answer from the CPE",
    ACS_SESSION_LOST: "Session ended before the CPE answered",
    ACS_TRANSFER_TIMEOUT: "No TransferComplete within the transfer timeout",
    ACS_BOOT_TIMEOUT: "No boot Inform within the boot timeout",
    ACS_INVALID_TASK: "Task arguments no longer valid",
    ACS_UNMATCHED_TRANSFER: "TransferComplete for an unknown CommandKey",
    ACS_CONNECTION_REQUEST_FAILED: "Connection request failed",
    ACS_FIRMWARE_MISMATCH: "The device does not run the version it was upgraded to",
    ACS_INVALID_RESPONSE: "The CPE's response says something the RPC does not allow",
    ACS_PRESET_LOOP: "Presets undo each other's values on this device",
}

# Faults worth retrying later rather than failing a task for good: the CPE was busy or
# hit a passing internal problem (A.5.2 marks 9002/9004 as conditions, not verdicts).
TRANSIENT_CPE_FAULTS: Final = frozenset({CPE_INTERNAL_ERROR, CPE_RESOURCES_EXCEEDED})


def describe(code: int) -> str:
    """The spec's meaning of a fault code; vendor ranges are named as such."""
    if code in FAULTS:
        return FAULTS[code].meaning
    if code in _ACS_SIDE:
        return _ACS_SIDE[code]
    if 8800 <= code <= 8899:
        return "Vendor-specific ACS fault"
    if 9800 <= code <= 9899:
        return "Vendor-specific CPE fault"
    return "Unknown fault"


def soap_faultcode(code: int) -> str:
    """``Client`` or ``Server``, as the spec's table says for this code."""
    fault = FAULTS.get(code)
    return fault.soap if fault else "Server"
