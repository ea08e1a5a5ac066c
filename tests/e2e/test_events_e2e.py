"""A device that stops informing, on a real `acs serve`: it is late, then offline, each move
recorded once, delivered to a webhook receiver on 127.0.0.1 and streamed as Server-Sent
Events; it comes back, and that is told too."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.test_serve import finish_session
from tests.fake_cpe import FakeCpe

DEVICE = "00D09E-IGD-SN0001"


class _Hooks(ThreadingHTTPServer):
    received: list[tuple[dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Hooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Hooks]:
    server = _Hooks(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _until(what: str, check: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.1)


def _session(url: str, cpe: FakeCpe, *events: str) -> None:
    with httpx.Client(auth=httpx.DigestAuth("acs", "cpe-secret")) as c:
        assert c.post(url, content=cpe.inform(*events)).status_code == 200
        assert finish_session(c, url, cpe).status_code == 204


def test_late_offline_and_back_reach_a_webhook_and_a_stream(start_server, tmp_path, receiver):
    server = start_server(
        periodic_inform_interval="2",
        silent_grace="0",
        offline_after_missed="2",
        scheduler_interval="0.2",
        admin_password="admin-password",
    )
    admin = ("admin", "admin-password")
    api = httpx.Client(base_url=server.api_url, auth=admin, timeout=30)
    types = ["device.registered", "device.late", "device.offline", "device.back"]
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/acs-events"
    r = api.post("/api/v1/webhooks", json={"url": hook_url, "event_types": types})
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]

    stream_lines: list[str] = []

    def read_stream() -> None:
        with (
            httpx.Client(base_url=server.api_url, auth=admin, timeout=60) as c,
            c.stream(
                "GET", "/api/v1/events/stream", params={"type": types, "after": 0}
            ) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                stream_lines.append(line)
                if line.startswith("event: device.back"):
                    return

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()

    cpe = FakeCpe()
    _session(server.cwmp_url + "/acs", cpe, "0 BOOTSTRAP", "1 BOOT")  # sets a 2 s interval
    # it never informs again: late after 2 s, offline after 4 s
    delivered = _until("offline delivery", lambda: len(receiver.received) >= 3, 30)
    _session(server.cwmp_url + "/acs", cpe, "2 PERIODIC")
    _until("back delivery", lambda: len(receiver.received) >= 4, 30)
    bodies = [json.loads(body) for _, body in receiver.received]
    assert [(b["type"], b["device_id"]) for b in bodies] == [(t, DEVICE) for t in types]
    assert bodies[3]["details"] == {"was": "offline"}
    for headers, body in receiver.received:
        stamp = headers["x-acs-signature"].split(",")[0].removeprefix("t=")
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert headers["x-acs-signature"] == f"t={stamp},v1={mac.hexdigest()}"
    assert delivered

    reader.join(timeout=30)
    assert not reader.is_alive(), stream_lines
    events = [line.removeprefix("event: ") for line in stream_lines if line.startswith("event: ")]
    assert events == types
    ids = [int(line.removeprefix("id: ")) for line in stream_lines if line.startswith("id: ")]
    # resumed after the second (as a client reconnecting with Last-Event-ID would be)
    with (
        httpx.Client(base_url=server.api_url, auth=admin, timeout=30) as c,
        c.stream(
            "GET",
            "/api/v1/events/stream",
            params={"type": types},
            headers={"last-event-id": str(ids[1])},
        ) as response,
    ):
        again = []
        for line in response.iter_lines():
            if line.startswith("event: "):
                again.append(line.removeprefix("event: "))
            if len(again) == 2:
                break
    assert again == ["device.offline", "device.back"]
    api.close()
