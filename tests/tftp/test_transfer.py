"""The read-transfer machine: datagrams in, datagrams out, the timer; no sockets, no clock."""

from __future__ import annotations

import pytest

from acs.tftp import packets as p
from acs.tftp.transfer import (
    Limits,
    Negotiated,
    ReadTransfer,
    RequestRefused,
    State,
    TransferError,
    check_request,
    negotiate,
    netascii,
)


def data(block: int, payload: bytes) -> bytes:
    return p.encode(p.Data(block, payload))


def ack(block: int) -> bytes:
    return p.encode(p.Ack(block))


def oack(**options: str) -> bytes:
    return p.encode(p.OptionAck(options))


def serve(options: dict[str, str], content: bytes, limits: Limits | None = None) -> ReadTransfer:
    """A transfer fed the whole file up front (what the listener does for rendered files)."""
    transfer = ReadTransfer(options, size=len(content), limits=limits or Limits())
    transfer.feed(content)
    transfer.end()
    return transfer


# --- requests and options --------------------------------------------------------------------


def test_writes_and_unknown_modes_are_refused_with_the_rfc_errors():
    with pytest.raises(RequestRefused) as caught:
        check_request(p.Request(p.Opcode.WRQ, "f.cfg", "octet"))
    assert caught.value.datagram() == b"\x00\x05\x00\x02read-only server: no writes\x00"
    with pytest.raises(RequestRefused) as caught:
        check_request(p.Request(p.Opcode.RRQ, "f.cfg", "mail"))
    assert caught.value.datagram() == b"\x00\x05\x00\x00transfer mode 'mail' not served\x00"
    assert check_request(p.Request(p.Opcode.RRQ, "f.cfg", "NetASCII")) == "netascii"


def test_options_within_limits_are_accepted_as_asked_and_tsize_gets_the_size():
    got = negotiate(
        {"blksize": "1428", "tsize": "0", "timeout": "3", "windowsize": "8", "rollover": "0"},
        size=12345,
        limits=Limits(),
    )
    assert got == Negotiated(
        blksize=1428,
        windowsize=8,
        timeout=3.0,
        oack=(("blksize", "1428"), ("tsize", "12345"), ("timeout", "3"), ("windowsize", "8")),
    )


def test_options_beyond_the_limits_are_answered_with_the_limit():
    got = negotiate({"blksize": "65535", "windowsize": "1000"}, size=None, limits=Limits())
    assert got.oack == (("blksize", "65464"), ("windowsize", "64"))
    got = negotiate({"blksize": "9000"}, size=None, limits=Limits(max_blksize=1468))
    assert got.blksize == 1468


@pytest.mark.parametrize(
    "options",
    [
        {"blksize": "7"},
        {"blksize": "big"},
        {"blksize": "-1"},
        {"timeout": "0"},
        {"timeout": "256"},
        {"windowsize": "0"},
        {"tsize": "0"},  # size not known in advance (netascii): left out
        {"multicast": ""},
    ],
)
def test_options_out_of_range_or_unknown_are_left_out(options):
    assert negotiate(options, size=None, limits=Limits()) == Negotiated()


# --- a transfer --------------------------------------------------------------------------------


def test_without_options_the_answer_is_data_block_1_and_an_exact_multiple_ends_empty():
    transfer = serve({}, b"x" * 1024)
    assert transfer.state is State.SENDING
    assert transfer.start() == [data(1, b"x" * 512)]
    assert transfer.receive(ack(1)) == [data(2, b"x" * 512)]
    assert transfer.receive(ack(2)) == [data(3, b"")]
    assert transfer.receive(ack(3)) == []
    assert (transfer.state, transfer.acked_bytes, transfer.timer) == (State.DONE, 1024, None)


def test_options_are_acknowledged_first_then_data_flows_in_the_negotiated_blocks():
    transfer = serve({"blksize": "8", "tsize": "0"}, b"0123456789")
    assert transfer.start() == [oack(blksize="8", tsize="10")]
    assert transfer.receive(ack(1)) == []  # not ACK 0: ignored
    assert transfer.receive(ack(0)) == [data(1, b"01234567")]
    assert transfer.receive(ack(1)) == [data(2, b"89")]
    assert transfer.receive(ack(2)) == []
    assert transfer.state is State.DONE


def test_a_lost_ack_is_recovered_by_retransmission_with_a_doubling_timer():
    transfer = serve({}, b"a" * 600)
    assert transfer.start() == [data(1, b"a" * 512)]
    assert transfer.timer == 1.0
    assert transfer.timeout() == [data(1, b"a" * 512)]
    assert transfer.timer == 2.0
    assert transfer.timeout() == [data(1, b"a" * 512)]
    assert transfer.timer == 4.0
    assert transfer.receive(ack(1)) == [data(2, b"a" * 88)]
    assert transfer.timer == 1.0  # progress resets it
    assert transfer.retransmissions == 2


def test_a_duplicate_ack_is_not_answered():
    # Sorcerer's Apprentice: answering the second ACK 1 with block 2 again would double
    # every block from then on. The timer alone resends.
    transfer = serve({}, b"b" * 1100)
    transfer.start()
    assert transfer.receive(ack(1)) == [data(2, b"b" * 512)]
    assert transfer.receive(ack(1)) == []
    assert transfer.receive(ack(2)) == [data(3, b"b" * 76)]
    assert transfer.receive(ack(3)) == []
    assert (transfer.state, transfer.acked_bytes) == (State.DONE, 1100)


def test_an_ack_for_a_block_never_sent_is_ignored():
    transfer = serve({}, b"c" * 600)
    transfer.start()
    assert transfer.receive(ack(7)) == []
    assert transfer.state is State.SENDING
    assert transfer.receive(ack(1)) == [data(2, b"c" * 88)]


def test_the_timeout_the_client_asked_for_is_kept_not_doubled():
    transfer = serve({"timeout": "3"}, b"d")
    transfer.start()
    assert transfer.timer == 3.0
    assert transfer.timeout() == [oack(timeout="3")]
    assert transfer.timer == 3.0


def test_retries_exhausted_fail_the_transfer_without_an_error_datagram():
    transfer = serve({}, b"e", Limits(retries=2))
    transfer.start()
    assert transfer.timeout() == [data(1, b"e")]
    assert transfer.timeout() == [data(1, b"e")]
    assert transfer.timeout() == []
    assert transfer.state is State.FAILED
    assert transfer.failure == "timeout: no answer after 2 retransmissions"
    assert transfer.timer is None
    with pytest.raises(TransferError):
        transfer.timeout()


def test_a_client_error_ends_the_transfer():
    transfer = serve({"blksize": "1024"}, b"f")
    transfer.start()
    assert transfer.receive(p.encode(p.Error(8, "blksize refused"))) == []
    assert (transfer.state, transfer.failure) == (State.FAILED, "client error 8: blksize refused")


def test_a_packet_with_no_place_in_a_read_transfer_is_answered_with_error_4():
    transfer = serve({}, b"g")
    transfer.start()
    assert transfer.receive(data(1, b"upload")) == [
        b"\x00\x05\x00\x04illegal operation: DATA in a read transfer\x00"
    ]
    assert transfer.state is State.FAILED
    assert transfer.error_sent == p.ErrorCode.ILLEGAL_OPERATION


def test_bytes_that_are_no_packet_are_ignored():
    transfer = serve({}, b"h")
    transfer.start()
    assert transfer.receive(b"\x00") == []
    assert transfer.receive(b"\x00\x63\x00\x01") == []
    assert transfer.state is State.SENDING
    assert transfer.receive(ack(1)) == []
    assert transfer.state is State.DONE


def test_a_window_sends_several_blocks_and_restarts_after_the_last_one_the_client_got():
    transfer = serve({"blksize": "8", "windowsize": "3"}, bytes(range(40)))
    assert transfer.start() == [oack(blksize="8", windowsize="3")]
    assert transfer.receive(ack(0)) == [
        data(1, bytes(range(0, 8))),
        data(2, bytes(range(8, 16))),
        data(3, bytes(range(16, 24))),
    ]
    # the client got 1 and lost 2: it acks 1; the window starts again at 2
    assert transfer.receive(ack(1)) == [
        data(2, bytes(range(8, 16))),
        data(3, bytes(range(16, 24))),
        data(4, bytes(range(24, 32))),
    ]
    assert transfer.receive(ack(4)) == [data(5, bytes(range(32, 40))), data(6, b"")]
    assert transfer.timeout() == [data(5, bytes(range(32, 40))), data(6, b"")]
    assert transfer.receive(ack(6)) == []
    assert (transfer.state, transfer.acked_bytes) == (State.DONE, 40)


def test_the_machine_asks_only_for_its_window_and_sends_as_bytes_arrive():
    transfer = ReadTransfer({"blksize": "8", "windowsize": "2"}, size=20)
    assert transfer.start() == [oack(blksize="8", windowsize="2")]
    assert transfer.wanted == 16
    assert transfer.receive(ack(0)) == []  # nothing fed yet
    assert transfer.feed(b"abcde") == []
    assert transfer.wanted == 11
    assert transfer.feed(b"fghijklmnop") == [data(1, b"abcdefgh"), data(2, b"ijklmnop")]
    assert transfer.wanted == 0
    assert transfer.receive(ack(2)) == []
    assert transfer.wanted == 16
    assert transfer.feed(b"qrst") == []
    assert transfer.end() == [data(3, b"qrst")]
    assert transfer.wanted == 0
    assert transfer.receive(ack(3)) == []
    assert transfer.state is State.DONE


def test_block_numbers_roll_over_past_65535():
    blocks = 65_537  # 65536 whole blocks of 8 bytes and an empty last one
    transfer = ReadTransfer({"blksize": "8"}, size=blocks * 8 - 8)
    transfer.start()
    transfer.feed(bytes(8))
    assert transfer.receive(ack(0)) == [data(1, bytes(8))]
    for block in range(1, 65_536):
        assert transfer.feed(bytes(8)) == []  # the window of one is full until the ACK
        [datagram] = transfer.receive(ack(block & 0xFFFF))
        assert datagram[:4] == p.encode(p.Data(block + 1, b""))[:4]
    assert p.decode(datagram) == p.Data(0, bytes(8))  # block 65536 goes as number 0
    assert transfer.end() == []
    [last] = transfer.receive(ack(0))
    assert p.decode(last) == p.Data(1, b"")  # block 65537, the empty last one
    assert transfer.receive(ack(0)) == []  # a duplicate of 65536's ACK, after the wrap
    assert transfer.receive(ack(1)) == []
    assert (transfer.state, transfer.blocks_acked) == (State.DONE, 65_537)
    assert transfer.acked_bytes == 65_536 * 8


def test_netascii_turns_line_ends_into_cr_lf_and_a_lone_cr_into_cr_nul():
    assert netascii(b"a\nb\r\nc\rd") == b"a\r\nb\r\0\r\nc\r\0d"
    assert netascii(b"a\r") + netascii(b"\nb") == netascii(b"a\r\nb")
