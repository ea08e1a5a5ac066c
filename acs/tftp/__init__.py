"""TFTP (RFC 1350) with option negotiation (RFC 2347, 2348, 2349, 7440), with no I/O.

``packets``: the datagrams as values, decoded and encoded. ``transfer``: the state machine of
one read transfer, as the server runs it: datagrams in, datagrams out, a timer value out.
The sockets are ``acs.listeners.tftp``'s.
"""
