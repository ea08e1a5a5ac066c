"""Bundled data models: a TR-098 home gateway and a TR-181/TR-104 VoIP phone."""

from __future__ import annotations

from acs.cwmp import xsd
from acs.simulator.model import CpeModel, Parameter

W = True  # writable
R = False


def _fill(model: CpeModel, rows: list[tuple[str, xsd.Value, str, bool]]) -> CpeModel:
    for name, value, type_, writable in rows:
        model.parameters[f"{model.root}.{name}"] = Parameter(value, type_, writable)
    return model


def _stun_rows() -> list[tuple[str, xsd.Value, str, bool]]:
    """TR-111 part 2's ManagementServer parameters (TR-098 and TR-181 alike)."""
    s, u, b, i = xsd.STRING, xsd.UNSIGNED_INT, xsd.BOOLEAN, xsd.INT
    return [
        ("ManagementServer.STUNEnable", False, b, W),
        ("ManagementServer.STUNServerAddress", "", s, W),
        ("ManagementServer.STUNServerPort", 3478, u, W),
        ("ManagementServer.STUNUsername", "", s, W),
        ("ManagementServer.STUNPassword", "", s, W),
        ("ManagementServer.STUNMaximumKeepAlivePeriod", -1, i, W),
        ("ManagementServer.STUNMinimumKeepAlivePeriod", 60, u, W),
        ("ManagementServer.NATDetected", False, b, R),
    ]


def gateway(serial: str, *, cr_url: str = "", software_version: str = "1.0.0") -> CpeModel:
    """An ``InternetGatewayDevice`` (TR-098) with WAN, LAN and WLAN basics."""
    model = CpeModel("Acme Networks", "00D09E", "IGD", serial, root="InternetGatewayDevice")
    s, u, b, i = xsd.STRING, xsd.UNSIGNED_INT, xsd.BOOLEAN, xsd.INT
    wan = "WANDevice.1.WANConnectionDevice.1.WANIPConnection.1."
    return _fill(
        model,
        [
            ("DeviceSummary", "InternetGatewayDevice:1.4[](Baseline:2, EthernetLAN:1)", s, R),
            ("DeviceInfo.Manufacturer", "Acme Networks", s, R),
            ("DeviceInfo.ManufacturerOUI", "00D09E", s, R),
            ("DeviceInfo.ProductClass", "IGD", s, R),
            ("DeviceInfo.SerialNumber", serial, s, R),
            ("DeviceInfo.HardwareVersion", "HW-2", s, R),
            ("DeviceInfo.SoftwareVersion", software_version, s, R),
            ("DeviceInfo.SpecVersion", "1.0", s, R),
            ("DeviceInfo.ProvisioningCode", "", s, W),
            ("DeviceInfo.UpTime", 42, u, R),
            ("ManagementServer.URL", "", s, W),
            ("ManagementServer.Username", "", s, W),
            ("ManagementServer.Password", "", s, W),
            ("ManagementServer.PeriodicInformEnable", True, b, W),
            ("ManagementServer.PeriodicInformInterval", 3600, u, W),
            ("ManagementServer.PeriodicInformTime", "0001-01-01T00:00:00Z", xsd.DATE_TIME, W),
            ("ManagementServer.ParameterKey", "", s, R),
            ("ManagementServer.ConnectionRequestURL", cr_url, s, R),
            ("ManagementServer.ConnectionRequestUsername", "", s, W),
            ("ManagementServer.ConnectionRequestPassword", "", s, W),
            ("ManagementServer.UDPConnectionRequestAddress", "", s, R),
            *_stun_rows(),
            (wan + "Enable", True, b, W),
            (wan + "ConnectionStatus", "Connected", s, R),
            (wan + "ExternalIPAddress", "198.51.100.7", s, R),
            (wan + "MACAddress", "00:d0:9e:12:34:56", s, R),
            (wan + "MaxMTUSize", 1500, u, W),
            ("LANDevice.1.LANHostConfigManagement.DHCPServerEnable", True, b, W),
            ("LANDevice.1.LANHostConfigManagement.MinAddress", "192.168.1.100", s, W),
            ("LANDevice.1.LANHostConfigManagement.MaxAddress", "192.168.1.200", s, W),
            ("LANDevice.1.WLANConfiguration.1.Enable", True, b, W),
            ("LANDevice.1.WLANConfiguration.1.SSID", f"acme-{serial[-4:]}", s, W),
            ("LANDevice.1.WLANConfiguration.1.Channel", 6, u, W),
            ("LANDevice.1.WLANConfiguration.1.KeyPassphrase", "", s, W),
            ("Time.NTPServer1", "pool.ntp.org", s, W),
            ("Time.LocalTimeZoneName", "UTC", s, W),
            ("X_00D09E_Debug.LogLevel", 3, i, W),
        ],
    )


def phone(
    mac: str, *, cr_url: str = "", software_version: str = "2.4.1", model_name: str = "X6"
) -> CpeModel:
    """A ``Device`` (TR-181) VoIP phone with a TR-104 VoiceService and two SIP lines."""
    serial = mac.replace(":", "").lower()
    model = CpeModel("Fanvil", "0C383E", model_name, serial, root="Device")
    s, u, b = xsd.STRING, xsd.UNSIGNED_INT, xsd.BOOLEAN
    rows: list[tuple[str, xsd.Value, str, bool]] = [
        ("RootDataModelVersion", "2.12", s, R),
        ("DeviceInfo.Manufacturer", "Fanvil", s, R),
        ("DeviceInfo.ManufacturerOUI", "0C383E", s, R),
        ("DeviceInfo.ModelName", model_name, s, R),
        ("DeviceInfo.ProductClass", model_name, s, R),
        ("DeviceInfo.SerialNumber", serial, s, R),
        ("DeviceInfo.HardwareVersion", "V1.0", s, R),
        ("DeviceInfo.SoftwareVersion", software_version, s, R),
        ("DeviceInfo.SpecVersion", "1.0", s, R),
        ("DeviceInfo.ProvisioningCode", "", s, W),
        ("DeviceInfo.UpTime", 7, u, R),
        ("ManagementServer.URL", "", s, W),
        ("ManagementServer.Username", "", s, W),
        ("ManagementServer.Password", "", s, W),
        ("ManagementServer.PeriodicInformEnable", True, b, W),
        ("ManagementServer.PeriodicInformInterval", 3600, u, W),
        ("ManagementServer.PeriodicInformTime", "0001-01-01T00:00:00Z", xsd.DATE_TIME, W),
        ("ManagementServer.ParameterKey", "", s, R),
        ("ManagementServer.ConnectionRequestURL", cr_url, s, R),
        ("ManagementServer.ConnectionRequestUsername", "", s, W),
        ("ManagementServer.ConnectionRequestPassword", "", s, W),
        ("ManagementServer.UDPConnectionRequestAddress", "", s, R),
        *_stun_rows(),
        # TR-069 Annex K: connection requests over XMPP (Device:2.7)
        ("ManagementServer.ConnReqAllowedJabberIDs", "", s, W),
        ("ManagementServer.ConnReqJabberID", "", s, R),
        ("ManagementServer.ConnReqXMPPConnection", "", s, W),
        ("Ethernet.Interface.1.MACAddress", mac, s, R),
        ("Ethernet.Interface.1.Enable", True, b, W),
        ("Time.NTPServer1", "pool.ntp.org", s, W),
    ]
    vs = "Services.VoiceService.1."
    rows += [
        (vs + "VoiceProfile.1.Enable", "Enabled", s, W),
        (vs + "VoiceProfile.1.SIP.ProxyServer", "", s, W),
        (vs + "VoiceProfile.1.SIP.ProxyServerPort", 5060, u, W),
        (vs + "VoiceProfile.1.SIP.RegistrarServer", "", s, W),
        (vs + "VoiceProfile.1.SIP.UserAgentDomain", "", s, W),
    ]
    for line in (1, 2):
        lp = f"{vs}VoiceProfile.1.Line.{line}."
        rows += [
            (lp + "Enable", "Disabled", s, W),
            (lp + "DirectoryNumber", "", s, W),
            (lp + "Status", "Disabled", s, R),
            (lp + "CallingFeatures.CallerIDName", "", s, W),
            (lp + "SIP.AuthUserName", "", s, W),
            (lp + "SIP.AuthPassword", "", s, W),
            (lp + "SIP.URI", "", s, W),
        ]
    _fill(model, rows)
    # XMPP.Connection and its Server table start empty; the ACS adds what it provisions
    model.templates["Device.XMPP.Connection."] = {
        "Enable": Parameter(False, b, W),
        "Username": Parameter("", s, W),
        "Password": Parameter("", s, W),
        "Domain": Parameter("", s, W),
        "Resource": Parameter("", s, W),
        "UseTLS": Parameter(False, b, W),
        "JabberID": Parameter("", s, R),
        "Status": Parameter("Disabled", s, R),
    }
    model.templates["Device.XMPP.Connection.{i}.Server."] = {
        "Enable": Parameter(False, b, W),
        "ServerAddress": Parameter("", s, W),
        "Port": Parameter(5222, u, W),
    }
    # Phones report their MAC in every Inform (active notification), as Fanvil's do.
    model.parameters["Device.Ethernet.Interface.1.MACAddress"].notification = 2
    return model
