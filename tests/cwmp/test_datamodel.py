"""Types of standard parameters (TR-098, TR-181, TR-104) by path, instance numbers aside."""

from __future__ import annotations

import pytest

from acs.cwmp import datamodel, xsd
from acs.simulator import datamodels

IGD = "InternetGatewayDevice"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # the README's example: a range does not make it anything but unsignedInt
        (f"{IGD}.ManagementServer.PeriodicInformInterval", "xsd:unsignedInt"),
        ("Device.ManagementServer.PeriodicInformInterval", "xsd:unsignedInt"),
        (f"{IGD}.ManagementServer.PeriodicInformEnable", "xsd:boolean"),
        (f"{IGD}.ManagementServer.PeriodicInformTime", "xsd:dateTime"),
        (f"{IGD}.ManagementServer.ConnectionRequestPassword", "xsd:string"),  # hidden
        (f"{IGD}.ManagementServer.STUNMaximumKeepAlivePeriod", "xsd:int"),
        (f"{IGD}.ManagementServer.CWMPRetryIntervalMultiplier", "xsd:unsignedInt"),
        (f"{IGD}.ManagementServer.UDPConnectionRequestAddressNotificationLimit", "xsd:unsignedInt"),
        (f"{IGD}.ManagementServer.ManageableDevice.3.SerialNumber", "xsd:string"),
        ("Device.ManagementServer.DelayReboot", "xsd:int"),
        ("Device.ManagementServer.ScheduleReboot", "xsd:dateTime"),
        (f"{IGD}.DeviceInfo.UpTime", "xsd:unsignedInt"),
        (f"{IGD}.DeviceInfo.ProvisioningCode", "xsd:string"),
        (f"{IGD}.Time.LocalTimeZoneName", "xsd:string"),
        ("Device.Time.Enable", "xsd:boolean"),
        # the same parameter, typed differently by the two roots
        (f"{IGD}.UserInterface.TextColor", "xsd:string"),
        ("Device.UserInterface.TextColor", "xsd:hexBinary"),
        (f"{IGD}.UserInterface.ISPLogo", "xsd:base64"),
        (f"{IGD}.Layer3Forwarding.Forwarding.12.ForwardingMetric", "xsd:int"),
        (f"{IGD}.LANDevice.1.LANHostConfigManagement.DHCPLeaseTime", "xsd:int"),
        (f"{IGD}.LANDevice.1.LANHostConfigManagement.DHCPOption.2.Value", "xsd:base64"),
        ("Device.DHCPv4.Server.Pool.1.Option.2.Value", "xsd:hexBinary"),
        ("Device.DHCPv4.Server.Pool.1.LeaseTime", "xsd:int"),
        (f"{IGD}.LANDevice.1.WLANConfiguration.1.SSID", "xsd:string"),
        (f"{IGD}.LANDevice.2.WLANConfiguration.5.Channel", "xsd:unsignedInt"),
        (f"{IGD}.LANDevice.1.WLANConfiguration.1.PreSharedKey.10.KeyPassphrase", "xsd:string"),
        (f"{IGD}.LANDevice.1.WLANConfiguration.1.WEPKey.4.WEPKey", "xsd:string"),
        (f"{IGD}.LANDevice.1.WLANConfiguration.1.WPS.DevicePassword", "xsd:unsignedInt"),
        (f"{IGD}.LANDevice.1.WLANConfiguration.1.TransmitPowerSupported", "xsd:string"),  # list
        (f"{IGD}.WANDevice.1.WANConnectionDevice.2.WANPPPConnection.1.Username", "xsd:string"),
        (
            f"{IGD}.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.MaxMTUSize",
            "xsd:unsignedInt",
        ),
        (f"{IGD}.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ShapingRate", "xsd:int"),
        (
            f"{IGD}.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.PortMapping.7.ExternalPort",
            "xsd:unsignedInt",
        ),
        ("Device.WiFi.Radio.2.TransmitPower", "xsd:int"),  # -1 is auto (unsignedInt in TR-098)
        ("Device.WiFi.Radio.1.Channel", "xsd:unsignedInt"),
        ("Device.WiFi.SSID.3.SSID", "xsd:string"),
        ("Device.WiFi.AccessPoint.1.Security.PreSharedKey", "xsd:hexBinary"),
        ("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "xsd:string"),
        ("Device.WiFi.AccessPoint.1.AssociatedDevice.4.SignalStrength", "xsd:int"),
        ("Device.IP.Interface.1.IPv4Address.1.IPAddress", "xsd:string"),
        ("Device.PPP.Interface.1.MaxMRUSize", "xsd:unsignedInt"),
        ("Device.NAT.PortMapping.1.InternalPort", "xsd:unsignedInt"),
        ("Device.Hosts.Host.17.ActiveLastChange", "xsd:dateTime"),
        ("Device.DNS.Client.Server.1.DNSServer", "xsd:string"),
        # TR-104 under either root
        ("Device.Services.VoiceService.1.VoiceProfile.1.SIP.ProxyServerPort", "xsd:unsignedInt"),
        (f"{IGD}.Services.VoiceService.1.VoiceProfile.2.SIP.ProxyServerPort", "xsd:unsignedInt"),
        (f"{IGD}.Services.VoiceService.1.VoiceProfile.1.Enable", "xsd:string"),  # enumeration
        ("Device.Services.VoiceService.1.VoiceProfile.1.Line.2.Enable", "xsd:string"),
        ("Device.Services.VoiceService.1.VoiceProfile.1.Line.2.SIP.AuthPassword", "xsd:string"),
        (
            "Device.Services.VoiceService.1.VoiceProfile.1.Line.1.CallingFeatures.CallWaitingEnable",
            "xsd:boolean",
        ),
        (
            "Device.Services.VoiceService.1.VoiceProfile.1.Line.1.Codec.List.3.Priority",
            "xsd:unsignedInt",
        ),
        ("Device.Services.VoiceService.1.VoiceProfile.1.RTP.VLANIDMark", "xsd:int"),
        (
            "Device.Services.VoiceService.1.VoiceProfile.1.NumberingPlan.InterDigitTimerStd",
            "xsd:unsignedInt",
        ),
        # instance aliases (TR-069 3.6.1) stand for instance numbers too
        ("Device.WiFi.SSID.[guest].SSID", "xsd:string"),
    ],
)
def test_standard_types(path, expected):
    assert datamodel.standard_type(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        f"{IGD}.X_00D09E_Debug.LogLevel",  # vendor object
        f"{IGD}.ManagementServer.X_00D09E_Token",  # vendor parameter in a standard object
        "Device.DeviceInfo.SpecVersion",  # TR-098 only
        "Device.ManagementServer.UDPConnectionRequestAddressNotificationLimit",  # TR-098 only
        f"{IGD}.WiFi.Radio.1.Channel",  # TR-181 object under the TR-098 root
        "VoiceService.1.VoiceProfile.1.Enable",  # a service object is never a root
        "Device.Services.VoiceService.1.VoiceProfile.1.Line.1.SIP.",  # an object, not a parameter
        f"{IGD}.ManagementServer.",
        f"{IGD}.LANDevice.one.WLANConfiguration.1.SSID",  # not an instance number
        f"{IGD}.LANDevice.\u0663.WLANConfiguration.1.SSID",  # nor is an Arabic-Indic digit
        "Device.Unknown.Thing",
        "",
    ],
)
def test_vendor_and_unknown_paths_have_no_standard_type(path):
    assert datamodel.standard_type(path) is None


def test_every_entry_is_a_canonical_type_under_a_standard_root():
    entries = {
        **datamodel.TYPES,
        **{f"Device.Services.{k}": v for k, v in datamodel.SERVICE_TYPES.items()},
    }
    assert len(entries) == len(datamodel.TYPES) + len(datamodel.SERVICE_TYPES)
    for path, type_ in entries.items():
        assert type_ in xsd.KNOWN_TYPES, path
        assert xsd.normalize_type(type_) == type_, path
        assert path.startswith((f"{IGD}.", "Device.")), path
        assert "X_" not in path, path
        assert not path.endswith("."), path
    assert all(k.startswith("VoiceService.{i}.") for k in datamodel.SERVICE_TYPES)


@pytest.mark.parametrize(
    ("model", "standard_count"),
    # with TR-111's STUN parameters (both), Annex K's ConnReq* (the phone), PeriodicInformTime
    [(datamodels.gateway("SN0001"), 42), (datamodels.phone("0c:38:3e:12:34:56"), 52)],
    ids=["gateway", "phone"],
)
def test_bundled_simulator_models_agree_with_the_standard(model, standard_count):
    standard = {n: datamodel.standard_type(n) for n in model.parameters}
    disagree = {
        n: (t, model.parameters[n].type)
        for n, t in standard.items()
        if t is not None and t != model.parameters[n].type
    }
    assert disagree == {}
    assert sum(t is not None for t in standard.values()) == standard_count
