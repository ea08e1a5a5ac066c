"""Types of standard CWMP parameters, from the Broadband Forum data models.

A SetParameterValues needs an ``xsi:type`` per value, and a CPE faults 9006 on a wrong
one: ``PeriodicInformInterval`` is ``xsd:unsignedInt`` whatever its JSON value looks like.
When neither the operator nor the device's parameter tree gives the type, this table does,
for the parameters an ACS commonly sets or reads on the standard roots:

- TR-098 ``tr-098-1-8-0``, ``InternetGatewayDevice:1.14`` (``tr-098-1-8-0-full.xml``)
- TR-181 ``tr-181-2-11-0``, ``Device:2.11`` (``tr-181-2-11-0-cwmp-full.xml``)
- TR-104 ``tr-104-1-1-0``, ``VoiceService:1.1`` (``tr-104-1-1-0-full.xml``), a service
  object mounted under ``<root>.Services.`` of either root

(the Broadband Forum's cwmp-data-models repository; types only, checked per object).

Types are as TR-106 puts them on the wire: a list-valued parameter is ``xsd:string``
whatever its items are; named data types resolve to their base (``IPAddress``,
``MACAddress`` and ``Alias`` are strings, ``StatsCounter32`` is ``unsignedInt``,
``StatsCounter64`` ``unsignedLong``); ranges and hidden (password) syntax do not change the
type. Vendor parameters (``X_...``) are never here.

Lookup is one dict access: instance numbers (and ``[alias]`` instance aliases, TR-069
3.6.1) become ``{i}``, as the data models write table paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from acs.cwmp import xsd

_S, _B, _U, _I = xsd.STRING, xsd.BOOLEAN, xsd.UNSIGNED_INT, xsd.INT
_DT, _B64, _HEX = xsd.DATE_TIME, xsd.BASE64, xsd.HEX_BINARY

# (object path, {xsd type: parameter names}), one block per object of the data model.
_Block = tuple[str, dict[str, str]]

# The data models' root objects: TR-098's (gateways) and TR-181's (everything since).
ROOTS: Final = ("InternetGatewayDevice", "Device")


def under_roots(path: str) -> list[str]:
    """``path`` (``DeviceInfo.ModelName``) under each root."""
    return [f"{root}.{path}" for root in ROOTS]


_IGD = "InternetGatewayDevice."
_LAN = _IGD + "LANDevice.{i}."
_WLAN = _LAN + "WLANConfiguration.{i}."
_WCD = _IGD + "WANDevice.{i}.WANConnectionDevice.{i}."

_TR098: Final[tuple[_Block, ...]] = (
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "DeviceInfo.",
        {
            _S: """DeviceCategory Manufacturer ManufacturerOUI ModelName ModelNumber
                Description ProductClass SerialNumber HardwareVersion SoftwareVersion
                ModemFirmwareVersion EnabledOptions AdditionalHardwareVersion
                AdditionalSoftwareVersion SpecVersion ProvisioningCode DeviceLog""",
            _U: """UpTime VendorConfigFileNumberOfEntries SupportedDataModelNumberOfEntries
                ProcessorNumberOfEntries VendorLogFileNumberOfEntries LocationNumberOfEntries""",
            _DT: "FirstUseDate",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "DeviceInfo.VendorConfigFile.{i}.",
        {_S: "Alias Name Version Description", _DT: "Date"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (_IGD + "DeviceInfo.MemoryStatus.", {_U: "Total Free"}),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (_IGD + "DeviceInfo.ProcessStatus.", {_U: "CPUUsage ProcessNumberOfEntries"}),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (_IGD + "DeviceConfig.", {_S: "PersistentData ConfigFile"}),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.",
        {
            _B: """EnableCWMP PeriodicInformEnable UpgradesManaged STUNEnable NATDetected
                AliasBasedAddressing AutoCreateInstances""",
            _S: """URL Username Password ParameterKey ConnectionRequestURL
                ConnectionRequestUsername ConnectionRequestPassword KickURL DownloadProgressURL
                UDPConnectionRequestAddress STUNServerAddress STUNUsername STUNPassword
                InstanceMode SupportedConnReqMethods ConnReqXMPPConnection
                ConnReqAllowedJabberIDs ConnReqJabberID HTTPCompressionSupported
                HTTPCompression LightweightNotificationProtocolsSupported
                LightweightNotificationProtocolsUsed UDPLightweightNotificationHost""",
            _U: """PeriodicInformInterval DefaultActiveNotificationThrottle
                UDPConnectionRequestAddressNotificationLimit STUNServerPort
                STUNMinimumKeepAlivePeriod CWMPRetryMinimumWaitInterval
                CWMPRetryIntervalMultiplier ManageableDeviceNumberOfEntries
                ManageableDeviceNotificationLimit EmbeddedDeviceNumberOfEntries
                VirtualDeviceNumberOfEntries UDPLightweightNotificationPort
                InformParameterNumberOfEntries""",
            _I: "STUNMaximumKeepAlivePeriod",
            _DT: "PeriodicInformTime",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.ManageableDevice.{i}.",
        {_S: "ManufacturerOUI SerialNumber ProductClass Host"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.AutonomousTransferCompletePolicy.",
        {_B: "Enable", _S: "TransferTypeFilter ResultTypeFilter FileTypeFilter"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.DUStateChangeComplPolicy.",
        {_B: "Enable", _S: "OperationTypeFilter ResultTypeFilter FaultCodeFilter"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.EmbeddedDevice.{i}.",
        {
            _S: """ControllerID ProxiedDeviceID Reference SupportedDataModel Host ProxyProtocol
                ProxyProtocolReference DiscoveryProtocol DiscoveryProtocolReference
                CommandProcessed CommandProcessingErrMsg""",
            _DT: "LastSyncTime",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.VirtualDevice.{i}.",
        {
            _S: """ManufacturerOUI ProductClass SerialNumber Host ProxyProtocol
                ProxyProtocolReference DiscoveryProtocol DiscoveryProtocolReference"""
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.StandbyPolicy.",
        {
            _I: "CRUnawarenessMaxDuration MaxMissedPeriodic",
            _B: """NotifyMissedScheduled NetworkAwarenessCapable SelfTimerCapable
                CRAwarenessRequested PeriodicAwarenessRequested ScheduledAwarenessRequested""",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "ManagementServer.InformParameter.{i}.",
        {_B: "Enable", _S: "Alias ParameterName EventList"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "Time.",
        {
            _B: "Enable DaylightSavingsUsed",
            _S: """Status NTPServer1 NTPServer2 NTPServer3 NTPServer4 NTPServer5 LocalTimeZone
                LocalTimeZoneName""",
            _DT: "CurrentLocalTime DaylightSavingsStart DaylightSavingsEnd",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "UserInterface.",
        {
            _B: """UserDatabaseSupported SharedPassword PasswordRequired PasswordUserSelectable
                UpgradeAvailable""",
            _S: """ISPName ISPHelpDesk ISPHomePage ISPHelpPage ISPMailServer ISPNewsServer
                TextColor BackgroundColor ButtonColor ButtonTextColor AutoUpdateServer
                UserUpdateServer ExampleLogin ExamplePassword AvailableLanguages
                CurrentLanguage""",
            _DT: "WarrantyDate",
            _B64: "ISPLogo",
            _U: "ISPLogoSize",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "UserInterface.RemoteAccess.",
        {_B: "Enable", _U: "Port", _S: "SupportedProtocols Protocol"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "UserInterface.LocalDisplay.",
        {
            _B: "Movable Resizable",
            _I: "PosX PosY",
            _U: "Width Height DisplayWidth DisplayHeight",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (_IGD + "Layer3Forwarding.", {_S: "DefaultConnectionService", _U: "ForwardNumberOfEntries"}),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _IGD + "Layer3Forwarding.Forwarding.{i}.",
        {
            _B: "Enable StaticRoute",
            _S: """Status Alias Type DestIPAddress DestSubnetMask SourceIPAddress
                SourceSubnetMask GatewayIPAddress Interface""",
            _I: "ForwardingPolicy ForwardingMetric",
            _U: "MTU",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (_IGD + "LANConfigSecurity.", {_S: "ConfigPassword"}),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _LAN,
        {
            _S: "Alias",
            _U: """LANEthernetInterfaceNumberOfEntries LANUSBInterfaceNumberOfEntries
                LANWLANConfigurationNumberOfEntries""",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _LAN + "LANHostConfigManagement.",
        {
            _S: """MACAddress MinAddress MaxAddress ReservedAddresses SubnetMask DNSServers
                DomainName IPRouters UseAllocatedWAN AssociatedConnection PassthroughMACAddress
                AllowedMACAddresses""",
            _B: "DHCPServerConfigurable DHCPServerEnable DHCPRelay",
            _I: "DHCPLeaseTime",
            _U: """PassthroughLease IPInterfaceNumberOfEntries DHCPStaticAddressNumberOfEntries
                DHCPOptionNumberOfEntries DHCPConditionalPoolNumberOfEntries""",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _LAN + "LANHostConfigManagement.IPInterface.{i}.",
        {
            _B: "Enable",
            _S: "Alias IPInterfaceIPAddress IPInterfaceSubnetMask IPInterfaceAddressingType",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _LAN + "LANHostConfigManagement.DHCPStaticAddress.{i}.",
        {_B: "Enable", _S: "Alias Chaddr Yiaddr"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _LAN + "LANHostConfigManagement.DHCPOption.{i}.",
        {_B: "Enable", _S: "Alias", _U: "Tag", _B64: "Value"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WLAN,
        {
            _B: """Enable AutoChannelEnable MACAddressControlEnabled InsecureOOBAccessEnabled
                BeaconAdvertisementEnabled SSIDAdvertisementEnabled RadioEnabled
                AutoRateFallBackEnabled WMMSupported UAPSDSupported WMMEnable UAPSDEnable""",
            _S: """Status Alias Name BSSID MaxBitRate SSID BeaconType Standard KeyPassphrase
                WEPEncryptionLevel BasicEncryptionModes BasicAuthenticationMode
                WPAEncryptionModes WPAAuthenticationMode IEEE11iEncryptionModes
                IEEE11iAuthenticationMode PossibleChannels BasicDataTransmitRates
                OperationalDataTransmitRates PossibleDataTransmitRates TransmitPowerSupported
                LocationDescription RegulatoryDomain ChannelsInUse DeviceOperationMode
                PeerBSSID AuthenticationServiceMode""",
            _U: """Channel WEPKeyIndex TransmitPower TotalPSKFailures TotalIntegrityFailures
                DistanceFromRoot TotalBytesSent TotalBytesReceived TotalPacketsSent
                TotalPacketsReceived TotalAssociations""",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (_WLAN + "WEPKey.{i}.", {_S: "Alias WEPKey"}),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WLAN + "PreSharedKey.{i}.",
        {_S: "Alias PreSharedKey KeyPassphrase AssociatedDeviceMACAddress"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WLAN + "WPS.",
        {
            _B: "Enable SetupLock RegistrarEstablished",
            _S: """DeviceName UUID ConfigMethodsSupported ConfigMethodsEnabled SetupLockedState
                ConfigurationState LastConfigurationError""",
            _U: "DevicePassword Version RegistrarNumberOfEntries",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WLAN + "AssociatedDevice.{i}.",
        {
            _S: """AssociatedDeviceMACAddress AssociatedDeviceIPAddress
                LastRequestedUnicastCipher LastRequestedMulticastCipher LastPMKId
                LastDataTransmitRate""",
            _B: "AssociatedDeviceAuthenticationState",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WCD,
        {_S: "Alias", _U: "WANIPConnectionNumberOfEntries WANPPPConnectionNumberOfEntries"},
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WCD + "WANIPConnection.{i}.",
        {
            _B: """Enable Reset RSIPAvailable NATEnabled DNSEnabled DNSOverrideAllowed
                MACAddressOverride""",
            _S: """Alias ConnectionStatus PossibleConnectionTypes ConnectionType Name
                LastConnectionError AddressingType ExternalIPAddress SubnetMask DefaultGateway
                DNSServers MACAddress ConnectionTrigger RouteProtocolRx""",
            _U: """Uptime AutoDisconnectTime IdleDisconnectTime WarnDisconnectDelay MaxMTUSize
                ShapingBurstSize PortMappingNumberOfEntries""",
            _I: "ShapingRate",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WCD + "WANIPConnection.{i}.PortMapping.{i}.",
        {
            _B: "PortMappingEnabled",
            _S: "Alias RemoteHost PortMappingProtocol InternalClient PortMappingDescription",
            _U: "PortMappingLeaseDuration ExternalPort ExternalPortEndRange InternalPort",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WCD + "WANPPPConnection.{i}.",
        {
            _B: """Enable Reset RSIPAvailable NATEnabled DNSEnabled DNSOverrideAllowed
                MACAddressOverride""",
            _S: """Alias ConnectionStatus PossibleConnectionTypes ConnectionType DefaultGateway
                Name LastConnectionError Username Password PPPEncryptionProtocol
                PPPCompressionProtocol PPPAuthenticationProtocol ExternalIPAddress
                RemoteIPAddress DNSServers MACAddress TransportType PPPoEACName
                PPPoEServiceName ConnectionTrigger RouteProtocolRx""",
            _U: """PPPoESessionID Uptime AutoDisconnectTime IdleDisconnectTime
                WarnDisconnectDelay MaxMRUSize CurrentMRUSize PPPLCPEcho PPPLCPEchoRetry
                ShapingBurstSize PortMappingNumberOfEntries""",
            _I: "ShapingRate",
        },
    ),
    # TR-098 tr-098-1-8-0, InternetGatewayDevice:1.14
    (
        _WCD + "WANPPPConnection.{i}.PortMapping.{i}.",
        {
            _B: "PortMappingEnabled",
            _S: "Alias RemoteHost PortMappingProtocol InternalClient PortMappingDescription",
            _U: "PortMappingLeaseDuration ExternalPort ExternalPortEndRange InternalPort",
        },
    ),
)

_DEV = "Device."
_MS = _DEV + "ManagementServer."
_AP = _DEV + "WiFi.AccessPoint.{i}."
_POOL = _DEV + "DHCPv4.Server.Pool.{i}."

_TR181: Final[tuple[_Block, ...]] = (
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV, {_S: "RootDataModelVersion", _U: "InterfaceStackNumberOfEntries"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "DeviceInfo.",
        {
            _S: """DeviceCategory Manufacturer ManufacturerOUI ModelName ModelNumber
                Description ProductClass SerialNumber HardwareVersion SoftwareVersion
                AdditionalHardwareVersion AdditionalSoftwareVersion ProvisioningCode""",
            _U: """SupportedDataModelNumberOfEntries UpTime VendorConfigFileNumberOfEntries
                ProcessorNumberOfEntries VendorLogFileNumberOfEntries LocationNumberOfEntries
                DeviceImageNumberOfEntries""",
            _DT: "FirstUseDate",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "DeviceInfo.VendorConfigFile.{i}.",
        {_S: "Alias Name Version Description", _DT: "Date", _B: "UseForBackupRestore"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "DeviceInfo.MemoryStatus.", {_U: "Total Free"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "DeviceInfo.ProcessStatus.", {_U: "CPUUsage ProcessNumberOfEntries"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS,
        {
            _B: """EnableCWMP PeriodicInformEnable UpgradesManaged HTTPConnectionRequestEnable
                STUNEnable NATDetected AliasBasedAddressing AutoCreateInstances""",
            _S: """URL Username Password ParameterKey ConnectionRequestURL
                ConnectionRequestUsername ConnectionRequestPassword KickURL DownloadProgressURL
                UDPConnectionRequestAddress STUNServerAddress STUNUsername STUNPassword
                InstanceMode SupportedConnReqMethods ConnReqXMPPConnection
                ConnReqAllowedJabberIDs ConnReqJabberID HTTPCompressionSupported
                HTTPCompression LightweightNotificationProtocolsSupported
                LightweightNotificationProtocolsUsed UDPLightweightNotificationHost""",
            _U: """PeriodicInformInterval DefaultActiveNotificationThrottle
                CWMPRetryMinimumWaitInterval CWMPRetryIntervalMultiplier STUNServerPort
                STUNMinimumKeepAlivePeriod ManageableDeviceNumberOfEntries
                ManageableDeviceNotificationLimit EmbeddedDeviceNumberOfEntries
                VirtualDeviceNumberOfEntries UDPLightweightNotificationPort
                InformParameterNumberOfEntries""",
            _I: "DelayReboot STUNMaximumKeepAlivePeriod",
            _DT: "ScheduleReboot PeriodicInformTime",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_MS + "ManageableDevice.{i}.", {_S: "Alias ManufacturerOUI SerialNumber ProductClass Host"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS + "AutonomousTransferCompletePolicy.",
        {_B: "Enable", _S: "TransferTypeFilter ResultTypeFilter FileTypeFilter"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS + "DownloadAvailability.Announcement.",
        {_B: "Enable", _S: "Status", _U: "GroupNumberOfEntries"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_MS + "DownloadAvailability.Announcement.Group.{i}.", {_B: "Enable", _S: "Alias Status URL"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_MS + "DownloadAvailability.Query.", {_B: "Enable", _S: "Status URL"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS + "DUStateChangeComplPolicy.",
        {_B: "Enable", _S: "OperationTypeFilter ResultTypeFilter FaultCodeFilter"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS + "EmbeddedDevice.{i}.",
        {
            _S: """ControllerID ProxiedDeviceID Reference SupportedDataModel Host ProxyProtocol
                ProxyProtocolReference DiscoveryProtocol DiscoveryProtocolReference
                CommandProcessed CommandProcessingErrMsg""",
            _DT: "LastSyncTime",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS + "VirtualDevice.{i}.",
        {
            _S: """ManufacturerOUI ProductClass SerialNumber Host ProxyProtocol
                ProxyProtocolReference DiscoveryProtocol DiscoveryProtocolReference"""
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _MS + "StandbyPolicy.",
        {
            _I: "CRUnawarenessMaxDuration MaxMissedPeriodic",
            _B: """NotifyMissedScheduled NetworkAwarenessCapable SelfTimerCapable
                CRAwarenessRequested PeriodicAwarenessRequested ScheduledAwarenessRequested""",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_MS + "InformParameter.{i}.", {_B: "Enable", _S: "Alias ParameterName EventList"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "Time.",
        {
            _B: "Enable",
            _S: "Status NTPServer1 NTPServer2 NTPServer3 NTPServer4 NTPServer5 LocalTimeZone",
            _DT: "CurrentLocalTime",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11 (colours are hexBinary here, strings in TR-098)
    (
        _DEV + "UserInterface.",
        {
            _B: "Enable PasswordRequired PasswordUserSelectable PasswordReset UpgradeAvailable",
            _S: """ISPName ISPHelpDesk ISPHomePage ISPHelpPage ISPMailServer ISPNewsServer
                AutoUpdateServer UserUpdateServer AvailableLanguages CurrentLanguage""",
            _HEX: "TextColor BackgroundColor ButtonColor ButtonTextColor",
            _DT: "WarrantyDate",
            _B64: "ISPLogo",
            _U: "ISPLogoSize",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "UserInterface.RemoteAccess.",
        {_B: "Enable", _U: "Port", _S: "SupportedProtocols Protocol"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "UserInterface.LocalDisplay.",
        {
            _B: "Movable Resizable",
            _I: "PosX PosY",
            _U: "Width Height DisplayWidth DisplayHeight",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "WiFi.Radio.{i}.",
        {
            _B: """Enable Upstream AutoChannelSupported AutoChannelEnable IEEE80211hSupported
                IEEE80211hEnabled PacketAggregationEnable""",
            _S: """Status Alias Name LowerLayers SupportedFrequencyBands OperatingFrequencyBand
                SupportedStandards OperatingStandards PossibleChannels ChannelsInUse
                OperatingChannelBandwidth CurrentOperatingChannelBandwidth ExtensionChannel
                GuardInterval TransmitPowerSupported RegulatoryDomain PreambleType
                BasicDataTransmitRates OperationalDataTransmitRates SupportedDataTransmitRates""",
            _U: """LastChange MaxBitRate Channel AutoChannelRefreshPeriod RetryLimit
                FragmentationThreshold RTSThreshold LongRetryLimit BeaconPeriod DTIMPeriod""",
            _I: "MCS TransmitPower",
            _HEX: "CCARequest CCAReport RPIHistogramRequest RPIHistogramReport",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "WiFi.SSID.{i}.",
        {
            _B: "Enable",
            _S: "Status Alias Name LowerLayers BSSID MACAddress SSID",
            _U: "LastChange",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _AP,
        {
            _B: """Enable SSIDAdvertisementEnabled WMMCapability UAPSDCapability WMMEnable
                UAPSDEnable IsolationEnable MACAddressControlEnabled""",
            _S: "Status Alias SSIDReference AllowedMACAddress",
            _U: "RetryLimit AssociatedDeviceNumberOfEntries MaxAssociatedDevices",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11 (the XML names SecondaryRadiusServerIPAddr with a
    # stray trailing space; devices use the name without it)
    (
        _AP + "Security.",
        {
            _S: """ModesSupported ModeEnabled KeyPassphrase RadiusServerIPAddr
                SecondaryRadiusServerIPAddr RadiusSecret SecondaryRadiusSecret MFPConfig""",
            _HEX: "WEPKey PreSharedKey",
            _U: "RekeyingInterval RadiusServerPort SecondaryRadiusServerPort",
            _B: "Reset",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _AP + "WPS.",
        {_B: "Enable", _S: "ConfigMethodsSupported ConfigMethodsEnabled Status Version PIN"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _AP + "AssociatedDevice.{i}.",
        {
            _S: "MACAddress OperatingStandard",
            _B: "AuthenticationState Active",
            _U: "LastDataDownlinkRate LastDataUplinkRate Retransmissions",
            _I: "SignalStrength",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "PPP.", {_U: "InterfaceNumberOfEntries", _S: "SupportedNCPs"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "PPP.Interface.{i}.",
        {
            _B: "Enable Reset IPCPEnable IPv6CPEnable",
            _S: """Status Alias Name LowerLayers ConnectionStatus LastConnectionError Username
                Password EncryptionProtocol CompressionProtocol AuthenticationProtocol
                ConnectionTrigger""",
            _U: """LastChange AutoDisconnectTime IdleDisconnectTime WarnDisconnectDelay
                MaxMRUSize CurrentMRUSize LCPEcho LCPEchoRetry""",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "PPP.Interface.{i}.PPPoE.", {_U: "SessionID", _S: "ACName ServiceName"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "PPP.Interface.{i}.IPCP.",
        {
            _S: "LocalIPAddress RemoteIPAddress DNSServers PassthroughDHCPPool",
            _B: "PassthroughEnable",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "IP.",
        {
            _B: "IPv4Capable IPv4Enable IPv6Capable IPv6Enable",
            _S: "IPv4Status IPv6Status ULAPrefix",
            _U: "InterfaceNumberOfEntries ActivePortNumberOfEntries",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "IP.Interface.{i}.",
        {
            _B: "Enable IPv4Enable IPv6Enable ULAEnable Reset Loopback AutoIPEnable",
            _S: "Status Alias Name LowerLayers Router Type",
            _U: """LastChange MaxMTUSize IPv4AddressNumberOfEntries IPv6AddressNumberOfEntries
                IPv6PrefixNumberOfEntries""",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "IP.Interface.{i}.IPv4Address.{i}.",
        {_B: "Enable", _S: "Status Alias IPAddress SubnetMask AddressingType"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "Hosts.", {_U: "HostNumberOfEntries"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "Hosts.Host.{i}.",
        {
            _S: """Alias PhysAddress IPAddress AddressSource DHCPClient AssociatedDevice
                Layer1Interface Layer3Interface VendorClassID HostName""",
            _HEX: "ClientID UserClassID",
            _I: "LeaseTimeRemaining",
            _B: "Active",
            _DT: "ActiveLastChange",
            _U: "IPv4AddressNumberOfEntries IPv6AddressNumberOfEntries",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "Hosts.Host.{i}.IPv4Address.{i}.", {_S: "IPAddress"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "Hosts.Host.{i}.IPv6Address.{i}.", {_S: "IPAddress"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "DNS.Client.", {_B: "Enable", _S: "Status", _U: "ServerNumberOfEntries"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "DNS.Client.Server.{i}.",
        {_B: "Enable", _S: "Status Alias DNSServer Interface Type"},
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "NAT.", {_U: "InterfaceSettingNumberOfEntries PortMappingNumberOfEntries"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "NAT.InterfaceSetting.{i}.", {_B: "Enable", _S: "Status Alias Interface"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _DEV + "NAT.PortMapping.{i}.",
        {
            _B: "Enable AllInterfaces",
            _S: "Status Alias Interface RemoteHost Protocol InternalClient Description",
            _U: "LeaseDuration ExternalPort ExternalPortEndRange InternalPort",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_DEV + "DHCPv4.Server.", {_B: "Enable", _U: "PoolNumberOfEntries"}),
    # TR-181 tr-181-2-11-0, Device:2.11 (option values are hexBinary here, base64 in TR-098)
    (
        _POOL,
        {
            _B: """Enable VendorClassIDExclude ClientIDExclude UserClassIDExclude
                ChaddrExclude""",
            _S: """Status Alias Interface VendorClassID VendorClassIDMode Chaddr ChaddrMask
                MinAddress MaxAddress ReservedAddresses SubnetMask DNSServers DomainName
                IPRouters""",
            _HEX: "ClientID UserClassID",
            _I: "LeaseTime",
            _U: """Order StaticAddressNumberOfEntries OptionNumberOfEntries
                ClientNumberOfEntries""",
        },
    ),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_POOL + "StaticAddress.{i}.", {_B: "Enable", _S: "Alias Chaddr Yiaddr"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (_POOL + "Option.{i}.", {_B: "Enable", _S: "Alias", _U: "Tag", _HEX: "Value"}),
    # TR-181 tr-181-2-11-0, Device:2.11
    (
        _POOL + "Client.{i}.",
        {
            _S: "Alias Chaddr",
            _B: "Active",
            _U: "IPv4AddressNumberOfEntries OptionNumberOfEntries",
        },
    ),
)

# Paths relative to a root's "Services." object, where a service object is mounted.
_VP = "VoiceService.{i}.VoiceProfile.{i}."
_LINE = _VP + "Line.{i}."

_TR104: Final[tuple[_Block, ...]] = (
    # TR-104 tr-104-1-1-0, VoiceService:1.1 (Enable is an enumeration: Disabled, Quiescent, Enabled)
    (
        _VP,
        {
            _S: """Enable Alias Name SignalingProtocol DTMFMethod DTMFMethodG711 Region
                DigitMap STUNServer FaxPassThrough ModemPassThrough""",
            _B: "Reset DigitMapEnable STUNEnable PSTNFailOver",
            _U: """NumberOfLines MaxSessions NonVoiceBandwidthReservedUpstream
                NonVoiceBandwidthReservedDownstream""",
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (
        _VP + "SIP.",
        {
            _S: """ProxyServer ProxyServerTransport RegistrarServer RegistrarServerTransport
                UserAgentDomain UserAgentTransport OutboundProxy Organization InboundAuth
                InboundAuthUsername InboundAuthPassword""",
            _U: """ProxyServerPort RegistrarServerPort UserAgentPort OutboundProxyPort
                RegistrationPeriod TimerT1 TimerT2 TimerT4 TimerA TimerB TimerC TimerD TimerE
                TimerF TimerG TimerH TimerI TimerJ TimerK InviteExpires ReInviteExpires
                RegisterExpires RegistersMinExpires RegisterRetryInterval DSCPMark
                SIPEventSubscribeNumberOfElements SIPResponseMapNumberOfElements""",
            _B: "UseCodecPriorityInSDPResponse",
            _I: "VLANIDMark EthernetPriorityMark",
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (
        _VP + "RTP.",
        {
            _U: "LocalPortMin LocalPortMax DSCPMark TelephoneEventPayloadType",
            _I: "VLANIDMark EthernetPriorityMark",
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (_VP + "RTP.RTCP.", {_B: "Enable", _U: "TxRepeatInterval", _S: "LocalCName"}),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (_VP + "RTP.SRTP.", {_B: "Enable", _S: "KeyingMethods EncryptionKeySizes"}),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (
        _VP + "NumberingPlan.",
        {
            _U: """MinimumNumberOfDigits MaximumNumberOfDigits InterDigitTimerStd
                InterDigitTimerOpen InvalidNumberTone PrefixInfoMaxEntries
                PrefixInfoNumberOfEntries"""
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1 (Enable is an enumeration, as on the profile)
    (
        _LINE,
        {
            _S: "Enable Alias DirectoryNumber Status CallState PhyReferenceList",
            _B: "RingMuteStatus",
            _U: "RingVolumeStatus",
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (
        _LINE + "SIP.",
        {_S: "AuthUserName AuthPassword URI", _U: "SIPEventSubscribeNumberOfElements"},
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1 (AnonymousCalEnable is the standard's spelling)
    (
        _LINE + "CallingFeatures.",
        {
            _B: """CallerIDEnable CallerIDNameEnable CallWaitingEnable
                CallForwardUnconditionalEnable CallForwardOnBusyEnable
                CallForwardOnNoAnswerEnable CallTransferEnable MWIEnable MessageWaiting
                AnonymousCallBlockEnable AnonymousCalEnable DoNotDisturbEnable CallReturnEnable
                RepeatDialEnable""",
            _S: """CallerIDName CallWaitingStatus ConferenceCallingStatus
                CallForwardUnconditionalNumber CallForwardOnBusyNumber
                CallForwardOnNoAnswerNumber""",
            _U: "MaxSessions ConferenceCallingSessionCount CallForwardOnNoAnswerRingCount",
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (
        _LINE + "Codec.",
        {
            _S: "TransmitCodec ReceiveCodec",
            _U: "TransmitBitRate ReceiveBitRate TransmitPacketizationPeriod",
            _B: "TransmitSilenceSuppression ReceiveSilenceSuppression",
        },
    ),
    # TR-104 tr-104-1-1-0, VoiceService:1.1
    (
        _LINE + "Codec.List.{i}.",
        {
            _S: "Alias Codec PacketizationPeriod",
            _U: "EntryID BitRate Priority",
            _B: "SilenceSuppression Enable",
        },
    ),
)

# Roots on which service objects are mounted (TR-106: <root>.Services.<service>.{i}.).
_SERVICES_UNDER: Final = ("InternetGatewayDevice.Services.", "Device.Services.")


def _table(*groups: tuple[_Block, ...]) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for blocks in groups:
        for obj, by_type in blocks:
            for type_, names in by_type.items():
                for name in names.split():
                    if obj + name in out:
                        raise ValueError(f"{obj + name} is listed twice")
                    out[obj + name] = type_
    return MappingProxyType(out)


TYPES: Final = _table(_TR098, _TR181)
"""Placeholder path (``Device.WiFi.SSID.{i}.SSID``) -> xsd type, for the root objects."""

SERVICE_TYPES: Final = _table(_TR104)
"""The same for service objects, relative to ``<root>.Services.`` (``VoiceService.{i}...``)."""


def _placeholder(segment: str) -> str:
    if segment.isascii() and segment.isdigit():
        return "{i}"
    if segment.startswith("[") and segment.endswith("]"):  # an instance alias
        return "{i}"
    return segment


def standard_type(path: str) -> str | None:
    """The xsd type the standard data model gives the parameter at ``path``, if known.

    ``path`` is a full parameter name with instance numbers
    (``InternetGatewayDevice.LANDevice.1.WLANConfiguration.2.SSID``). Objects, vendor
    parameters and paths outside the table give ``None``.
    """
    key = ".".join(_placeholder(s) for s in path.split("."))
    for mount in _SERVICES_UNDER:
        if key.startswith(mount):
            return SERVICE_TYPES.get(key[len(mount) :])
    return TYPES.get(key)
