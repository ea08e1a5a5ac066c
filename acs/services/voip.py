"""Common mode: SIP accounts pushed by SetParameterValues on the TR-104 paths the device
reports.

TR-104 issue 1 (``...VoiceService.{i}.VoiceProfile.{p}.Line.{l}.``) keeps a line's SIP
credentials under ``SIP.AuthUserName``/``SIP.AuthPassword`` and its display name under
``CallingFeatures.CallerIDName``; TR-104 issue 2 (``...VoiceService.{i}.SIP.Client.{c}.``)
keeps them under ``AuthUserName``/``AuthPassword``. We only write paths the device has told
us about (its parameter tree), so a SetParameterValues never names a parameter the device
does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from acs.services.errors import Conflict

_V1_LINE: Final = re.compile(r"^(.*\.VoiceService\.\d+\.VoiceProfile\.(\d+)\.)Line\.(\d+)\.")
_V2_CLIENT: Final = re.compile(r"^(.*\.VoiceService\.\d+\.)SIP\.Client\.(\d+)\.")


class SipAccount(BaseModel):
    """One SIP account for one line of a phone (line numbers start at 1)."""

    model_config = ConfigDict(extra="forbid")

    line: int = Field(1, ge=1, le=64)
    auth_user_name: str | None = Field(None, max_length=128)
    auth_password: str | None = Field(None, max_length=128)
    directory_number: str | None = Field(None, max_length=64)
    display_name: str | None = Field(None, max_length=128)
    uri: str | None = Field(None, max_length=256)
    enable: bool | None = None
    proxy_server: str | None = Field(None, max_length=256)
    proxy_server_port: int | None = Field(None, ge=1, le=65535)
    registrar_server: str | None = Field(None, max_length=256)
    user_agent_domain: str | None = Field(None, max_length=256)


class NoVoiceLines(Conflict):
    """The device's tree has no SIP lines yet, or not the lines or settings asked for: fetch
    its VoiceService first."""


@dataclass(frozen=True, slots=True)
class Line:
    prefix: str  # ".../Line.2." or ".../SIP.Client.2."
    profile: str  # ".../VoiceProfile.1." (issue 1) or ".../VoiceService.1." (issue 2)
    issue: int


def lines(parameters: dict[str, Any]) -> list[Line]:
    """The device's SIP lines in order, as its parameter tree shows them."""
    found: dict[str, Line] = {}
    for name in parameters:
        if m := _V1_LINE.match(name):
            prefix = name[: m.end()]
            found.setdefault(prefix, Line(prefix, m.group(1), 1))
        elif m := _V2_CLIENT.match(name):
            prefix = name[: m.end()]
            found.setdefault(prefix, Line(prefix, m.group(1), 2))

    def order(line: Line) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\.(\d+)\.", line.prefix))

    return sorted(found.values(), key=order)


def parameter_values(
    parameters: dict[str, Any], accounts: list[SipAccount]
) -> list[dict[str, Any]]:
    """SetParameterValues entries (name, value) for the accounts, on the device's paths."""
    available = lines(parameters)
    if not available:
        raise NoVoiceLines(
            "the device's SIP lines are not known yet: queue GetParameterValues of its "
            "VoiceService (e.g. Device.Services.VoiceService.) first"
        )
    out: dict[str, Any] = {}
    for account in accounts:
        if account.line > len(available):
            raise NoVoiceLines(f"line {account.line}: the device has {len(available)} line(s)")
        line = available[account.line - 1]
        fields: dict[str, Any]
        profile_fields: dict[str, Any]
        if line.issue == 1:
            fields = {
                "SIP.AuthUserName": account.auth_user_name,
                "SIP.AuthPassword": account.auth_password,
                "SIP.URI": account.uri,
                "DirectoryNumber": account.directory_number,
                "CallingFeatures.CallerIDName": account.display_name,
                "Enable": None
                if account.enable is None
                else ("Enabled" if account.enable else "Disabled"),
            }
            profile_fields = {
                "SIP.ProxyServer": account.proxy_server,
                "SIP.ProxyServerPort": account.proxy_server_port,
                "SIP.RegistrarServer": account.registrar_server,
                "SIP.UserAgentDomain": account.user_agent_domain,
            }
        else:
            fields = {
                "AuthUserName": account.auth_user_name,
                "AuthPassword": account.auth_password,
                "RegisterURI": account.uri,
                "Enable": account.enable,
            }
            profile_fields = {}
        for suffix, value in fields.items():
            if value is not None and line.prefix + suffix in parameters:
                out[line.prefix + suffix] = value
        for suffix, value in profile_fields.items():
            if value is not None and line.profile + suffix in parameters:
                out[line.profile + suffix] = value
    if not out:
        raise NoVoiceLines("none of the given settings exists on the device's lines")
    return [{"name": name, "value": value} for name, value in out.items()]
