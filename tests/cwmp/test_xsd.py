"""xsd types: lenient decoding of what CPEs send, strict checking of what we send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acs.cwmp import xsd


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "xsd:string"),
        ("", "xsd:string"),
        ("xsd:unsignedInt", "xsd:unsignedInt"),
        ("xs:unsignedInt", "xsd:unsignedInt"),
        ("unsignedInt", "xsd:unsignedInt"),
        ("xsd:unsignedint", "xsd:unsignedInt"),
        ("s:boolean", "xsd:boolean"),
    ],
)
def test_normalize_type(raw, expected):
    assert xsd.normalize_type(raw) == expected


@pytest.mark.parametrize(
    ("text", "type_", "value"),
    [
        ("42", "xsd:unsignedInt", 42),
        (" -7 ", "xsd:int", -7),
        ("18446744073709551615", "xsd:unsignedLong", 18446744073709551615),
        ("abc", "xsd:int", "abc"),  # kept as sent, never lost
        ("", "xsd:int", ""),
        ("true", "xsd:boolean", True),
        ("1", "xsd:boolean", True),
        ("False", "xsd:boolean", False),
        ("yes", "xsd:boolean", "yes"),
        ("2024-01-01T00:00:00Z", "xsd:dateTime", "2024-01-01T00:00:00Z"),
        (None, "xsd:string", ""),
        (" keep spaces ", "xsd:string", " keep spaces "),
    ],
)
def test_decode(text, type_, value):
    assert xsd.decode(text, type_) == value
    assert type(xsd.decode(text, type_)) is type(value)


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("300", "xsd:unsignedInt", 300),
        (300, "xsd:unsignedInt", 300),
        ("true", "xsd:boolean", True),
        (0, "xsd:boolean", False),
        ("x", "xsd:string", "x"),
        (5, "xsd:string", "5"),
        ("2024-02-03T04:05:06+01:00", "xsd:dateTime", "2024-02-03T04:05:06+01:00"),
        ("AQID", "xsd:base64", "AQID"),
        ("0aFF", "xsd:hexBinary", "0aFF"),
        ("1.5", "xsd:decimal", "1.5"),
    ],
)
def test_check_accepts(value, type_, expected):
    assert xsd.check(value, type_) == expected


@pytest.mark.parametrize(
    ("value", "type_", "message"),
    [
        (-1, "xsd:unsignedInt", "out of range"),
        (2**32, "xsd:unsignedInt", "out of range"),
        ("12a", "xsd:int", "not an integer"),
        (True, "xsd:int", "not a boolean"),
        ("maybe", "xsd:boolean", "not a boolean"),
        ("yesterday", "xsd:dateTime", "not an xsd:dateTime"),
        ("abc", "xsd:hexBinary", "not hexBinary"),
        ("$$", "xsd:base64", "not base64"),
        ("x", "xsd:decimal", "not a decimal"),
        ("x", "xsd:float", "unknown type"),
    ],
)
def test_check_refuses(value, type_, message):
    with pytest.raises(ValueError, match=message):
        xsd.check(value, type_)


def test_datetimes():
    assert xsd.parse_datetime("2024-01-02T03:04:05Z") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert xsd.parse_datetime("2024-01-02T03:04:05") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert xsd.parse_datetime("2024-01-02T04:04:05+01:00") == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert xsd.parse_datetime("garbage") is None
    assert xsd.parse_datetime("") is None
    assert xsd.format_datetime(datetime(2024, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == (
        "2024-01-02T03:04:05Z"
    )


def test_encode_and_infer():
    assert (xsd.encode(True), xsd.encode(False), xsd.encode(7)) == ("true", "false", "7")
    assert xsd.infer_type(True) == "xsd:boolean"
    assert xsd.infer_type(7) == "xsd:int"
    assert xsd.infer_type(2**40) == "xsd:long"
    assert xsd.infer_type("x") == "xsd:string"


def test_format_pads_years_below_1000():
    assert xsd.format_datetime(datetime(2, 2, 5, 13, 47, 9, tzinfo=UTC)) == "0002-02-05T13:47:09Z"


def test_integers_are_ascii_digits_only():
    assert xsd.decode("1_000", "xsd:int") == "1_000"
    assert xsd.decode("\u0663", "xsd:int") == "\u0663"
