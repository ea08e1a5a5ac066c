"""A real NAT for the tests, in network namespaces (root only; ``ip`` and ``iptables``)::

    this host (the ACS, Prosody)            "carrier" namespace           "home" namespace
    <acs_address>/24  <--- veth --->  <public>/24 ... <gateway>/24  <--- veth --->  <cpe>/24
                                      MASQUERADE out of its public side;     (a simulated CPE,
                                      nothing new forwarded toward home      default route via
                                                                             the carrier)

What the home namespace sends out leaves from the carrier's public address (iptables
MASQUERADE, conntrack); nothing the ACS sends reaches the home side unless it answers
something that left it (no route back, and a FORWARD rule that drops new connections
toward home): a CPE's HTTP listener is out of reach, as behind a real carrier's NAT. Names
and addresses take a number of the test process's, so that runs side by side do not meet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tests.prosody import REQUIRE_TOOLS, require_tool


def require_netns() -> None:
    """Skip (or fail under ACS_TEST_REQUIRE_TOOLS) where namespaces cannot be made."""
    require_tool("ip", "iproute2")
    require_tool("iptables", "iptables")
    if os.geteuid() != 0:
        message = "network namespaces need root (CI runs as root)"
        if REQUIRE_TOOLS:
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.decode(errors='replace').strip()}")


@dataclass
class Nat:
    """The two namespaces and their addresses (see the module docstring)."""

    n: int

    def __post_init__(self) -> None:
        n = self.n
        self.carrier, self.home = f"acs-carrier-{n}", f"acs-home-{n}"
        # interface names: at most 15 characters
        self.acs_if, self.public_if = f"nat{n}a", f"nat{n}p"
        self.gateway_if, self.cpe_if = f"nat{n}g", f"nat{n}c"
        third = 100 + n % 150
        self.acs_address = f"10.213.{third}.1"
        self.public_address = f"10.213.{third}.2"
        self.gateway_address = f"192.168.{third}.1"
        self.cpe_address = f"192.168.{third}.2"

    def create(self) -> None:
        self.destroy()  # what a killed earlier run of this number left
        _run("ip", "netns", "add", self.carrier)
        _run("ip", "netns", "add", self.home)
        _run("ip", "link", "add", self.acs_if, "type", "veth", "peer", "name", self.public_if)
        _run("ip", "link", "set", self.public_if, "netns", self.carrier)
        _run("ip", "addr", "add", f"{self.acs_address}/24", "dev", self.acs_if)
        _run("ip", "link", "set", self.acs_if, "up")
        c, h = ("ip", "-n", self.carrier), ("ip", "-n", self.home)
        _run(*c, "link", "set", "lo", "up")
        _run(*c, "addr", "add", f"{self.public_address}/24", "dev", self.public_if)
        _run(*c, "link", "set", self.public_if, "up")
        _run(
            *c, "link", "add", self.gateway_if, "type", "veth", "peer", "name", self.cpe_if,
            "netns", self.home,
        )  # fmt: skip
        _run(*c, "addr", "add", f"{self.gateway_address}/24", "dev", self.gateway_if)
        _run(*c, "link", "set", self.gateway_if, "up")
        _run(*h, "link", "set", "lo", "up")
        _run(*h, "addr", "add", f"{self.cpe_address}/24", "dev", self.cpe_if)
        _run(*h, "link", "set", self.cpe_if, "up")
        _run(*h, "route", "add", "default", "via", self.gateway_address)
        carrier = ("ip", "netns", "exec", self.carrier)
        _run(*carrier, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        iptables = (*carrier, "iptables")
        _run(*iptables, "-t", "nat", "-A", "POSTROUTING", "-o", self.public_if, "-j", "MASQUERADE")
        _run(
            *iptables, "-A", "FORWARD", "-i", self.public_if, "-o", self.gateway_if,
            "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT",
        )  # fmt: skip
        _run(*iptables, "-A", "FORWARD", "-i", self.public_if, "-o", self.gateway_if, "-j", "DROP")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.acs_if], capture_output=True, check=False)
        for name in (self.home, self.carrier):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    def in_home(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the home namespace (behind the NAT)."""
        return ["ip", "netns", "exec", self.home, *argv]


def make_nat() -> Nat:
    require_netns()
    assert shutil.which("ip")
    nat = Nat(os.getpid() % 10_000)
    nat.create()
    return nat
