"""SIP, as much as a plug-and-play responder needs, with no I/O (LAYER 0: stdlib only).

``message``: SIP messages as values (RFC 3261 section 7); ``pnp``: the responder that answers
phones' ``ua-profile`` SUBSCRIBEs with their provisioning URL (datagrams in, datagrams and
deadlines out).
"""
