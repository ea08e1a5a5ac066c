"""HTTP Digest and Basic: RFC 7616 vectors, stateless nonces, CPE quirks."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from acs.cwmp import digest

# RFC 7616 section 3.9.1.
RFC = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "uri": "/dir/index.html",
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm, expected):
    ha1 = digest.ha1(algorithm, RFC["username"], RFC["realm"], RFC["password"])
    response = digest.compute_response(
        algorithm,
        ha1,
        nonce=RFC["nonce"],
        nc="00000001",
        cnonce=RFC["cnonce"],
        qop="auth",
        method="GET",
        uri=RFC["uri"],
    )
    assert response == expected


def test_parse_authorization_variants():
    header = (
        'Digest username="acs", realm="acs", nonce="n.o.nce", uri="/acs", '
        'response="ABCDEF", qop=auth, nc=00000001, cnonce="c\\"x", algorithm=md5, opaque="op"'
    )
    creds = digest.parse_authorization(header)
    assert creds == digest.DigestCredentials(
        username="acs",
        realm="acs",
        nonce="n.o.nce",
        uri="/acs",
        response="abcdef",
        algorithm="MD5",
        qop="auth",
        nc="00000001",
        cnonce='c"x',
        opaque="op",
    )
    assert creds.nonce_count == 1
    # qop quoted (common), no algorithm (defaults to MD5)
    quoted = digest.parse_authorization(
        'Digest username="u",realm="r",nonce="n",uri="/",response="x",'
        'qop="auth",nc=0000000a,cnonce="c"'
    )
    assert (quoted.qop, quoted.algorithm, quoted.nonce_count) == ("auth", "MD5", 10)
    basic = digest.parse_authorization("Basic " + base64.b64encode(b"user:pa:ss").decode())
    assert basic == digest.BasicCredentials("user", "pa:ss")
    assert digest.parse_authorization(None) is None
    assert digest.parse_authorization("Bearer abc") is None
    assert digest.parse_authorization("Basic !!!") is None
    assert digest.parse_authorization('Digest username="u"') is None  # missing fields
    assert digest.parse_authorization('Digest username="u", =x') is None


@pytest.fixture
def authority():
    return digest.NonceAuthority(b"secret", "acs", lifetime=300)


def answer(
    authority,
    nonce,
    *,
    password="pw",
    algorithm="MD5",
    qop="auth",
    uri="/acs",
    method="POST",
    nc="00000001",
):
    ha1 = digest.ha1(algorithm, "cpe", authority.realm, password)
    response = digest.compute_response(
        algorithm,
        ha1,
        nonce=nonce,
        nc=nc if qop else None,
        cnonce="cn" if qop else None,
        qop=qop,
        method=method,
        uri=uri,
    )
    return digest.DigestCredentials(
        "cpe",
        authority.realm,
        nonce,
        uri,
        response,
        algorithm,
        qop,
        nc if qop else None,
        "cn" if qop else None,
    )


def stored(authority, password="pw"):
    return {alg: digest.ha1(alg, "cpe", authority.realm, password) for alg in digest.ALGORITHMS}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_verify_ok(authority, algorithm):
    nonce = authority.make_nonce(1000.0, "dev-1")
    creds = answer(authority, nonce, algorithm=algorithm)
    verdict = authority.verify(
        creds,
        method="POST",
        ha1_by_algorithm=stored(authority),
        now=1010.0,
        binding="dev-1",
        request_path="/acs",
    )
    assert verdict is digest.Verdict.OK


def test_wrong_password_wrong_nonce_wrong_binding(authority):
    nonce = authority.make_nonce(1000.0, "dev-1")
    ha1s = stored(authority)
    verify = authority.verify
    bad_pw = answer(authority, nonce, password="nope")
    assert verify(bad_pw, method="POST", ha1_by_algorithm=ha1s, now=1001, binding="dev-1") is (
        digest.Verdict.BAD_RESPONSE
    )
    good = answer(authority, nonce)
    assert verify(good, method="POST", ha1_by_algorithm=ha1s, now=1001, binding="dev-2") is (
        digest.Verdict.BAD_NONCE
    )
    forged = answer(authority, nonce[:-1] + ("0" if nonce[-1] != "0" else "1"))
    assert verify(forged, method="POST", ha1_by_algorithm=ha1s, now=1001, binding="dev-1") is (
        digest.Verdict.BAD_NONCE
    )
    other = digest.NonceAuthority(b"other-secret", "acs")
    assert other.verify(good, method="POST", ha1_by_algorithm=ha1s, now=1001, binding="dev-1") is (
        digest.Verdict.BAD_NONCE
    )
    assert verify(good, method="GET", ha1_by_algorithm=ha1s, now=1001, binding="dev-1") is (
        digest.Verdict.BAD_RESPONSE
    )


def test_expired_nonce_with_right_password_is_stale(authority):
    nonce = authority.make_nonce(1000.0)
    good = answer(authority, nonce)
    verdict = authority.verify(good, method="POST", ha1_by_algorithm=stored(authority), now=1301)
    assert verdict is digest.Verdict.STALE
    bad = answer(authority, nonce, password="x")
    verdict = authority.verify(bad, method="POST", ha1_by_algorithm=stored(authority), now=1301)
    assert verdict is digest.Verdict.BAD_RESPONSE


def test_nonce_reuse_with_nc_1_is_tolerated_within_lifetime(authority):
    nonce = authority.make_nonce(1000.0)
    creds = answer(authority, nonce)
    for now in (1001, 1100, 1299):
        verdict = authority.verify(
            creds, method="POST", ha1_by_algorithm=stored(authority), now=now
        )
        assert verdict is digest.Verdict.OK


def test_no_qop_legacy_answers(authority):
    nonce = authority.make_nonce(1000.0)
    creds = answer(authority, nonce, qop=None)
    ha1s = stored(authority)
    assert authority.verify(creds, method="POST", ha1_by_algorithm=ha1s, now=1001) is (
        digest.Verdict.OK
    )
    assert (
        authority.verify(creds, method="POST", ha1_by_algorithm=ha1s, now=1001, allow_no_qop=False)
        is digest.Verdict.UNSUPPORTED
    )


def test_uri_must_name_the_requested_path(authority):
    nonce = authority.make_nonce(1000.0)
    ha1s = stored(authority)
    for uri in ("/acs", "/acs/", "http://acs.example:7547/acs", "/acs?x=1"):
        creds = answer(authority, nonce, uri=uri)
        assert (
            authority.verify(
                creds, method="POST", ha1_by_algorithm=ha1s, now=1001, request_path="/acs"
            )
            is digest.Verdict.OK
        ), uri
    creds = answer(authority, nonce, uri="/other")
    assert (
        authority.verify(creds, method="POST", ha1_by_algorithm=ha1s, now=1001, request_path="/acs")
        is digest.Verdict.BAD_RESPONSE
    )


def test_unsupported_algorithm(authority):
    nonce = authority.make_nonce(1000.0)
    creds = answer(authority, nonce)
    creds = dataclasses.replace(creds, algorithm="SHA-512-256")
    assert authority.verify(creds, method="POST", ha1_by_algorithm=stored(authority), now=1001) is (
        digest.Verdict.UNSUPPORTED
    )


def test_md5_response_labelled_sha256_is_a_bad_response(authority):
    # what an MD5-only CPE sends after reading a SHA-256 challenge: refused, as it must be
    nonce = authority.make_nonce(1000.0)
    creds = dataclasses.replace(answer(authority, nonce, algorithm="MD5"), algorithm="SHA-256")
    assert authority.verify(creds, method="POST", ha1_by_algorithm=stored(authority), now=1001) is (
        digest.Verdict.BAD_RESPONSE
    )


def test_challenge_headers(authority):
    values = authority.challenge(1000.0, binding="d", stale=True, algorithms=("MD5", "SHA-256"))
    assert len(values) == 2
    assert values[0].startswith('Digest realm="acs", qop="auth", algorithm=MD5, nonce="')
    assert values[1].startswith('Digest realm="acs", qop="auth", algorithm=SHA-256, nonce="')
    assert values[0].endswith(", stale=true")
    nonce = values[0].split('nonce="')[1].split('"')[0]
    assert authority.nonce_age(nonce, 1005.0, "d") == 5.0
    assert authority.nonce_age(nonce, 1005.0, "other") is None


def test_basic_matches():
    ha1 = digest.ha1("MD5", "u", "acs", "pw")
    assert digest.basic_matches(digest.BasicCredentials("u", "pw"), "acs", ha1)
    assert not digest.basic_matches(digest.BasicCredentials("u", "px"), "acs", ha1)
