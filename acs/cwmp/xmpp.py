"""TR-069 Annex K: the XMPP connection request, as stanza payloads (sans-I/O, stdlib only).

The ACS sends an IQ of type ``get`` to the device's ConnReqJabberID carrying
``<connectionRequest xmlns="urn:broadband-forum-org:cwmp:xmppConnReq-1-0">`` with the
device's ConnectionRequestUsername and ConnectionRequestPassword. The device answers an
empty ``result`` and opens a session with the ``6 CONNECTION REQUEST`` event, or an
``error``: ``not-authorized`` (wrong credentials), ``service-unavailable`` (the sender is
not in ConnReqAllowedJabberIDs, or no such device is online: the server says so then).

The XMPP stream itself (TLS, SASL, routing) is slixmpp's; this module only builds and reads
the payload, so both ends (``acs.services.xmpp`` and the simulator) agree on it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final

NAMESPACE: Final = "urn:broadband-forum-org:cwmp:xmppConnReq-1-0"
TAG: Final = f"{{{NAMESPACE}}}connectionRequest"
STANZA_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
# What a device answers, by RFC 6120 error condition (Annex K.2.2).
NOT_AUTHORIZED: Final = "not-authorized"
SERVICE_UNAVAILABLE: Final = "service-unavailable"


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    username: str
    password: str


def build(request: ConnectionRequest) -> ET.Element:
    """The ``connectionRequest`` element to put in the IQ."""
    element = ET.Element(TAG)
    ET.SubElement(element, f"{{{NAMESPACE}}}username").text = request.username
    ET.SubElement(element, f"{{{NAMESPACE}}}password").text = request.password
    return element


def read(element: ET.Element | None) -> ConnectionRequest | None:
    """The credentials of a ``connectionRequest`` element; ``None`` if it is none."""
    if element is None or element.tag != TAG:
        return None
    username = element.findtext(f"{{{NAMESPACE}}}username")
    password = element.findtext(f"{{{NAMESPACE}}}password")
    if username is None or password is None:
        return None
    return ConnectionRequest(username, password)


def allowed(sender: str, allowed_jids: str) -> bool:
    """Whether ConnReqAllowedJabberIDs (comma-separated; empty: anyone) admits the sender's
    full JID: an entry without a resource admits every resource of that JID, one with a
    resource that one only. Local and domain parts compare without case."""
    entries = [e.strip() for e in allowed_jids.split(",") if e.strip()]
    if not entries:
        return True
    bare, _, resource = sender.partition("/")
    for entry in entries:
        entry_bare, slash, entry_resource = entry.partition("/")
        if entry_bare.lower() == bare.lower() and (not slash or entry_resource == resource):
            return True
    return False
