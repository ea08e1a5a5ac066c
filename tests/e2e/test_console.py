"""The console in a real browser: Debian's Chromium driven by Playwright (from PyPI; no browser
download) against ``acs serve`` and a fleet of ``acs simulate`` gateways on 127.0.0.1.

One server, one fleet and one browser serve the whole module; each test has a context of its
own (its own cookies), signs in, and writes a screenshot of each page it visits to
``tests/screenshots/`` (or ``$ACS_TEST_SCREENSHOTS``); a failing test leaves
``FAILED-<test>.png`` there. Waits are Playwright's ``expect`` with a deadline, never sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bench.serve import add_operator, serve_acs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(
    os.environ.get("ACS_TEST_SCREENSHOTS", Path(__file__).resolve().parents[1] / "screenshots")
)
FLEET = 12
PRODUCT_CLASS = "IGD"
DEVICE = "00D09E-IGD-CON00000003"
WAIT = 30_000  # ms: the longest a step may take (a reboot, a wave)
expect.set_options(timeout=WAIT)


def _chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        message = f"no {CHROMIUM} here (Debian's chromium package)"
        if os.environ.get("ACS_TEST_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module", autouse=True)
def chromium_present() -> None:
    _chromium()


def _wait_for(check: Any, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


class Console:
    def __init__(self, api_url: str, cli_env: dict[str, str]):
        self.url = api_url
        self.cli_env = cli_env


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """``acs serve`` (SQLite) with an admin, an operator and a viewer, and a fleet of gateways
    that take 4 s to boot (so a reboot's ``awaiting_boot`` can be seen)."""
    tmp = tmp_path_factory.mktemp("console")
    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp / "data"),
        "ACS_CWMP_PASSWORD": "cpe-secret",
        "ACS_SECRET_KEY": "console-secret",
        "ACS_ADMIN_PASSWORD": "admin-password",
        "ACS_SCHEDULER_INTERVAL": "1",
        "ACS_LOG_LEVEL": "info",
    }
    server, cwmp_url, api_url = serve_acs(env, tmp / "server.log", seconds=60)
    cli_env = {**os.environ, "ACS_DATA_DIR": str(tmp / "data")}
    add_operator(cli_env, "ops", "operator", "ops-password")
    add_operator(cli_env, "eve", "viewer", "eve-password")
    log = tmp / "simulate.log"
    with log.open("wb") as err:
        fleet = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "acs.cli",
                "simulate",
                "--acs-url",
                cwmp_url + "/acs",
                "--password",
                "cpe-secret",
                "--devices",
                str(FLEET),
                "--ramp",
                "0",
                "--duration",
                "900",
                "--boot-seconds",
                "4",
                "--serial-prefix",
                "CON",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        with httpx.Client(base_url=api_url, auth=("admin", "admin-password"), timeout=30) as api:

            def provisioned() -> bool:
                found = api.get("/api/v1/devices", params={"limit": 100}).json()["data"]
                ready = [d for d in found if d["connection_request_credentials_set"]]
                return len(ready) == FLEET

            _wait_for(provisioned)  # every bootstrap session is over
        yield Console(api_url, cli_env)
    finally:
        fleet.send_signal(signal.SIGTERM)
        try:
            fleet.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fleet.kill()
            fleet.wait()
        server.stop(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    (SHOTS / f"FAILED-{request.node.name}.png").unlink(missing_ok=True)  # an earlier run's
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        tab.screenshot(path=str(SHOTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, url: str, name: str, password: str, then: str = "/") -> None:
    page.goto(url + then)
    expect(page).to_have_url(f"{url}/login?next={quote(then, safe='')}")
    page.get_by_label("Operator name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(name)


def task_status(page: Page, name: str) -> Any:
    return page.locator(f'#tasks tr[data-task-name="{name}"] .task-status').first


def test_sign_in_refuses_a_wrong_password_then_shows_the_overview(console, page):
    page.goto(console.url + "/")
    expect(page).to_have_url(console.url + "/login?next=%2F")
    shot(page, "login")
    page.get_by_label("Operator name").fill("ops")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Wrong name or password, or the operator is disabled."
    )
    page.get_by_label("Password").fill("ops-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url + "/")
    expect(page.locator('[data-figure="devices-online"]')).to_have_text(str(FLEET))
    expect(page.locator("svg.chart")).to_be_visible()
    shot(page, "overview")
    # a figure leads to its device list
    page.locator('a[href="/devices?status=online"]').click()
    expect(page.locator("#count")).to_have_text(f"{FLEET} devices match.")
    cookie = next(c for c in page.context.cookies() if c["name"] == "acs_console")
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Lax")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url + "/login")
    page.goto(console.url + "/devices")  # the session is gone on the server too
    expect(page).to_have_url(console.url + "/login?next=%2Fdevices")


def test_search_open_refresh_set_and_reboot_a_device(console, page):
    sign_in(page, console.url, "ops", "ops-password", then="/devices")
    page.get_by_label("Model (product class)").fill(PRODUCT_CLASS)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(
        f"{console.url}/devices?product_class={PRODUCT_CLASS}&per_page=50&sort=id"
    )
    expect(page.locator("#count")).to_have_text(f"{FLEET} devices match.")
    shot(page, "devices")
    page.get_by_role("link", name=DEVICE, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(DEVICE)
    uptime = page.locator('tr[data-param="InternetGatewayDevice.DeviceInfo.UpTime"]')
    page.goto(f"{console.url}/devices/{DEVICE}?path=InternetGatewayDevice.DeviceInfo.")
    expect(uptime).to_have_count(0)  # the Inform did not carry it

    page.get_by_label("Refresh subtree from the device").fill("InternetGatewayDevice.DeviceInfo.")
    page.get_by_role("button", name="Refresh", exact=True).click()
    expect(page.locator(".notice")).to_have_text(
        "refresh of InternetGatewayDevice.DeviceInfo. queued"
    )
    expect(task_status(page, "GetParameterValues")).to_have_text("done")  # live, no reload
    expect(task_status(page, "GetParameterNames")).to_have_text("done")
    page.reload()
    expect(uptime.locator(".value")).to_have_text("42")  # the CPE's value
    shot(page, "device")

    page.goto(f"{console.url}/devices/{DEVICE}?path=InternetGatewayDevice.ManagementServer.")
    row = page.locator(
        'tr[data-param="InternetGatewayDevice.ManagementServer.PeriodicInformInterval"]'
    )
    row.get_by_label(
        "New value of InternetGatewayDevice.ManagementServer.PeriodicInformInterval"
    ).fill("1200")
    row.get_by_role("button", name="Set").click()
    expect(task_status(page, "SetParameterValues")).to_have_text("done")
    page.reload()
    expect(row.locator("input[name=param_value]")).to_have_value("1200")
    with httpx.Client(base_url=console.url, auth=("ops", "ops-password")) as api:
        stored = api.get(f"/api/v1/devices/{DEVICE}").json()
    assert (
        stored["parameters"]["InternetGatewayDevice.ManagementServer.PeriodicInformInterval"][
            "value"
        ]
        == 1200
    )

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#reboot").click()
    expect(page.locator(".notice")).to_have_text("Reboot queued")
    expect(task_status(page, "Reboot")).to_have_text("awaiting_boot")
    expect(task_status(page, "Reboot")).to_have_text("done")
    shot(page, "device-rebooted")


def test_bulk_reboot_of_ten_devices_is_a_rollout_the_page_follows(console, page):
    sign_in(
        page, console.url, "ops", "ops-password", then=f"/devices?product_class={PRODUCT_CLASS}"
    )
    boxes = page.locator("input[name=selected]")
    expect(boxes).to_have_count(FLEET)
    for i in range(10):
        boxes.nth(i).check()
    page.get_by_label("Action").select_option("reboot")
    page.get_by_label("Devices per wave").fill("5")
    page.get_by_label("Rollout name").fill("reboot ten")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("reboot ten")
    expect(page.locator("#rollout-status")).to_have_text("done", timeout=90_000)
    expect(page.locator("#rollout-counts")).to_have_text("10 done, 0 failed, 0 pending")
    shot(page, "rollout")
    page.goto(console.url + "/rollouts")
    expect(page.get_by_role("link", name="reboot ten")).to_be_visible()
    shot(page, "rollouts")


def test_upload_a_file_with_progress(console, page, tmp_path):
    firmware = tmp_path / "igd-2.0.bin"
    firmware.write_bytes(b"IGD firmware 2.0\n" + bytes(range(256)) * 2048)
    sign_in(page, console.url, "ops", "ops-password", then="/files")
    page.get_by_label("File to upload").set_input_files(str(firmware))
    page.get_by_label("File type").select_option("1 Firmware Upgrade Image")
    page.get_by_label("Version (firmware)").fill("2.0")
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator(".notice")).to_have_text("uploaded igd-2.0.bin")
    row = page.locator('tr[data-file="igd-2.0.bin"]')
    expect(row).to_contain_text(str(firmware.stat().st_size))
    expect(row).to_contain_text("by ops")
    shot(page, "files")


def test_import_phones_edit_a_profile_and_preview_a_phone_file(console, page, tmp_path):
    sign_in(page, console.url, "ops", "ops-password", then="/provisioning")
    bad = tmp_path / "bad.csv"
    bad.write_text("mac,model,user,name\n00:15:65:11:3a:f8,X6,1001,Alice\nnot-a-mac,X6,1002,Bob\n")
    page.get_by_label(
        "Import phones (CSV: mac, model, profile, input_id, variables…)"
    ).set_input_files(str(bad))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#refused")).to_have_text("line 3: not a MAC address: 'not-a-mac'")
    good = tmp_path / "good.csv"
    good.write_text("mac,model,user,name\n00:15:65:11:3a:f8,X6,1001,Alice\n")
    page.get_by_label(
        "Import phones (CSV: mac, model, profile, input_id, variables…)"
    ).set_input_files(str(good))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#imported")).to_have_text("1 phone(s) imported.")
    shot(page, "provisioning")

    page.goto(console.url + "/provisioning/profiles/general/X6")
    page.get_by_label("Modules", exact=False).fill(
        "[GLOBAL CONFIG MODULE]\nTime Zone = 32\n\n[SIP CONFIG MODULE]\n"
        "SIP1 Register User = {{user}}\nSIP1 Display Name = {{name}}\n"
    )
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".notice")).to_have_text("profile saved")
    expect(page.locator("#modules")).to_contain_text("SIP1 Display Name = {{name}}")
    shot(page, "profile")

    page.goto(console.url + "/provisioning/phones/001565113af8")
    shot(page, "phone")
    page.locator("#preview-text").click()
    config = page.locator("#config")
    expect(config).to_contain_text("SIP1 Register User :1001")
    expect(config).to_contain_text("SIP1 Display Name :Alice")
    shot(page, "preview")


def test_a_viewer_sees_no_write_actions_and_a_forged_post_is_refused(console, page):
    sign_in(page, console.url, "eve", "eve-password", then=f"/devices/{DEVICE}")
    expect(page.get_by_text("Your role can look, not act.")).to_be_visible()
    expect(page.locator("#reboot")).to_have_count(0)
    expect(page.locator("form.edit")).to_have_count(0)
    expect(page.locator("#refresh")).to_have_count(0)
    shot(page, "viewer-device")
    page.goto(console.url + "/devices")
    expect(page.get_by_role("button", name="Apply")).to_have_count(0)
    expect(page.locator("input[name=selected]")).to_have_count(0)
    page.goto(console.url + "/admin")
    expect(page.locator("#error")).to_have_text("needs the admin role; eve is viewer")

    with httpx.Client(base_url=console.url, auth=("admin", "admin-password")) as api:
        before = api.get("/api/v1/tasks", params={"device_id": DEVICE}).json()["count"]
    csrf = page.locator("main").get_attribute("data-csrf")
    forged = page.request.post(
        f"{console.url}/devices/{DEVICE}/task", form={"action": "reboot", "csrf": csrf or ""}
    )
    assert forged.status == 403
    assert "needs the operator role; eve is viewer" in forged.text()
    no_token = page.request.post(f"{console.url}/devices/{DEVICE}/task", form={"action": "reboot"})
    assert no_token.status == 403
    with httpx.Client(base_url=console.url, auth=("admin", "admin-password")) as api:
        assert api.get("/api/v1/tasks", params={"device_id": DEVICE}).json()["count"] == before
        refused = api.get("/api/v1/audit", params={"operator": "eve"}).json()["data"]
    assert [(a["method"], a["path"], a["status"]) for a in refused[:2]] == [
        ("POST", f"/devices/{DEVICE}/task", 403),
        ("POST", f"/devices/{DEVICE}/task", 403),
    ]


def test_admin_pages_fleet_lists_and_offline_api_docs(console, page):
    sign_in(page, console.url, "admin", "admin-password", then="/admin")
    page.get_by_label("Token name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_contain_text("acs_")
    audit = page.locator("#audit")
    expect(audit).to_contain_text("POST /login")
    page.get_by_label("Path starts with").fill("/admin/tokens")
    page.get_by_role("button", name="Filter").click()
    expect(audit.locator("tbody tr")).to_have_count(1)
    expect(audit.locator("tbody tr")).to_contain_text("adminPOST /admin/tokens200")
    shot(page, "admin")
    with httpx.Client(base_url=console.url, auth=("admin", "admin-password")) as api:
        reboots = api.get("/api/v1/tasks", params={"status": "done", "name": "Reboot"}).json()
    page.goto(console.url + "/tasks?status=done&name=Reboot")
    expect(page.locator("main > p").first).to_have_text(f"{reboots['count']} tasks.")
    shot(page, "tasks")
    page.goto(console.url + "/faults")
    shot(page, "faults")
    # the API docs render with no internet: their scripts come from acs
    page.goto(console.url + "/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("acs management API")
    shot(page, "api-docs")
    page.goto(console.url + "/api/v1/redoc")
    expect(page.get_by_role("heading", name="acs management API")).to_be_visible()
    shot(page, "api-redoc")
