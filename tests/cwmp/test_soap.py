"""The SOAP codec: every message both ways, the hardened parser, the rendering rules."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import pytest

from acs.cwmp import messages as m
from acs.cwmp import soap

NS = soap.CWMP_NAMESPACES["1.2"]
T1 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T2 = datetime(2024, 5, 6, 7, 9, 0, tzinfo=UTC)

# One instance of every message, with no field left at its default.
EVERY_MESSAGE = [
    m.Inform(
        device_id=m.DeviceIdStruct("Acme", "00D09E", "IGD", "SN&<1>"),
        event=(m.EventStruct("0 BOOTSTRAP"), m.EventStruct("M Reboot", "rk")),
        max_envelopes=1,
        current_time=T1,
        retry_count=3,
        parameter_list=(
            m.ParameterValueStruct("Device.A", "x & y", "xsd:string"),
            m.ParameterValueStruct("Device.B", 4294967295, "xsd:unsignedInt"),
            m.ParameterValueStruct("Device.C", True, "xsd:boolean"),
            m.ParameterValueStruct("Device.D", -5, "xsd:int"),
            m.ParameterValueStruct("Device.E", "2024-01-01T00:00:00Z", "xsd:dateTime"),
            m.ParameterValueStruct("Device.F", "  spaced  ", "xsd:string"),
        ),
    ),
    m.InformResponse(1),
    m.TransferComplete("ck", m.FaultStruct(9010, "download failed"), T1, T2),
    m.TransferCompleteResponse(),
    m.AutonomousTransferComplete(
        "http://a",
        "http://t",
        False,
        "2 Vendor Log File",
        123,
        "log.txt",
        m.FaultStruct(0, ""),
        T1,
        T2,
    ),
    m.AutonomousTransferCompleteResponse(),
    m.RequestDownload("1 Firmware Upgrade Image", (m.ArgStruct("Version", "2.0"),)),
    m.RequestDownloadResponse(),
    m.Kicked("cmd", "http://ref", "arg", "http://next"),
    m.KickedResponse("http://next-url"),
    m.GetRPCMethods(),
    m.GetRPCMethodsResponse(("Inform", "TransferComplete")),
    m.SetParameterValues(
        (
            m.ParameterValueStruct("Device.X", "v", "xsd:string"),
            m.ParameterValueStruct("Device.Y", False, "xsd:boolean"),
        ),
        "pkey",
    ),
    m.SetParameterValuesResponse(1),
    m.GetParameterValues(("Device.DeviceInfo.", "Device.X")),
    m.GetParameterValuesResponse((m.ParameterValueStruct("Device.X", 7, "xsd:int"),)),
    m.GetParameterNames("Device.", True),
    m.GetParameterNamesResponse(
        (m.ParameterInfoStruct("Device.X", True), m.ParameterInfoStruct("Device.Obj.", False))
    ),
    m.SetParameterAttributes(
        (m.SetParameterAttributesStruct("Device.X", True, 2, True, ("Subscriber",)),)
    ),
    m.SetParameterAttributesResponse(),
    m.GetParameterAttributes(("Device.X",)),
    m.GetParameterAttributesResponse((m.ParameterAttributeStruct("Device.X", 1, ("Subscriber",)),)),
    m.AddObject("Device.Table.", "k2"),
    m.AddObjectResponse(5, 1),
    m.DeleteObject("Device.Table.5.", "k3"),
    m.DeleteObjectResponse(1),
    m.Download(
        "dk",
        "3 Vendor Configuration File",
        "http://f/c.cfg",
        "u",
        "p",
        38864,
        "c.cfg",
        5,
        "http://ok",
        "http://ko",
    ),
    m.DownloadResponse(1, T1, T2),
    m.Upload("uk", "1 Vendor Configuration File", "http://up", "u", "p", 9),
    m.UploadResponse(1, T1, T2),
    m.Reboot("rk"),
    m.RebootResponse(),
    m.FactoryReset(),
    m.FactoryResetResponse(),
    m.ScheduleInform(60, "sk"),
    m.ScheduleInformResponse(),
    m.ScheduleDownload(
        "sdk",
        "1 Firmware Upgrade Image",
        "http://fw",
        "u",
        "p",
        10,
        "fw.bin",
        (m.TimeWindowStruct(0, 3600, "2 Immediately", "msg", 3),),
    ),
    m.ScheduleDownloadResponse(),
    m.CancelTransfer("dk"),
    m.CancelTransferResponse(),
    m.GetQueuedTransfers(),
    m.GetQueuedTransfersResponse((m.QueuedTransferStruct("dk", 2),)),
    m.GetAllQueuedTransfers(),
    m.GetAllQueuedTransfersResponse(
        (m.AllQueuedTransferStruct("dk", 2, True, "1 Firmware Upgrade Image", 10, "fw.bin"),)
    ),
    m.Fault(
        9003,
        "Invalid arguments",
        (m.SetParameterValuesFault("Device.X", 9007, "bad value"),),
        "Client",
        "CWMP fault",
    ),
]


def test_every_message_class_is_covered():
    covered = {type(msg) for msg in EVERY_MESSAGE}
    assert set(m.MESSAGES.values()) | {m.Fault} == covered


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda msg: type(msg).__name__)
@pytest.mark.parametrize("namespace", sorted(set(soap.CWMP_NAMESPACES.values())))
def test_render_then_parse_is_identity(message, namespace):
    body = soap.render_envelope(message, namespace=namespace, cwmp_id="id-1")
    env = soap.parse_envelope(body)
    assert env.message == message
    assert env.cwmp_id == "id-1"
    assert env.namespace == namespace


def test_rendering_uses_literal_prefixes_and_typed_values():
    body = soap.render_envelope(EVERY_MESSAGE[12], namespace=NS, cwmp_id="7")
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<soap-env:Envelope ')
    for prefix, uri in [
        ("soap-env", soap.SOAP_ENV_NS),
        ("soap-enc", soap.SOAP_ENC_NS),
        ("xsd", soap.XSD_NS),
        ("xsi", soap.XSI_NS),
        ("cwmp", NS),
    ]:
        assert f'xmlns:{prefix}="{uri}"' in text
    assert '<cwmp:ID soap-env:mustUnderstand="1">7</cwmp:ID>' in text
    assert "<cwmp:SetParameterValues>" in text
    assert 'soap-enc:arrayType="cwmp:ParameterValueStruct[2]"' in text
    assert '<Value xsi:type="xsd:string">v</Value>' in text
    assert '<Value xsi:type="xsd:boolean">false</Value>' in text
    assert "<ParameterKey>pkey</ParameterKey>" in text


def test_rendering_escapes_and_refuses_unencodable_text():
    spv = m.SetParameterValues((m.ParameterValueStruct("Device.X", 'a<b>&"c"\r\n'),))
    body = soap.render_envelope(spv, namespace=NS)
    assert b'<Value xsi:type="xsd:string">a&lt;b&gt;&amp;&quot;c&quot;&#13;\n</Value>' in body
    # values keep every character, \r included (a raw \r would be normalised away)
    assert soap.parse_envelope(body).message == spv
    with pytest.raises(ValueError, match="U\\+0001"):
        soap.render_envelope(m.Reboot("bad\x01"), namespace=NS)


def test_header_fields():
    body = soap.render_envelope(
        m.InformResponse(),
        namespace=NS,
        cwmp_id="x",
        hold_requests=True,
        use_cwmp_version="1.4",
        supported_cwmp_versions=("1.2", "1.4"),
        no_more_requests=True,
        session_timeout=60,
    )
    env = soap.parse_envelope(body)
    assert (env.hold_requests, env.use_cwmp_version, env.supported_cwmp_versions) == (
        True,
        "1.4",
        ("1.2", "1.4"),
    )
    assert (env.no_more_requests, env.session_timeout) == (True, 60)


@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_bodies_are_the_empty_post(body):
    assert soap.parse_envelope(body) == soap.EMPTY


def test_envelope_with_empty_body_element_is_empty():
    env = soap.parse_envelope(
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soapenv:Body/></soapenv:Envelope>"
    )
    assert env.message is None


# --- hostile input ----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<cwmp:Reboot xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><CommandKey>&lol9;</CommandKey>
</cwmp:Reboot></soap:Body></soap:Envelope>"""


def test_billion_laughs_is_refused():
    with pytest.raises(soap.HostileXml, match="DTD"):
        soap.parse_envelope(BILLION_LAUGHS)


def test_xxe_file_is_refused_and_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CANARY")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<cwmp:Reboot xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><CommandKey>&x;</CommandKey>'
        "</cwmp:Reboot></soap:Body></soap:Envelope>"
    ).encode()
    with pytest.raises(soap.HostileXml) as info:
        soap.parse_envelope(body)
    assert "TOP-SECRET-CANARY" not in str(info.value)


def test_utf16_doctype_is_refused_after_parsing(tmp_path):
    # The byte scan cannot see "<!DOCTYPE" in UTF-16; the parsed document's DTD check must.
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY")
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<cwmp:Reboot xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><CommandKey>&x;</CommandKey>'
        "</cwmp:Reboot></soap:Body></soap:Envelope>"
    )
    with pytest.raises(soap.HostileXml, match="DTD"):
        soap.parse_envelope(text.encode("utf-16"))


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that records whether anyone connected."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    sock.settimeout(0.5)
    hits: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        hits.append(conn.recv(1024))
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1], hits
    thread.join(timeout=2)
    sock.close()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_external_dtd_never_touches_the_network(listener, encoding):
    port, hits = listener
    text = (
        f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
        f'<!DOCTYPE Envelope SYSTEM "http://127.0.0.1:{port}/evil.dtd">'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soap:Body/></soap:Envelope>"
    )
    with pytest.raises(soap.HostileXml):
        soap.parse_envelope(text.encode(encoding))
    assert hits == []


def test_undeclared_entity_is_an_error_not_a_lookup():
    with pytest.raises(soap.SoapError, match="malformed XML"):
        soap.parse_envelope(
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            b"<Reboot><CommandKey>&ext;</CommandKey></Reboot></soap:Body></soap:Envelope>"
        )


@pytest.mark.parametrize("depth", [60, 300, 5000])
def test_deep_nesting_is_refused(depth):
    inner = b"<x>" * depth + b"</x>" * depth
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        + inner
        + b"</soap:Body></soap:Envelope>"
    )
    with pytest.raises(soap.HostileXml, match="deeper"):
        soap.parse_envelope(body)


def test_element_count_limit():
    items = b"<string>x</string>" * 1001
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b"<GetParameterValues><ParameterNames>" + items + b"</ParameterNames>"
        b"</GetParameterValues></soap:Body></soap:Envelope>"
    )
    assert len(soap.parse_envelope(body).message.parameter_names) == 1001
    with pytest.raises(soap.HostileXml, match="more than 1000 elements"):
        soap.parse_envelope(body, soap.ParseLimits(max_elements=1000))


def test_size_limit():
    with pytest.raises(soap.HostileXml, match="exceeds the limit of 100"):
        soap.parse_envelope(b" " * 101, soap.ParseLimits(max_bytes=100))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<not xml", "malformed XML"),
        (b"<a></b>", "malformed XML"),
        (b"<html><body>hi</body></html>", "not a SOAP Envelope"),
        (
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soap:Header/></soap:Envelope>",
            "has no Body",
        ),
        (b"\x00\x01\x02garbage", "malformed XML"),
    ],
)
def test_garbage_is_a_clear_error(body, message):
    with pytest.raises(soap.SoapError, match=message):
        soap.parse_envelope(body)


def test_undeclared_prefix_is_repaired_only_for_namespace_errors():
    fault = (
        b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><SOAP-ENV:Header><cwmp:ID>5</cwmp:ID>'
        b"</SOAP-ENV:Header><SOAP-ENV:Body><soap:Fault><faultcode>Client</faultcode>"
        b"<faultstring>CWMP fault</faultstring><detail><cwmp:Fault><FaultCode>9005</FaultCode>"
        b"<FaultString>Invalid parameter name</FaultString></cwmp:Fault></detail></soap:Fault>"
        b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    env = soap.parse_envelope(fault)
    assert env.message == m.Fault(9005, "Invalid parameter name", (), "Client", "CWMP fault")
    assert env.cwmp_id == "5"
    with pytest.raises(soap.SoapError, match="malformed"):
        soap.parse_envelope(fault.replace(b"</soap:Fault>", b"</soap:Fault"))


def test_invalid_arguments_and_unknown_methods_are_messages():
    env = soap.parse_envelope(
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:c="urn:dslforum-org:cwmp-1-2"><e:Body><c:TransferComplete>'
        b"<CommandKey>k</CommandKey><FaultStruct><FaultCode>abc</FaultCode></FaultStruct>"
        b"</c:TransferComplete></e:Body></e:Envelope>"
    )
    assert env.message == soap.InvalidMessage(
        "TransferComplete", "FaultCode is not an integer: 'abc'"
    )
    env = soap.parse_envelope(
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        b"<c:Inform xmlns:c='urn:dslforum-org:cwmp-1-0'/></e:Body></e:Envelope>"
    )
    assert env.message == soap.InvalidMessage("Inform", "missing DeviceId in Inform")


def test_negotiate_version():
    assert soap.negotiate_version("urn:dslforum-org:cwmp-1-1", ()) == "1.1"
    assert soap.negotiate_version(None, ()) == "1.0"
    assert soap.negotiate_version(NS, ("1.2", "1.4", "1.10")) == "1.4"
    assert soap.negotiate_version(NS, ("2.0",)) == "1.2"


def test_repair_does_not_depend_on_earlier_documents():
    # libxml2's thread-wide error log accumulates; an earlier malformed document must not
    # stop a later undeclared-prefix fault from being repaired.
    with pytest.raises(soap.SoapError):
        soap.parse_envelope(b"<a></b>")
    env = soap.parse_envelope(
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        b"<soap:Fault><faultcode>Server</faultcode><faultstring>x</faultstring></soap:Fault>"
        b"</e:Body></e:Envelope>"
    )
    assert env.message == m.Fault(0, "x", (), "Server", "x")


# --- the preview: an envelope's start, read only that far -------------------------------

SAMPLE_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "soap_samples"


@pytest.mark.parametrize("path", sorted(SAMPLE_DIR.glob("*.xml")), ids=lambda p: p.name)
def test_the_preview_of_every_sample_says_what_the_whole_envelope_says(path):
    body = path.read_bytes()
    envelope = soap.parse_envelope(body)
    preview = soap.preview_envelope(body)
    if isinstance(envelope.message, soap.InvalidMessage) and envelope.message.name == "Inform":
        # an Inform whose other arguments do not decode still shows its DeviceId
        assert preview.method == "Inform"
    else:
        assert preview == soap.Preview.of(envelope)
    assert preview.envelope == soap.Preview.of(envelope).envelope


def test_the_preview_of_an_inform_stops_after_its_device_id():
    body = soap.render_envelope(EVERY_MESSAGE[0], namespace=NS, cwmp_id="7")
    tail = body.index(b"</DeviceId>") + len(b"</DeviceId>")
    # what follows the DeviceId is never read: here it is not even XML
    preview = soap.preview_envelope(body[:tail] + b"<<< not read" * 10_000)
    assert preview == soap.Preview(
        "Inform",
        soap.Envelope(message=None, cwmp_id="7", namespace=NS),
        m.DeviceIdStruct("Acme", "00D09E", "IGD", "SN&<1>"),
    )
    assert preview.answerable(m.InformResponse(1)) == soap.Envelope(
        message=m.InformResponse(1), cwmp_id="7", namespace=NS
    )


def test_the_preview_of_other_messages_stops_at_their_method():
    body = soap.render_envelope(
        m.GetParameterValuesResponse(()), namespace=NS, cwmp_id="9", hold_requests=True
    )
    cut = body.index(b"<cwmp:GetParameterValuesResponse>") + 40
    assert soap.preview_envelope(body[:cut]) == soap.Preview(
        "GetParameterValuesResponse",
        soap.Envelope(message=None, cwmp_id="9", namespace=NS, hold_requests=True),
    )


@pytest.mark.parametrize(
    ("body", "method", "device_id"),
    [
        (b"", None, None),
        (b" \r\n", None, None),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/>'
            b"</e:Envelope>",
            None,
            None,
        ),
        (  # an Inform with no DeviceId: nothing to bind a challenge to
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            b"<c:Inform xmlns:c='urn:dslforum-org:cwmp-1-0'><RetryCount>1</RetryCount>"
            b"</c:Inform></e:Body></e:Envelope>",
            "Inform",
            None,
        ),
        (  # DeviceId after the Event: still found
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            b"<c:Inform xmlns:c='urn:dslforum-org:cwmp-1-0'><Event><EventStruct><EventCode>"
            b"2 PERIODIC</EventCode></EventStruct></Event><DeviceId><OUI>A</OUI>"
            b"<SerialNumber>S</SerialNumber></DeviceId></c:Inform></e:Body></e:Envelope>",
            "Inform",
            m.DeviceIdStruct("", "A", "", "S"),
        ),
        (  # a fault whose prefix was never declared (a known CPE quirk)
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            b"<soap:Fault><faultcode>Server</faultcode></soap:Fault></e:Body></e:Envelope>",
            "Fault",
            None,
        ),
    ],
)
def test_previews(body, method, device_id):
    preview = soap.preview_envelope(body)
    assert (preview.method, preview.device_id) == (method, device_id)


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"<not-xml", soap.SoapError, "malformed XML"),
        (b"<x/>", soap.SoapError, r"root element is <x>, not a SOAP Envelope"),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header/>'
            b"</e:Envelope>",
            soap.SoapError,
            "has no Body",
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>',
            soap.SoapError,
            "malformed XML",
        ),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', soap.HostileXml, "DTDs"),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header>'
            + b"<a/>" * 256
            + b"</e:Header><e:Body/></e:Envelope>",
            soap.HostileXml,
            "has more than 256 elements",
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header><a>'
            + b"x" * 70_000
            + b"</a></e:Header><e:Body/></e:Envelope>",
            soap.HostileXml,
            "takes more than 65536 bytes",
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/">'
            + b"<x>" * 60
            + b"</x>" * 60
            + b"</e:Envelope>",
            soap.HostileXml,
            "nests deeper than 48",
        ),
    ],
)
def test_preview_refusals(body, error, message):
    with pytest.raises(error, match=message):
        soap.preview_envelope(body)


def test_the_preview_is_bounded_whatever_follows():
    """240,000 empty elements after the DeviceId (961 KB): parsed whole, about a second of
    CPU before; the preview reads its first kilobytes."""
    body = soap.render_envelope(EVERY_MESSAGE[0], namespace=NS)
    tail = body.index(b"</DeviceId>") + len(b"</DeviceId>")
    bomb = body[:tail] + b"<a/>" * 240_000 + body[tail:]
    assert soap.preview_envelope(bomb).device_id == EVERY_MESSAGE[0].device_id
    with pytest.raises(soap.HostileXml, match="more than 256 elements"):
        start = body.index(b"<DeviceId>")
        soap.preview_envelope(body[:start] + b"<a/>" * 240_000 + body[start:])
