"""The CPE side of HTTP authentication, written independently of acs.cwmp.digest's verifier."""

from __future__ import annotations

import base64
import hashlib
import re


def _h(algorithm: str, text: str) -> str:
    name = "sha256" if algorithm.upper().startswith("SHA-256") else "md5"
    return hashlib.new(name, text.encode()).hexdigest()


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest", value
    return {k.lower(): v1 or v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', rest)}


def digest_header(
    challenge: str,
    username: str,
    password: str,
    *,
    method: str = "POST",
    uri: str = "/",
    nc: int = 1,
    cnonce: str = "0a4f113b",
    qop: bool = True,
) -> str:
    c = parse_challenge(challenge)
    algorithm = c.get("algorithm", "MD5")
    ha1 = _h(algorithm, f"{username}:{c['realm']}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        response = _h(algorithm, f"{ha1}:{c['nonce']}:{nc:08x}:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    else:
        response = _h(algorithm, f"{ha1}:{c['nonce']}:{ha2}")
        extra = ""
    return (
        f'Digest username="{username}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, opaque="{c.get("opaque", "")}"'
        + extra
    )


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
