"""TFTP datagrams: exact bytes both ways, and what is no packet."""

from __future__ import annotations

import pytest

from acs.tftp import packets as p


def test_a_phones_read_request_with_tsize_decodes():
    # Figure 8 of the Fanvil document: "Read Request, File: ll.xml, Transfer type: octet, tsize"
    datagram = b"\x00\x01ll.xml\x00octet\x00tsize\x000\x00"
    assert p.decode(datagram) == p.Request(p.Opcode.RRQ, "ll.xml", "octet", {"tsize": "0"})


def test_option_names_are_case_insensitive_and_the_first_of_a_repeated_one_counts():
    datagram = b"\x00\x01f\x00OCTET\x00BlkSize\x001428\x00blksize\x00512\x00TSIZE\x000\x00"
    request = p.decode(datagram)
    assert request == p.Request(p.Opcode.RRQ, "f", "OCTET", {"blksize": "1428", "tsize": "0"})


def test_a_request_padded_with_one_more_nul_still_decodes():
    assert p.decode(b"\x00\x01f\x00octet\x00\x00") == p.Request(p.Opcode.RRQ, "f", "octet", {})


@pytest.mark.parametrize(
    ("datagram", "message"),
    [
        (b"\x00\x01", "2 bytes: shorter than any TFTP packet"),
        (b"\x00\x09\x00\x01", "unknown opcode 9"),
        (b"\x00\x01file\x00octet", "a string without its terminating NUL"),
        (b"\x00\x01file\x00", "a request needs a filename and a mode"),
        (b"\x00\x01f\x00octet\x00blksize\x00", "option 'blksize' without a value"),
    ],
)
def test_what_is_no_packet(datagram, message):
    with pytest.raises(p.MalformedPacket) as caught:
        p.decode(datagram)
    assert str(caught.value) == message


def test_each_packet_encodes_to_the_rfc_layout_and_back():
    cases = [
        (p.Data(1, b"abc"), b"\x00\x03\x00\x01abc"),
        (p.Ack(65535), b"\x00\x04\xff\xff"),
        (p.Error(1, "no such file"), b"\x00\x05\x00\x01no such file\x00"),
        (
            p.OptionAck({"blksize": "1428", "tsize": "7"}),
            b"\x00\x06blksize\x001428\x00tsize\x007\x00",
        ),
        (p.Request(p.Opcode.WRQ, "a.cfg", "octet", {}), b"\x00\x02a.cfg\x00octet\x00"),
    ]
    for packet, datagram in cases:
        assert p.encode(packet) == datagram
        assert p.decode(datagram) == packet


def test_block_numbers_are_sent_modulo_65536():
    assert p.encode(p.Data(65536, b"")) == b"\x00\x03\x00\x00"
    assert p.encode(p.Data(65537, b"x")) == b"\x00\x03\x00\x01x"


def test_an_error_message_cannot_end_its_string_early():
    assert p.encode(p.Error(0, "a\0b")) == b"\x00\x05\x00\x00a b\x00"


def test_an_error_without_its_terminator_is_tolerated():
    assert p.decode(b"\x00\x05\x00\x08refused") == p.Error(8, "refused")
