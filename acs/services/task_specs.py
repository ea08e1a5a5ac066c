"""What an operator may queue: one pydantic model per ACS RPC of TR-069.

A task's ``name`` is the RPC's name; its fields are the RPC's arguments in snake_case
(the same names as ``acs.cwmp.messages``), validated here so that a bad task is refused
with a message naming the field before anything is queued. ``to_message`` turns a stored
task back into the CWMP request the session sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from acs.cwmp import datamodel, xsd
from acs.cwmp import messages as m

_URL_SCHEMES = ("http://", "https://", "ftp://", "tftp://")
# TR-069 A.3.2.8 FileType values the ACS may ask for; vendor types are "X <OUI> <name>".
DOWNLOAD_FILE_TYPES = (
    "1 Firmware Upgrade Image",
    "2 Web Content",
    "3 Vendor Configuration File",
    "4 Tone File",
    "5 Ringer File",
    "6 Stored Firmware Image",
)
UPLOAD_FILE_TYPES = (
    "1 Vendor Configuration File",
    "2 Vendor Log File",
    "3 Vendor Configuration File",
    "4 Vendor Log File",
)

Text = Annotated[str, Field(max_length=4096)]
ParamName = Annotated[str, Field(min_length=1, max_length=1024)]
CommandKey = Annotated[str, Field(max_length=32)]  # TR-069: string(32)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expires: datetime | None = Field(
        None, description="when the task expires if not run yet (default: ACS_TASK_DEFAULT_TTL)"
    )

    def arguments(self) -> dict[str, Any]:
        """The RPC's arguments as stored with the task (JSON)."""
        return self.model_dump(mode="json", exclude={"name", "expires"})

    def to_message(self, command_key: str) -> Any:
        raise NotImplementedError

    @property
    def uses_command_key(self) -> bool:
        return "command_key" in type(self).model_fields


def _check_url(url: str) -> str:
    if not url.lower().startswith(_URL_SCHEMES):
        raise ValueError(f"must be an http, https, ftp or tftp URL, not {url[:60]!r}")
    return url


def _check_file_type(value: str, allowed: tuple[str, ...]) -> str:
    if value in allowed or value.startswith("X "):
        return value
    raise ValueError(f"must be one of {list(allowed)} or a vendor type 'X <OUI> <name>'")


class GetRPCMethodsTask(_Spec):
    name: Literal["GetRPCMethods"]

    def to_message(self, command_key: str) -> m.GetRPCMethods:
        return m.GetRPCMethods()


class GetParameterNamesTask(_Spec):
    name: Literal["GetParameterNames"]
    parameter_path: Annotated[str, Field(max_length=1024)] = ""
    next_level: bool = False

    def to_message(self, command_key: str) -> m.GetParameterNames:
        return m.GetParameterNames(self.parameter_path, self.next_level)


class GetParameterValuesTask(_Spec):
    name: Literal["GetParameterValues"]
    parameter_names: Annotated[list[ParamName], Field(min_length=1, max_length=10_000)]

    def to_message(self, command_key: str) -> m.GetParameterValues:
        return m.GetParameterValues(tuple(self.parameter_names))


class ParameterValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ParamName
    value: str | bool | int
    type: str | None = Field(
        None, description="xsd type; default: the type the device reported, else inferred"
    )

    @model_validator(mode="after")
    def _typed(self) -> ParameterValue:
        if self.name.endswith("."):
            raise ValueError(f"{self.name!r} is an object, not a parameter")
        if self.type is not None:
            canonical = xsd.normalize_type(self.type)
            object.__setattr__(self, "value", xsd.check(self.value, canonical))
            object.__setattr__(self, "type", canonical)
        return self


class SetParameterValuesTask(_Spec):
    name: Literal["SetParameterValues"]
    parameter_values: Annotated[list[ParameterValue], Field(min_length=1, max_length=10_000)]
    parameter_key: CommandKey = ""

    @field_validator("parameter_values")
    @classmethod
    def _unique(cls, values: list[ParameterValue]) -> list[ParameterValue]:
        names = [v.name for v in values]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:  # TR-069 A.3.2.1: a parameter may appear only once
            raise ValueError(f"parameters given twice: {dupes}")
        return values

    def to_message(self, command_key: str) -> m.SetParameterValues:
        structs = []
        for v in self.parameter_values:
            value, type_ = v.value, v.type
            if type_ is None:  # queued without the device's tree (rollouts, work orders)
                type_ = datamodel.standard_type(v.name)
                if type_ is not None:
                    try:
                        value = xsd.check(value, type_)
                    except ValueError:  # not the standard's shape: the device may differ
                        type_ = None
                if type_ is None:
                    type_ = xsd.infer_type(value)
            structs.append(m.ParameterValueStruct(v.name, value, type_))
        return m.SetParameterValues(tuple(structs), self.parameter_key)


class GetParameterAttributesTask(_Spec):
    name: Literal["GetParameterAttributes"]
    parameter_names: Annotated[list[ParamName], Field(min_length=1, max_length=10_000)]

    def to_message(self, command_key: str) -> m.GetParameterAttributes:
        return m.GetParameterAttributes(tuple(self.parameter_names))


class ParameterAttributes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ParamName
    notification_change: bool = True
    notification: Annotated[int, Field(ge=0, le=6)] = 0
    access_list_change: bool = False
    access_list: list[Annotated[str, Field(max_length=64)]] = []


class SetParameterAttributesTask(_Spec):
    name: Literal["SetParameterAttributes"]
    parameter_list: Annotated[list[ParameterAttributes], Field(min_length=1)]

    def to_message(self, command_key: str) -> m.SetParameterAttributes:
        return m.SetParameterAttributes(
            tuple(
                m.SetParameterAttributesStruct(
                    a.name,
                    a.notification_change,
                    a.notification,
                    a.access_list_change,
                    tuple(a.access_list),
                )
                for a in self.parameter_list
            )
        )


class _ObjectTask(_Spec):
    object_name: ParamName
    parameter_key: CommandKey = ""

    @field_validator("object_name")
    @classmethod
    def _object(cls, value: str) -> str:
        if not value.endswith("."):
            raise ValueError("an object path ends with '.'")
        return value


class AddObjectTask(_ObjectTask):
    name: Literal["AddObject"]

    def to_message(self, command_key: str) -> m.AddObject:
        return m.AddObject(self.object_name, self.parameter_key)


class DeleteObjectTask(_ObjectTask):
    name: Literal["DeleteObject"]

    @field_validator("object_name")
    @classmethod
    def _instance(cls, value: str) -> str:
        last = value.rstrip(".").rpartition(".")[2]
        if not last.isdigit():
            raise ValueError("DeleteObject needs an instance path such as 'X.Y.3.'")
        return value

    def to_message(self, command_key: str) -> m.DeleteObject:
        return m.DeleteObject(self.object_name, self.parameter_key)


class _TransferTask(_Spec):
    """Download, Upload and ScheduleDownload share the file server arguments."""

    FILE_TYPES: ClassVar[tuple[str, ...]] = DOWNLOAD_FILE_TYPES

    command_key: CommandKey | None = Field(None, description="default: generated per task")
    file_type: str
    url: Annotated[str, Field(max_length=256)]
    username: Annotated[str, Field(max_length=256)] = ""
    password: Annotated[str, Field(max_length=256)] = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("file_type")
    @classmethod
    def _file_type(cls, value: str | None) -> str | None:
        return None if value is None else _check_file_type(value, cls.FILE_TYPES)


class DownloadTask(_TransferTask):
    """A Download of a URL, of a stored file (``file``), or of the device's own
    configuration file rendered now (``config``); the ACS fills URL (signed), FileType,
    FileSize and TargetFileName for the last two."""

    name: Literal["Download"]
    file_type: str | None = None  # type: ignore[assignment]
    url: Annotated[str | None, Field(max_length=256)] = None  # type: ignore[assignment]
    file: Annotated[str | None, Field(max_length=200, description="a stored file's name")] = None
    config: bool = Field(False, description="render and send the device's configuration file")
    file_size: Annotated[int, Field(ge=0)] = 0
    target_file_name: Annotated[str, Field(max_length=256)] = ""
    delay_seconds: Annotated[int, Field(ge=0)] = 0
    success_url: Annotated[str, Field(max_length=256)] = ""
    failure_url: Annotated[str, Field(max_length=256)] = ""

    @model_validator(mode="after")
    def _one_source(self) -> DownloadTask:
        sources = [
            n
            for n, given in (
                ("url", self.url is not None),
                ("file", self.file is not None),
                ("config", self.config),
            )
            if given
        ]
        if len(sources) != 1:
            raise ValueError("give exactly one of url, file or config")
        if self.url is not None and self.file_type is None:
            raise ValueError("file_type: required with url")
        return self

    def to_message(self, command_key: str) -> m.Download:
        if self.url is None or self.file_type is None:
            raise ValueError("a Download of a file or config is resolved by the ACS")
        return m.Download(
            command_key,
            self.file_type,
            self.url,
            self.username,
            self.password,
            self.file_size,
            self.target_file_name,
            self.delay_seconds,
            self.success_url,
            self.failure_url,
        )


class UploadTask(_TransferTask):
    FILE_TYPES = UPLOAD_FILE_TYPES

    name: Literal["Upload"]
    delay_seconds: Annotated[int, Field(ge=0)] = 0

    def to_message(self, command_key: str) -> m.Upload:
        return m.Upload(
            command_key,
            self.file_type,
            self.url,
            self.username,
            self.password,
            self.delay_seconds,
        )


class RebootTask(_Spec):
    name: Literal["Reboot"]
    command_key: CommandKey | None = None

    def to_message(self, command_key: str) -> m.Reboot:
        return m.Reboot(command_key)


class FactoryResetTask(_Spec):
    name: Literal["FactoryReset"]

    def to_message(self, command_key: str) -> m.FactoryReset:
        return m.FactoryReset()


class ScheduleInformTask(_Spec):
    name: Literal["ScheduleInform"]
    delay_seconds: Annotated[int, Field(ge=1)]
    command_key: CommandKey | None = None

    def to_message(self, command_key: str) -> m.ScheduleInform:
        return m.ScheduleInform(self.delay_seconds, command_key)


class TimeWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_start: Annotated[int, Field(ge=0)]
    window_end: Annotated[int, Field(ge=0)]
    window_mode: Literal[
        "1 At Any Time", "2 Immediately", "3 When Idle", "4 Confirmation Needed"
    ] = "1 At Any Time"
    user_message: Annotated[str, Field(max_length=256)] = ""
    max_retries: Annotated[int, Field(ge=-1)] = -1

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class ScheduleDownloadTask(_TransferTask):
    name: Literal["ScheduleDownload"]
    file_size: Annotated[int, Field(ge=0)] = 0
    target_file_name: Annotated[str, Field(max_length=256)] = ""
    time_window_list: Annotated[list[TimeWindow], Field(min_length=1, max_length=2)]

    def to_message(self, command_key: str) -> m.ScheduleDownload:
        return m.ScheduleDownload(
            command_key,
            self.file_type,
            self.url,
            self.username,
            self.password,
            self.file_size,
            self.target_file_name,
            tuple(
                m.TimeWindowStruct(
                    w.window_start, w.window_end, w.window_mode, w.user_message, w.max_retries
                )
                for w in self.time_window_list
            ),
        )


class CancelTransferTask(_Spec):
    name: Literal["CancelTransfer"]
    command_key: CommandKey

    def to_message(self, command_key: str) -> m.CancelTransfer:
        return m.CancelTransfer(self.command_key)

    @property
    def uses_command_key(self) -> bool:
        return False  # names another task's transfer; it has none of its own


class GetQueuedTransfersTask(_Spec):
    name: Literal["GetQueuedTransfers"]

    def to_message(self, command_key: str) -> m.GetQueuedTransfers:
        return m.GetQueuedTransfers()


class GetAllQueuedTransfersTask(_Spec):
    name: Literal["GetAllQueuedTransfers"]

    def to_message(self, command_key: str) -> m.GetAllQueuedTransfers:
        return m.GetAllQueuedTransfers()


TaskSpec = Annotated[
    GetRPCMethodsTask
    | GetParameterNamesTask
    | GetParameterValuesTask
    | SetParameterValuesTask
    | GetParameterAttributesTask
    | SetParameterAttributesTask
    | AddObjectTask
    | DeleteObjectTask
    | DownloadTask
    | UploadTask
    | RebootTask
    | FactoryResetTask
    | ScheduleInformTask
    | ScheduleDownloadTask
    | CancelTransferTask
    | GetQueuedTransfersTask
    | GetAllQueuedTransfersTask,
    Field(discriminator="name"),
]

TASK_ADAPTER: TypeAdapter[Any] = TypeAdapter(TaskSpec)
# Tasks after which the CPE goes away: they run last in a session, which then ends.
TERMINAL_TASKS = frozenset({"Reboot", "FactoryReset"})
# Tasks whose outcome a later Inform or TransferComplete reports.
TRANSFER_TASKS = frozenset({"Download", "Upload", "ScheduleDownload"})


def load(name: str, arguments: dict[str, Any]) -> Any:
    """The spec of a stored task (validated again: stored JSON is not trusted blindly)."""
    return TASK_ADAPTER.validate_python({"name": name, **arguments})
