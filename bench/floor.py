"""The protocol floor: CPU of the storage-free work of an empty CWMP session, in-process.

What every empty session costs the ACS before any database statement or HTTP handling:
parse the Inform, check its Digest answer, run the session machine, derive the device's
columns and parameter patch, render the InformResponse and state; then the empty POST.
Together with the ceiling's server CPU per session (HTTP alone, from ``bench.run``) it says
how much of a session's cost the database path is, and what a target leaves for it.

    python -m bench.floor
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

from acs.config import Settings
from acs.cwmp import session as cs
from acs.cwmp import soap
from acs.cwmp.http import session_cookies
from acs.services import inform as inform_values
from acs.services.cpe_auth import CpeAuthenticator, DeviceCredentials, hash_credentials
from acs.simulator.agent import CpeAgent
from acs.simulator.datamodels import gateway
from acs.simulator.rawhttp import Authenticator

PASSWORD = "bench-cpe-secret"


def steps() -> dict[str, Callable[[], object]]:
    settings = Settings(_env_file=None, cwmp_password=PASSWORD, secret_key="bench-secret")
    shared = DeviceCredentials(
        settings.cwmp_username,
        hash_credentials(settings.cwmp_username, PASSWORD, settings.cwmp_realm),
    )
    auth = CpeAuthenticator(settings, b"bench-secret-key-of-32-bytes....", shared)
    agent = CpeAgent(
        gateway("FLOOR0001"),
        "http://127.0.0.1/acs",
        username=settings.cwmp_username,
        password=PASSWORD,
    )
    body = agent.inform_body(("2 PERIODIC",))
    limits = soap.ParseLimits(max_bytes=settings.cwmp_max_body_bytes)
    envelope = soap.parse_envelope(body, limits)
    device_id = envelope.message.device_id.device_id
    now = time.time()
    client = Authenticator(settings.cwmp_username, PASSWORD)
    client.challenged(auth.challenge(now, device_id))
    authorization = client.header("POST", "/acs")

    def check() -> bool:
        outcome = auth.check(
            authorization,
            method="POST",
            path="/acs",
            tls=False,
            credentials=None,
            binding=device_id,
            now=now,
        )
        return outcome.ok

    assert check(), "the Digest answer must be accepted, or this measures a refusal"

    def inform() -> object:
        parsed = soap.parse_envelope(body, limits)
        check()
        session_cookies(None)
        machine = cs.CwmpSession(id_prefix="floor000.")
        [event] = machine.receive(parsed)
        assert isinstance(event, cs.InformReceived)
        at = datetime.fromtimestamp(now, UTC)
        inform_values.device_values(
            parsed.message,
            peer_host="127.0.0.1",
            now=at,
            cwmp_version=event.cwmp_version,
            known_interval=300,
            silent_grace=settings.silent_grace,
        )
        inform_values.parameter_patch(parsed.message.parameter_list, at)
        machine.send_inform_response()
        return machine.to_json()

    state = inform()

    def empty_post() -> None:
        parsed = soap.parse_envelope(b"", limits)
        session_cookies("acs_session=floor000")
        machine = cs.CwmpSession.from_json(state)  # type: ignore[arg-type]
        machine.receive(parsed)
        machine.end()

    return {
        "Inform (all of it)": inform,
        "  of which parsing": lambda: soap.parse_envelope(body, limits),
        "  of which Digest": check,
        "empty POST": empty_post,
    }


def protocol_ms(number: int = 2000, repeat: int = 7) -> float:
    """An empty session's storage-free work (its Inform and its empty POST), in ms: the best
    of ``repeat`` runs of ``number`` each."""
    timed = steps()
    return sum(
        min(timeit.repeat(timed[name], number=number, repeat=repeat)) / number * 1000
        for name in ("Inform (all of it)", "empty POST")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for name, step in steps().items():
        best = min(timeit.repeat(step, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name:22} {best * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
