"""The TFTP listener's request socket (acs.listeners.tftp.bind): a burst of requests, as
1,000 phones booting at once send, waits in its queue instead of being dropped by the kernel
(with Linux's default buffer about 300 fit). SO_RCVBUFFORCE needs CAP_NET_ADMIN: CI runs as
root; elsewhere the buffer is what net.core.rmem_max allows, and the server says so."""

from __future__ import annotations

import logging
import os
import socket

import pytest

from acs.listeners import tftp
from acs.tftp import packets

PHONES = 1000


def test_a_burst_of_a_thousand_requests_is_queued_whole(caplog):
    if os.geteuid() != 0 and _rmem_max() < tftp.RECEIVE_BUFFER:
        pytest.skip("not root and net.core.rmem_max is below the buffer asked for")
    with caplog.at_level(logging.WARNING, "acs.tftp"):
        server = tftp.bind("127.0.0.1", 0)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert caplog.records == []  # nothing to say: the buffer is the one asked for
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= tftp.RECEIVE_BUFFER
        address = server.getsockname()
        for i in range(PHONES):  # nobody reads meanwhile: the worst case
            rrq = packets.Request(packets.Opcode.RRQ, f"0015{i:08x}.cfg", "octet", {"tsize": "0"})
            phone.sendto(packets.encode(rrq), address)
        server.setblocking(False)
        queued = []
        while True:
            try:
                queued.append(packets.decode(server.recv(1024)))
            except BlockingIOError:
                break
        assert [r.filename for r in queued] == [f"0015{i:08x}.cfg" for i in range(PHONES)]
    finally:
        phone.close()
        server.close()


def _rmem_max() -> int:
    with open("/proc/sys/net/core/rmem_max") as f:
        return int(f.read())
