"""Request bodies that fail validation: 422, one error per mistake, located by the path in
the request, nothing of pydantic's union machinery, never the input back."""

from __future__ import annotations

import pytest

from acs.web.api.validation import json_content_type
from tests.services.harness import ServiceCpe

DEVICE = "00D09E-IGD-SN0001"
URL = f"/api/v1/devices/{DEVICE}/tasks"


@pytest.fixture(autouse=True)
async def device(runtime):
    assert (await ServiceCpe(runtime).inform("0 BOOTSTRAP")).status == 200


def error(type_: str, loc: list[object], msg: str) -> dict[str, object]:
    return {"type": type_, "loc": loc, "msg": msg}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"name": "GetParamValues", "parameter_names": ["A."]},
            [
                error(
                    "union_tag_invalid",
                    ["body"],
                    "unknown task name 'GetParamValues'; did you mean GetParameterValues?",
                )
            ],
        ),
        (
            [{"name": "Reboot"}, {"name": "Rebot"}],
            [
                error(
                    "union_tag_invalid",
                    ["body", 1],
                    "unknown task name 'Rebot'; did you mean Reboot?",
                )
            ],
        ),
        (
            {"name": "GetParameterValues", "parameter_name": ["A."]},
            [
                error(
                    "extra_forbidden",
                    ["body", "parameter_name"],
                    "unknown field 'parameter_name'; did you mean 'parameter_names'?",
                )
            ],
        ),
        (
            {"name": "GetParameterValues"},
            [error("missing", ["body", "parameter_names"], "field required")],
        ),
        (
            [{"name": "Reboot", "command_key": "k"}, {"name": "AddObject", "object_name": "X"}],
            [error("value_error", ["body", 1, "object_name"], "an object path ends with '.'")],
        ),
        (
            {"name": "SetParameterValues", "parameter_values": [{"name": "A.B", "value": [1]}]},
            [
                error(
                    "type_error",
                    ["body", "parameter_values", 0, "value"],
                    "should be a string, a boolean or an integer",
                )
            ],
        ),
        (
            {"name": "GetParameterValues", "parameter_names": "A."},
            [error("list_type", ["body", "parameter_names"], "should be a list")],
        ),
        ("Reboot", [error("type_error", ["body"], "should be an object or a list")]),
        (["Reboot"], [error("model_attributes_type", ["body", 0], "should be an object")]),
        (
            {"parameter_names": ["A."]},
            [
                error(
                    "union_tag_not_found",
                    ["body"],
                    'a task needs a "name": the RPC (GetParameterValues, Reboot, ...)',
                )
            ],
        ),
        (
            [{"name": "Reboot", "x": 1}, {"name": "GetRPCMethods", "expires": "soon"}],
            [
                error("extra_forbidden", ["body", 0, "x"], "unknown field 'x'"),
                error(
                    "datetime_from_date_parsing",
                    ["body", 1, "expires"],
                    "Input should be a valid datetime or date, input is too short",
                ),
            ],
        ),
        (
            {"name": "Download", "file_type": "3 Vendor Configuration File", "password": "hush"},
            [error("value_error", ["body"], "give exactly one of url, file or config")],
        ),
    ],
)
async def test_one_error_per_mistake(api, body, errors):
    r = await api.post(URL, json=body)
    assert (r.status_code, r.json()) == (422, {"detail": errors})
    assert "hush" not in r.text


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_sent_as_json(api, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    r = await api.post(URL, content=b'{"name": "Reboot"}', headers=headers)
    assert (r.status_code, r.json()) == (
        422,
        {"detail": [error("content_type", ["body"], "send JSON (Content-Type: application/json)")]},
    )


async def test_json_that_does_not_parse(api):
    r = await api.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (
        422,
        {
            "detail": [
                error(
                    "json_invalid",
                    ["body"],
                    "not valid JSON at character 1: Expecting property name enclosed in double "
                    "quotes",
                )
            ]
        },
    )


async def test_query_errors_keep_their_location(api):
    r = await api.post(URL, params={"wait": "-1"}, json={"name": "Reboot"})
    assert (r.status_code, r.json()) == (
        422,
        {
            "detail": [
                error(
                    "greater_than_equal",
                    ["query", "wait"],
                    "Input should be greater than or equal to 0",
                )
            ]
        },
    )


def test_json_content_types():
    assert [
        json_content_type(v)
        for v in ("application/json", "application/json; charset=utf-8", "application/vnd+json")
    ] == [True, True, True]
    assert [json_content_type(v) for v in (None, "", "text/json", "text/plain")] == [False] * 4
