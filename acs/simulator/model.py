"""A well-behaved CPE's data model and RPC semantics, with no I/O.

Used by the fleet simulator (``acs simulate``) and by the tests' FakeCpe. It answers every
ACS request as TR-069 Annex A says a CPE should: values and writability, fault 9005 for
unknown names, SetParameterValues all-or-nothing with a SetParameterValuesFault per bad
parameter, AddObject/DeleteObject on multi-instance objects, transfers reported later by
TransferComplete, Reboot and FactoryReset reflected in the next Inform's events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from acs.cwmp import faults, xsd
from acs.cwmp import messages as m

# Parameters a CPE must put in every Inform (TR-098 / TR-181 "forced inform").
FORCED_INFORM = (
    "DeviceInfo.HardwareVersion",
    "DeviceInfo.SoftwareVersion",
    "DeviceInfo.ProvisioningCode",
    "DeviceInfo.SpecVersion",
    "ManagementServer.ConnectionRequestURL",
    "ManagementServer.ParameterKey",
)

_TRANSFER_SCHEMES = ("http://", "https://", "ftp://", "tftp://")
_INSTANCE_RE = re.compile(r"^(.*\.)(\d+)\.(.*)$")
_GENERIC_INSTANCE = re.compile(r"\.\d+\.")


@dataclass
class Parameter:
    value: xsd.Value
    type: str = xsd.STRING
    writable: bool = False
    notification: int = 0
    access_list: tuple[str, ...] = ()


@dataclass
class Transfer:
    """A Download or Upload the CPE accepted and will report by TransferComplete."""

    command_key: str
    is_download: bool
    file_type: str
    url: str
    username: str = ""
    password: str = ""
    file_size: int = 0
    target_file_name: str = ""
    state: int = 1  # 1 not yet started, 2 in progress, 3 completed (A.3.2.8 QueuedTransferStruct)


@dataclass
class CpeModel:
    """The device: identity, parameters, and what happened that the next Inform reports."""

    manufacturer: str
    oui: str
    product_class: str
    serial_number: str
    root: str = "Device"
    parameters: dict[str, Parameter] = field(default_factory=dict)
    pending_events: list[m.EventStruct] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    completed: list[m.TransferComplete] = field(default_factory=list)
    reboot_requested: bool = False
    factory_reset_requested: bool = False
    schedule_inform: tuple[int, str] | None = None
    revision: int = 0  # bumped on every change, so a rendered Inform can be reused
    # Multi-instance tables that may be empty, by generic path ("Device.XMPP.Connection.",
    # "Device.XMPP.Connection.{i}.Server."): the parameters of a new instance. A table with
    # instances copies its first one instead.
    templates: dict[str, dict[str, Parameter]] = field(default_factory=dict)

    @property
    def device_id(self) -> m.DeviceIdStruct:
        return m.DeviceIdStruct(self.manufacturer, self.oui, self.product_class, self.serial_number)

    # --- Inform ------------------------------------------------------------------------

    def inform(
        self, events: tuple[str, ...] = ("2 PERIODIC",), *, retry_count: int = 0
    ) -> m.Inform:
        """The Inform to send now; queued events (BOOT, TRANSFER COMPLETE...) go first."""
        structs = list(self.pending_events)
        codes = {e.event_code for e in structs}
        structs.extend(m.EventStruct(code) for code in events if code not in codes)
        self.pending_events.clear()
        params = tuple(
            m.ParameterValueStruct(name, p.value, p.type)
            for name in self.forced_inform_names()
            if (p := self.parameters.get(name)) is not None
        )
        return m.Inform(
            device_id=self.device_id,
            event=tuple(structs),
            max_envelopes=1,
            current_time=datetime.now(UTC).replace(microsecond=0),
            retry_count=retry_count,
            parameter_list=params,
        )

    def forced_inform_names(self) -> list[str]:
        names = [f"{self.root}.{suffix}" for suffix in FORCED_INFORM]
        names.extend(
            name
            for name, p in self.parameters.items()
            if p.notification == 2 and name not in names  # active notification
        )
        return names

    def get(self, name: str) -> xsd.Value | None:
        p = self.parameters.get(name)
        return None if p is None else p.value

    def set(
        self, name: str, value: xsd.Value, type_: str | None = None, writable: bool = True
    ) -> None:
        self.revision += 1
        old = self.parameters.get(name)
        self.parameters[name] = Parameter(
            value, type_ or (old.type if old else xsd.infer_type(value)), writable
        )

    # --- ACS requests ----------------------------------------------------------------

    def handle(self, request: Any) -> Any:
        """The response (or ``m.Fault``) to one ACS request."""
        self.revision += 1
        handler = getattr(self, f"_rpc_{type(request).__name__}", None)
        if handler is None:
            return _fault(faults.CPE_METHOD_NOT_SUPPORTED)
        result: Any = handler(request)
        return result

    def _rpc_GetRPCMethods(self, _req: m.GetRPCMethods) -> Any:
        return m.GetRPCMethodsResponse(
            method_list=tuple(cls.__name__ for cls in m.ACS_REQUEST_RESPONSES)
        )

    def _match(self, name: str) -> list[str] | None:
        if name == "" or name.endswith("."):
            found = [n for n in self.parameters if n.startswith(name)]
            if found or name == "" or self._template(name) is not None:
                return found  # a table with no instance yet is there, and empty
            return None
        return [name] if name in self.parameters else None

    def _rpc_GetParameterValues(self, req: m.GetParameterValues) -> Any:
        out: list[m.ParameterValueStruct] = []
        for name in req.parameter_names:
            found = self._match(name)
            if found is None:
                return _fault(faults.CPE_INVALID_PARAMETER_NAME, name)
            for n in found:
                p = self.parameters[n]
                out.append(m.ParameterValueStruct(n, p.value, p.type))
        return m.GetParameterValuesResponse(parameter_list=tuple(out))

    def _rpc_SetParameterValues(self, req: m.SetParameterValues) -> Any:
        problems: list[m.SetParameterValuesFault] = []
        checked: list[tuple[str, xsd.Value]] = []
        for pv in req.parameter_list:
            p = self.parameters.get(pv.name)
            if p is None:
                problems.append(m.SetParameterValuesFault(pv.name, 9005, "Invalid parameter name"))
                continue
            if not p.writable:
                problems.append(
                    m.SetParameterValuesFault(
                        pv.name, 9008, "Attempt to set a non-writable parameter"
                    )
                )
                continue
            if pv.type != p.type and not (pv.type == xsd.STRING and p.type != xsd.BOOLEAN):
                problems.append(m.SetParameterValuesFault(pv.name, 9006, "Invalid parameter type"))
                continue
            try:
                checked.append((pv.name, xsd.check(pv.value, p.type)))
            except ValueError as exc:
                problems.append(m.SetParameterValuesFault(pv.name, 9007, str(exc)))
        if problems:  # all or nothing (A.3.2.1)
            return m.Fault(
                faults.CPE_INVALID_ARGUMENTS,
                "Invalid arguments",
                tuple(problems),
                soap_faultcode="Client",
            )
        for name, value in checked:
            self.parameters[name].value = value
        key = f"{self.root}.ManagementServer.ParameterKey"
        if key in self.parameters:
            self.parameters[key].value = req.parameter_key
        return m.SetParameterValuesResponse(status=0)

    def _rpc_GetParameterNames(self, req: m.GetParameterNames) -> Any:
        path = req.parameter_path
        if path and not path.endswith("."):
            if path not in self.parameters:
                return _fault(faults.CPE_INVALID_PARAMETER_NAME, path)
            if req.next_level:
                return _fault(faults.CPE_INVALID_ARGUMENTS, "NextLevel true on a parameter")
            p = self.parameters[path]
            return m.GetParameterNamesResponse((m.ParameterInfoStruct(path, p.writable),))
        names = [n for n in self.parameters if n.startswith(path)]
        if path and not names:
            if self._template(path) is not None:  # an empty table: just itself
                return m.GetParameterNamesResponse((m.ParameterInfoStruct(path, True),))
            return _fault(faults.CPE_INVALID_PARAMETER_NAME, path)
        out: dict[str, bool] = {}
        for name in names:
            rest = name[len(path) :]
            parts = rest.split(".")
            # every object on the way down is named too, with a trailing dot
            for depth in range(1, len(parts)):
                obj = path + ".".join(parts[:depth]) + "."
                if req.next_level and depth > 1:
                    break
                out.setdefault(obj, self._object_writable(obj))
            if not req.next_level or len(parts) == 1:
                out[name] = self.parameters[name].writable
        if path and not req.next_level:
            out = {path: self._object_writable(path), **out}
        return m.GetParameterNamesResponse(
            tuple(m.ParameterInfoStruct(n, w) for n, w in out.items())
        )

    def _object_writable(self, obj: str) -> bool:
        # A multi-instance table (X.Y.) is writable: AddObject works on it.
        return bool(self._instances(obj)) or self._template(obj) is not None

    def _template(self, table: str) -> dict[str, Parameter] | None:
        return self.templates.get(_GENERIC_INSTANCE.sub(".{i}.", table))

    def _instances(self, table: str) -> list[int]:
        found = set()
        for name in self.parameters:
            if name.startswith(table):
                head = name[len(table) :].split(".", 1)[0]
                if head.isdigit():
                    found.add(int(head))
        return sorted(found)

    def _rpc_AddObject(self, req: m.AddObject) -> Any:
        table = req.object_name
        instances = self._instances(table) if table.endswith(".") else []
        declared = self._template(table) if table.endswith(".") else None
        if not instances and declared is None:
            return _fault(faults.CPE_INVALID_PARAMETER_NAME, table)
        new = max(instances, default=0) + 1
        if declared is not None:
            for rest, p in declared.items():
                self.parameters[f"{table}{new}.{rest}"] = replace(p)
            return m.AddObjectResponse(instance_number=new, status=0)
        template = f"{table}{instances[0]}."
        for name, p in list(self.parameters.items()):
            if name.startswith(template):
                default: xsd.Value = (
                    False if p.type == xsd.BOOLEAN else 0 if p.type in xsd.INTEGER_RANGES else ""
                )
                self.parameters[f"{table}{new}.{name[len(template) :]}"] = Parameter(
                    default, p.type, p.writable
                )
        return m.AddObjectResponse(instance_number=new, status=0)

    def _rpc_DeleteObject(self, req: m.DeleteObject) -> Any:
        name = req.object_name
        match = _INSTANCE_RE.match(name)
        doomed = [n for n in self.parameters if n.startswith(name)]
        if not match or not doomed:
            return _fault(faults.CPE_INVALID_PARAMETER_NAME, name)
        for n in doomed:
            del self.parameters[n]
        return m.DeleteObjectResponse(status=0)

    def _rpc_GetParameterAttributes(self, req: m.GetParameterAttributes) -> Any:
        out = []
        for name in req.parameter_names:
            found = self._match(name)
            if found is None:
                return _fault(faults.CPE_INVALID_PARAMETER_NAME, name)
            for n in found:
                p = self.parameters[n]
                out.append(m.ParameterAttributeStruct(n, p.notification, p.access_list))
        return m.GetParameterAttributesResponse(tuple(out))

    def _rpc_SetParameterAttributes(self, req: m.SetParameterAttributes) -> Any:
        targets = []
        for s in req.parameter_list:
            found = self._match(s.name)
            if found is None:
                return _fault(faults.CPE_INVALID_PARAMETER_NAME, s.name)
            if s.notification_change and s.notification not in (0, 1, 2):
                return _fault(faults.CPE_INVALID_ARGUMENTS, f"Notification {s.notification}")
            targets.append((s, found))
        for s, found in targets:
            for n in found:
                if s.notification_change:
                    self.parameters[n].notification = s.notification
                if s.access_list_change:
                    self.parameters[n].access_list = s.access_list
        return m.SetParameterAttributesResponse()

    def _accept_download(self, req: m.Download | m.ScheduleDownload) -> m.Fault | None:
        if not req.url.lower().startswith(_TRANSFER_SCHEMES):
            return _fault(9013, req.url)
        self.transfers.append(
            Transfer(
                req.command_key,
                True,
                req.file_type,
                req.url,
                req.username,
                req.password,
                req.file_size,
                req.target_file_name,
            )
        )
        return None

    def _rpc_Download(self, req: m.Download) -> Any:
        return self._accept_download(req) or m.DownloadResponse(status=1)

    def _rpc_ScheduleDownload(self, req: m.ScheduleDownload) -> Any:
        return self._accept_download(req) or m.ScheduleDownloadResponse()

    def _rpc_Upload(self, req: m.Upload) -> Any:
        if not req.url.lower().startswith(_TRANSFER_SCHEMES):
            return _fault(9013, req.url)
        self.transfers.append(
            Transfer(req.command_key, False, req.file_type, req.url, req.username, req.password)
        )
        return m.UploadResponse(status=1)

    def _rpc_CancelTransfer(self, req: m.CancelTransfer) -> Any:
        for t in self.transfers:
            if t.command_key == req.command_key:
                if t.state != 1:
                    return _fault(9021)
                self.transfers.remove(t)
                return m.CancelTransferResponse()
        return _fault(faults.CPE_INVALID_ARGUMENTS, f"no transfer {req.command_key!r}")

    def _rpc_GetQueuedTransfers(self, _req: m.GetQueuedTransfers) -> Any:
        return m.GetQueuedTransfersResponse(
            tuple(m.QueuedTransferStruct(t.command_key, t.state) for t in self.transfers)
        )

    def _rpc_GetAllQueuedTransfers(self, _req: m.GetAllQueuedTransfers) -> Any:
        return m.GetAllQueuedTransfersResponse(
            tuple(
                m.AllQueuedTransferStruct(
                    t.command_key,
                    t.state,
                    t.is_download,
                    t.file_type,
                    t.file_size,
                    t.target_file_name,
                )
                for t in self.transfers
            )
        )

    def _rpc_Reboot(self, req: m.Reboot) -> Any:
        self.reboot_requested = True
        self.pending_events.append(m.EventStruct("M Reboot", req.command_key))
        return m.RebootResponse()

    def _rpc_FactoryReset(self, _req: m.FactoryReset) -> Any:
        self.factory_reset_requested = True
        return m.FactoryResetResponse()

    def _rpc_ScheduleInform(self, req: m.ScheduleInform) -> Any:
        if req.delay_seconds <= 0:
            return _fault(faults.CPE_INVALID_ARGUMENTS, "DelaySeconds must be positive")
        self.schedule_inform = (req.delay_seconds, req.command_key)
        return m.ScheduleInformResponse()

    # --- what happens between sessions ------------------------------------------------

    def reboot(self) -> None:
        """Apply a requested reboot: the next Inform carries 1 BOOT (and M Reboot)."""
        self.reboot_requested = False
        self.pending_events.insert(0, m.EventStruct("1 BOOT"))

    def finish_transfer(
        self,
        transfer: Transfer,
        fault_code: int = 0,
        fault_string: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Record a transfer's outcome; the next session reports it (7 TRANSFER COMPLETE)."""
        self.transfers.remove(transfer)
        self.completed.append(
            m.TransferComplete(
                transfer.command_key, m.FaultStruct(fault_code, fault_string), start, end
            )
        )
        self.pending_events.append(m.EventStruct("7 TRANSFER COMPLETE"))
        method = "M Download" if transfer.is_download else "M Upload"
        self.pending_events.append(m.EventStruct(method, transfer.command_key))


def _fault(code: int, detail: str = "") -> m.Fault:
    text = faults.describe(code) + (f": {detail}" if detail else "")
    return m.Fault(code, text, soap_faultcode=faults.soap_faultcode(code))
