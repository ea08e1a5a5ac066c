"""acs.cwmp.stun: the codec against RFC 5769's test vectors, RFC 3489's framing as CPEs send
it, and the server's answer (TR-111 part 2) row by row."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from acs.cwmp import stun
from acs.cwmp.stun import Attr, Known, Style, Verdict


def hexbytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 5769 2.1-2.3 (padding bytes are 0x20 there on purpose), short-term password:
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = hexbytes("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")
SAMPLE_REQUEST = hexbytes(
    """00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf"""
)
SAMPLE_IPV4_RESPONSE = hexbytes(
    """01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96"""
)
SAMPLE_IPV6_RESPONSE = hexbytes(
    """01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c"""
)


def test_rfc5769_sample_request():
    message = stun.parse(SAMPLE_REQUEST)
    assert message.type == stun.MessageType.BINDING_REQUEST
    assert message.rfc5389
    assert message.transaction_id == TID
    assert [t for t, _ in message.attributes] == [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]
    assert message.get(Attr.SOFTWARE) == b"STUN test client"
    assert message.integrity_at == 76
    assert message.fingerprint_at == 100
    assert stun.check_integrity(message, PASSWORD) is Style.RFC5389
    assert stun.check_integrity(message, b"another password") is None
    request = stun.binding_request(message)
    assert request.username == "evtj:h6vY"
    # PRIORITY (0x0024) is ICE's, comprehension-required, and unknown to a TR-111 server
    assert request.unknown == (0x0024,)
    assert not request.connection_request_binding
    assert request.authenticated


def test_rfc5769_ipv4_response_read_and_rebuilt_byte_for_byte():
    message = stun.parse(SAMPLE_IPV4_RESPONSE)
    assert message.type == stun.MessageType.BINDING_RESPONSE
    assert stun.mapped_address(message) == ("192.0.2.1", 32853)
    assert stun.check_integrity(message, PASSWORD) is Style.RFC5389
    rebuilt = stun.encode(
        stun.MessageType.BINDING_RESPONSE,
        TID,
        [
            (Attr.SOFTWARE, b"test vector"),
            (Attr.XOR_MAPPED_ADDRESS, stun.xor_address_value(("192.0.2.1", 32853), TID)),
        ],
        integrity_key=PASSWORD,
        fingerprint=True,
        pad=b" ",
    )
    assert rebuilt == SAMPLE_IPV4_RESPONSE


def test_rfc5769_ipv6_response_read_and_rebuilt_byte_for_byte():
    message = stun.parse(SAMPLE_IPV6_RESPONSE)
    address = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert stun.mapped_address(message) == address
    assert stun.check_integrity(message, PASSWORD) is Style.RFC5389
    rebuilt = stun.encode(
        stun.MessageType.BINDING_RESPONSE,
        TID,
        [
            (Attr.SOFTWARE, b"test vector"),
            (Attr.XOR_MAPPED_ADDRESS, stun.xor_address_value(address, TID)),
        ],
        integrity_key=PASSWORD,
        fingerprint=True,
        pad=b" ",
    )
    assert rebuilt == SAMPLE_IPV6_RESPONSE


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (SAMPLE_REQUEST[:19], "19 bytes: not a STUN message"),
        (b"\xc0" + SAMPLE_REQUEST[1:], "the first two bits of a STUN message are zero"),
        (SAMPLE_REQUEST + b"\0\0\0\0", "length 88 does not match the 92 bytes"),
        (SAMPLE_REQUEST[:-1] + b"\xd0", "FINGERPRINT does not match"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "the first two bits of a STUN message are zero"),
        (
            struct.pack("!HH", 1, 8) + bytes(16) + struct.pack("!HH", 6, 9) + b"abcd",
            "attribute 0x0006 runs past the end",
        ),
    ],
)
def test_what_is_not_stun_is_refused_with_the_reason(data: bytes, why: str):
    with pytest.raises(stun.StunError) as refused:
        stun.parse(data)
    assert str(refused.value) == why


def test_a_response_is_no_binding_request():
    with pytest.raises(stun.StunError, match="0x0101 is not a Binding Request"):
        stun.binding_request(stun.parse(SAMPLE_IPV4_RESPONSE))


# --- RFC 3489 as CPEs send it --------------------------------------------------------------

TID16 = bytes(range(16))
CRB = struct.pack("!HH", 0xC001, 20) + b"dslforum.org/TR-111 "
USERNAME = struct.pack("!HH", 6, 8) + b"stun-cpe"


def rfc3489_request(*attrs: bytes, key: bytes | None, padded: bool = True) -> bytes:
    """An RFC 3489 Binding Request built by hand, MESSAGE-INTEGRITY over the header as sent
    (its length counting MESSAGE-INTEGRITY), zero-padded to 64 bytes or not."""
    body = b"".join(attrs)
    length = len(body) + (24 if key else 0)
    text = struct.pack("!HH", 1, length) + TID16 + body
    if key is None:
        return text
    signed = text + b"\0" * (-len(text) % 64) if padded else text
    return text + struct.pack("!HH", 8, 20) + hmac.new(key, signed, hashlib.sha1).digest()


def test_rfc3489_request_padded_to_64_bytes():
    data = rfc3489_request(USERNAME, CRB, key=b"pw")
    message = stun.parse(data)
    assert not message.rfc5389
    assert message.transaction_id == TID16
    assert stun.check_integrity(message, b"pw") is Style.RFC3489
    assert stun.check_integrity(message, b"other") is None
    request = stun.binding_request(message)
    assert (request.username, request.connection_request_binding, request.binding_change) == (
        "stun-cpe",
        True,
        False,
    )


def test_rfc3489_request_unpadded_as_stund_signs_it():
    message = stun.parse(rfc3489_request(USERNAME, CRB, key=b"pw", padded=False))
    assert stun.check_integrity(message, b"pw") is Style.RFC3489_UNPADDED


def test_the_client_request_encodes_what_a_cpe_sends():
    built = stun.ClientRequest(TID16, "stun-cpe", password="pw").encode()
    assert built == rfc3489_request(USERNAME, CRB, key=b"pw")
    change = stun.ClientRequest(TID16, "cpe", binding_change=True).encode()
    assert change == (
        struct.pack("!HH", 1, 8 + 24 + 4)
        + TID16
        + struct.pack("!HH", 6, 4)
        + b"cpe "
        + CRB
        + struct.pack("!HH", 0xC002, 0)
    )
    assert stun.binding_request(stun.parse(change)).username == "cpe"


def test_crb_without_the_trailing_space_still_counts():
    short = struct.pack("!HH", 0xC001, 19) + b"dslforum.org/TR-111" + b"\0"
    request = stun.binding_request(stun.parse(rfc3489_request(USERNAME, short, key=None)))
    assert request.connection_request_binding


# --- the server's answer -------------------------------------------------------------------

SOURCE = ("203.0.113.7", 40001)
KNOWN = Known("dev-1", "pw", ("203.0.113.7", 40001))


def ask(data: bytes, known: Known | None, **kw) -> stun.Answer:
    return stun.answer(stun.binding_request(stun.parse(data)), SOURCE, known, **kw)


def reply_of(answer: stun.Answer) -> stun.Message:
    return stun.parse(answer.reply)


def test_a_keepalive_of_the_recorded_binding_is_kept_without_authentication():
    answer = ask(stun.ClientRequest(TID16, "stun-cpe").encode(), KNOWN)
    assert (answer.verdict, answer.error) == (Verdict.KEPT, None)
    reply = reply_of(answer)
    assert reply.type == stun.MessageType.BINDING_RESPONSE
    assert reply.transaction_id == TID16
    assert [t for t, _ in reply.attributes] == [Attr.MAPPED_ADDRESS]
    assert stun.mapped_address(reply) == SOURCE


def test_rfc3489_answer_has_source_and_changed_address_when_the_local_address_is_known():
    answer = ask(stun.ClientRequest(TID16, "x").encode(), None, local=("198.51.100.1", 3478))
    reply = reply_of(answer)
    assert [t for t, _ in reply.attributes] == [0x0001, 0x0004, 0x0005]
    assert stun.read_address(reply.get(Attr.SOURCE_ADDRESS) or b"") == ("198.51.100.1", 3478)


def test_a_new_binding_without_integrity_is_asked_to_authenticate():
    moved = Known("dev-1", "pw", ("203.0.113.7", 50000))
    for known in (moved, Known("dev-1", "pw", None)):
        answer = ask(stun.ClientRequest(TID16, "stun-cpe").encode(), known)
        assert (answer.verdict, answer.error) == (Verdict.UNAUTHORIZED, 401)
        reply = reply_of(answer)
        assert reply.type == stun.MessageType.BINDING_ERROR_RESPONSE
        assert stun.error_code(reply) == 401
        assert reply.get(Attr.ERROR_CODE) == b"\0\0\x04\x01Unauthorized"


def test_binding_change_needs_authentication_even_from_the_same_address():
    answer = ask(stun.ClientRequest(TID16, "stun-cpe", binding_change=True).encode(), KNOWN)
    assert answer.verdict is Verdict.UNAUTHORIZED


@pytest.mark.parametrize("style", list(Style))
def test_an_authenticated_new_binding_is_recorded_and_answered_in_its_style(style: Style):
    data = stun.ClientRequest(
        TID16 if style is not Style.RFC5389 else TID,
        "stun-cpe",
        binding_change=True,
        password="pw",
        style=style,
    ).encode()
    answer = ask(data, KNOWN)
    assert answer.verdict is Verdict.CHANGED
    reply = reply_of(answer)
    assert stun.check_integrity(reply, b"pw") is style
    assert stun.mapped_address(reply) == SOURCE


def test_rfc5389_answer_has_xor_mapped_address_and_fingerprint_when_asked():
    request = stun.encode(
        stun.MessageType.BINDING_REQUEST,
        TID,
        [
            (Attr.USERNAME, b"stun-cpe"),
            (Attr.CONNECTION_REQUEST_BINDING, stun.CONNECTION_REQUEST_BINDING_VALUE),
        ],
        integrity_key=b"pw",
        fingerprint=True,
    )
    answer = ask(request, Known("dev-1", "pw", None))
    assert answer.verdict is Verdict.CHANGED
    reply = reply_of(answer)  # parse() checks the FINGERPRINT
    assert [t for t, _ in reply.attributes] == [0x0001, 0x0020, 0x0008, 0x8028]
    assert reply.get(Attr.XOR_MAPPED_ADDRESS) == stun.xor_address_value(SOURCE, TID)


def test_wrong_integrity_is_refused_and_records_nothing():
    data = stun.ClientRequest(TID16, "stun-cpe", password="guess").encode()
    answer = ask(data, KNOWN)
    assert (answer.verdict, answer.error) == (Verdict.INTEGRITY_FAILED, 431)
    data5389 = stun.ClientRequest(TID, "stun-cpe", password="guess", style=Style.RFC5389).encode()
    assert ask(data5389, KNOWN).error == 401


def test_unknown_username_is_answered_but_not_recorded():
    answer = ask(stun.ClientRequest(TID16, "stranger").encode(), None)
    assert (answer.verdict, answer.error) == (Verdict.UNKNOWN_USER, None)
    assert stun.mapped_address(reply_of(answer)) == SOURCE
    signed = ask(stun.ClientRequest(TID16, "stranger", password="x").encode(), None)
    assert (signed.verdict, signed.error) == (Verdict.UNKNOWN_USER, 401)


def test_plain_stun_without_username_is_answered():
    answer = ask(stun.ClientRequest(TID16).encode(), None)
    assert (answer.verdict, answer.error) == (Verdict.ANSWERED, None)


def test_integrity_without_username_is_missing_username():
    assert ask(stun.ClientRequest(TID16, password="x").encode(), None).error == 432
    assert (
        ask(stun.ClientRequest(TID, password="x", style=Style.RFC5389).encode(), None).error == 400
    )


def test_a_request_without_the_tr111_attribute_is_answered_but_not_recorded():
    data = rfc3489_request(USERNAME, key=b"pw")
    assert ask(data, Known("dev-1", "pw", None)).verdict is Verdict.ANSWERED


def test_unknown_comprehension_required_attributes_get_420_listing_them_evenly_in_3489():
    data = rfc3489_request(USERNAME, CRB, struct.pack("!HH", 0x0024, 4) + b"\0\0\0\1", key=None)
    answer = ask(data, KNOWN)
    assert (answer.verdict, answer.error) == (Verdict.REFUSED, 420)
    assert reply_of(answer).get(Attr.UNKNOWN_ATTRIBUTES) == b"\x00\x24\x00\x24"
    # 0x8000 and above may be ignored
    ignorable = rfc3489_request(USERNAME, CRB, struct.pack("!HH", 0x8022, 4) + b"sw 1", key=None)
    assert ask(ignorable, KNOWN).verdict is Verdict.KEPT


def test_change_request_for_another_port_cannot_be_honoured():
    change = struct.pack("!HH", 3, 4) + b"\0\0\0\x02"
    answer = ask(rfc3489_request(USERNAME, CRB, change, key=None), KNOWN)
    assert answer.error == 420
    assert reply_of(answer).get(Attr.UNKNOWN_ATTRIBUTES) == b"\x00\x03\x00\x03"
    nothing = struct.pack("!HH", 3, 4) + b"\0\0\0\0"
    assert ask(rfc3489_request(USERNAME, CRB, nothing, key=None), KNOWN).verdict is Verdict.KEPT
