"""docker/: the Dockerfile, .dockerignore, compose.yaml and haproxy.cfg, checked by reading them
(no Docker engine needed). The Dockerfile's health check and dependency list are run here."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from acs.config import Settings
from acs.web.api.routes import devices

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DATA_DIR = "/var/lib/acs"
NODES = ("acs1", "acs2")


# --- Dockerfile -----------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (DOCKER / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", "", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _index(instructions: list[tuple[str, str]], word: str, start: str = "") -> int:
    return next(
        i for i, (w, rest) in enumerate(instructions) if w == word and rest.startswith(start)
    )


def test_dependencies_are_installed_before_the_code_is_copied():
    steps = _instructions()
    deps = _index(steps, "COPY", "pyproject.toml ")
    # nothing but pyproject.toml is in the image when the dependencies are installed
    assert [w for w, _ in steps[:deps]] == ["FROM", "RUN", "WORKDIR"]
    assert steps[deps + 1][0] == "RUN" and "pip install" in steps[deps + 1][1]
    install = _index(steps, "RUN", "pip install --no-cache-dir --no-deps")
    copies = [rest for w, rest in steps if w == "COPY"]
    assert copies == [
        "pyproject.toml ./",
        "README.md ./",
        "migrations ./migrations",
        "acs ./acs",
    ]
    assert _index(steps, "COPY", "acs ") < install
    assert "--no-build-isolation" in steps[install][1]


def test_the_dependency_layer_installs_what_pyproject_names(tmp_path: Path):
    steps = _instructions()
    run = steps[_index(steps, "COPY", "pyproject.toml ") + 1][1]
    first = shlex.split(run.split("&&")[0])
    assert first[:2] == ["python", "-c"] and first[3:] == [">", "/tmp/requirements.txt"]
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    listed = subprocess.run(
        [sys.executable, "-c", first[2]], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert listed == project["build-system"]["requires"] + project["project"]["dependencies"]


def test_it_runs_as_acs_with_the_data_volume():
    steps = _instructions()
    [useradd] = [rest for w, rest in steps if w == "RUN" and "useradd" in rest]
    assert "--system" in useradd and " acs " in f"{useradd} "
    assert f"mkdir -p {DATA_DIR}/files" in useradd and f"chown -R acs:acs {DATA_DIR}" in useradd
    user = _index(steps, "USER")
    assert steps[user] == ("USER", "acs")
    assert all(w not in ("RUN", "USER") for w, _ in steps[user + 1 :])  # nothing runs as root
    env = dict(re.findall(r"(\w+)=(\S+)", next(rest for w, rest in steps if w == "ENV")))
    assert env == {"ACS_DATA_DIR": DATA_DIR, "ACS_BIND": "0.0.0.0"}
    assert ("VOLUME", json.dumps([DATA_DIR])) in steps
    defaults = Settings.model_fields
    ports = [defaults[name].default for name in ("cwmp_port", "cwmp_tls_port", "api_port")]
    assert ("EXPOSE", " ".join(map(str, ports))) in steps
    assert steps[-2:] == [("ENTRYPOINT", '["acs"]'), ("CMD", '["serve"]')]


def _healthcheck() -> tuple[str, list[str]]:
    [rest] = [rest for w, rest in _instructions() if w == "HEALTHCHECK"]
    options, _, command = rest.partition(" CMD ")
    return options, json.loads(command)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_health_check_asks_healthz_of_the_management_listener_with_python(
    health_server, monkeypatch, status: int, healthy: bool
):
    options, command = _healthcheck()
    assert {"--interval=10s", "--timeout=5s", "--retries=3"} <= set(options.split())
    assert command[:2] == ["python", "-c"] and len(command) == 3
    assert "/healthz" in command[2]
    assert str(Settings().api_port) in command[2]  # 7557, unless ACS_API_PORT says otherwise
    monkeypatch.setattr(_Health, "status", status)
    port = health_server.server_address[1]
    run = subprocess.run(
        [sys.executable, "-c", command[2]],
        env={"ACS_API_PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    assert (run.returncode == 0) is healthy, run.stderr.decode()


def test_the_health_check_fails_when_nothing_listens(health_server):
    _, command = _healthcheck()
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    run = subprocess.run(
        [sys.executable, "-c", command[2]],
        env={"ACS_API_PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    assert run.returncode == 1
    assert b"Connection refused" in run.stderr


# --- .dockerignore --------------------------------------------------------------------------


def _ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches
    the path or one of its parent directories decides; ``!`` takes back."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", r"[\1]", regex)
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, p) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "data/acs.db",
        "data/files/ab/cdef",
        ".git/HEAD",
        "bench/results/run.json",
        "acs/__pycache__/cli.cpython-311.pyc",
        "acs/cwmp/__pycache__/soap.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeid",
        ".mypy_cache/3.11/acs/cli.json",
        ".ruff_cache/content",
        "acs.egg-info/PKG-INFO",
        "docker/secrets/admin_password",
        "docker/secrets/secret_key",
        "tests/test_docker.py",
    ],
)
def test_the_build_context_leaves_out(path: str):
    assert _ignored(path)


def test_the_build_context_has_what_the_dockerfile_copies():
    sources = [rest.split()[0] for w, rest in _instructions() if w == "COPY"]
    assert sources == ["pyproject.toml", "README.md", "migrations", "acs"]
    for source in sources:
        found = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
        files = [
            p.relative_to(ROOT).as_posix()
            for p in found
            if p.is_file() and "__pycache__" not in p.parts
        ]
        assert files, source
        assert not [f for f in files if _ignored(f)], source


# --- compose.yaml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * units[unit]
    return total


def _max_wait() -> float:
    """The longest POST .../tasks?wait= may hold its reply (the route's own bound)."""
    hints = typing.get_type_hints(devices.submit_tasks, include_extras=True)
    [query] = typing.get_args(hints["wait"])[1:]
    return float(next(m.le for m in query.metadata if hasattr(m, "le")))


def test_two_nodes_of_the_one_image_on_one_postgresql(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", *NODES, "haproxy"}
    assert services["postgres"]["image"].startswith("postgres:")
    url = "postgresql+asyncpg://acs:acs@postgres/acs"
    for name in ("migrate", *NODES):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert service["image"] == "acs:local"
        assert service["environment"]["ACS_DATABASE_URL"] == url
    user = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    assert url.startswith(f"postgresql+asyncpg://{user}:")


def test_the_migration_runs_once_before_the_nodes(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in NODES:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
        assert services[name].get("command") is None  # the image's: serve


def test_nodes_share_the_file_store(compose):
    for name in NODES:
        assert compose["services"][name]["volumes"] == [f"files:{DATA_DIR}/files"]
    assert "files" in compose["volumes"]


def test_nodes_restart_and_outlast_the_drain(compose):
    drain = _max_wait() + Settings().connection_request_timeout
    assert drain == 305.0
    for name in (*NODES, "postgres", "haproxy"):
        assert compose["services"][name]["restart"] == "unless-stopped"
    for name in NODES:
        assert _seconds(compose["services"][name]["stop_grace_period"]) > drain


def test_the_first_admin_comes_from_a_secret(compose, tmp_path: Path, monkeypatch):
    assert compose["secrets"] == {
        "admin_password": {"file": "./secrets/admin_password"},
        "secret_key": {"file": "./secrets/secret_key"},
    }
    for name in NODES:
        service = compose["services"][name]
        # mounted at /run/secrets/<name>
        assert service["secrets"] == ["admin_password", "secret_key"]
        assert service["environment"]["ACS_ADMIN_PASSWORD_FILE"] == "/run/secrets/admin_password"
        assert "ACS_ADMIN_PASSWORD" not in service["environment"]
    # what a node reads from such a file (as `openssl rand -base64 24 > file` writes it)
    secret = tmp_path / "admin_password"
    secret.write_text("dGhpcyBpcyBvbmx5IGEgdGVzdCBwYXNz\n")
    monkeypatch.setenv("ACS_ADMIN_PASSWORD_FILE", str(secret))
    assert Settings().admin_password == "dGhpcyBpcyBvbmx5IGEgdGVzdCBwYXNz"


def test_the_nodes_share_a_server_secret_given_as_a_secret_not_kept_in_the_database(
    compose, tmp_path: Path, monkeypatch
):
    # on PostgreSQL a node without ACS_SECRET_KEY refuses to start (acs.services.server_secrets)
    for name in NODES:
        service = compose["services"][name]
        assert "secret_key" in service["secrets"]
        assert service["environment"]["ACS_SECRET_KEY_FILE"] == "/run/secrets/secret_key"
        assert "ACS_SECRET_KEY" not in service["environment"]
    # what a node reads from the file the compose file's comment makes
    secret = tmp_path / "secret_key"
    secret.write_text("0123456789abcdef" * 4 + "\n")
    monkeypatch.setenv("ACS_SECRET_KEY_FILE", str(secret))
    assert Settings().secret_key == "0123456789abcdef" * 4
    assert (
        "openssl rand -hex 32 > docker/secrets/secret_key" in (DOCKER / "compose.yaml").read_text()
    )


def test_only_the_load_balancer_publishes_ports_and_the_api_on_the_host_only(compose):
    services = compose["services"]
    for name, service in services.items():
        if name != "haproxy":
            assert "ports" not in service, name
    haproxy = services["haproxy"]
    assert haproxy["image"].startswith("haproxy:")
    assert haproxy["ports"] == ["7547:7547", "127.0.0.1:7557:7557"]
    assert haproxy["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert haproxy["depends_on"] == list(NODES)


# --- haproxy.cfg ----------------------------------------------------------------------------


def _haproxy() -> dict[str, list[str]]:
    """Sections ("frontend cwmp", "backend acs_api"...) and their lines."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in (DOCKER / "haproxy.cfg").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = line.strip()
            sections[current] = []
        else:
            assert current is not None
            sections[current].append(" ".join(line.split()))
    return sections


def test_haproxy_sends_cwmp_and_the_api_to_both_nodes_that_pass_healthz():
    cfg = _haproxy()
    cwmp, api = cfg["backend acs_cwmp"], cfg["backend acs_api"]
    assert cfg["frontend cwmp"] == [
        "mode tcp",
        "option tcplog",
        "bind :7547",
        "default_backend acs_cwmp",
    ]
    assert cfg["frontend api"] == [
        "mode http",
        "option httplog",
        "bind :7557",
        "default_backend acs_api",
    ]
    assert "mode tcp" in cwmp and "mode http" in api
    for backend, port in ((cwmp, 7547), (api, 7557)):
        assert [line for line in backend if line.startswith("server ")] == [
            f"server {node} {node}:{port}" for node in NODES
        ]
        assert "option httpchk" in backend
        assert "http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host acs" in backend
        assert "http-check expect status 200" in backend
        [default] = [line for line in backend if line.startswith("default-server ")]
        assert " check" in default
    # CWMP's health is the management listener's
    [default] = [line for line in cwmp if line.startswith("default-server ")]
    assert "check port 7557" in default
    # the API holds ?wait= replies longer than the defaults' 60 s
    [timeout] = [line for line in api if line.startswith("timeout server ")]
    assert _seconds(timeout.split()[-1]) > _max_wait()
    assert "retries 3" in cfg["defaults"] and "option redispatch" in cfg["defaults"]


def test_haproxy_says_the_configuration_is_valid():
    if shutil.which("haproxy") is None:
        message = "no haproxy binary here (Debian's haproxy package)"
        if os.environ.get("ACS_TEST_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)
    run = subprocess.run(
        ["haproxy", "-c", "-f", str(DOCKER / "haproxy.cfg")], capture_output=True, timeout=30
    )
    assert run.returncode == 0, run.stderr.decode()
