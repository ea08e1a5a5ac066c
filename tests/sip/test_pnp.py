"""acs.sip.pnp: the PnP responder as a phone drives it, datagram by datagram, with the clock
passed in: exact answers, RFC 3261's timers, the filter, and what it drops."""

from __future__ import annotations

import random

import pytest

from acs.sip import pnp
from acs.sip.message import Request
from acs.sip.pnp import (
    Decide,
    Drop,
    Dropped,
    Filter,
    Finished,
    Limits,
    Notify,
    Outcome,
    Phone,
    Reply,
    Responder,
    State,
)

PHONE = ("192.0.2.10", 5060)
LOCAL = ("192.0.2.1", 40000)
URL = "http://192.0.2.1:7547/prov/0c383e113af8.cfg"
KEY = ("c1@192.0.2.10", "a1", 1)
TAG = "5cbc0967631ca338"  # sha256 of "tag\nc1@192.0.2.10\na1", its first 16 hex digits
BRANCH = "z9hG4bK8474a2b927f12abe"  # sha256 of "notify\nc1@192.0.2.10\na1\n1"


def subscribe(*, drop: tuple[str, ...] = (), **replace: str) -> bytes:
    """A phone's SUBSCRIBE; ``replace`` a header's whole line by its name (``request`` the
    request line), ``drop`` some."""
    lines = {
        "request": "SUBSCRIBE sip:MAC%3a0c383e113af8@224.0.1.75 SIP/2.0",
        "via": "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1234;rport",
        "from": "From: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=a1",
        "to": "To: <sip:MAC%3a0c383e113af8@224.0.1.75>",
        "call_id": "Call-ID: c1@192.0.2.10",
        "cseq": "CSeq: 1 SUBSCRIBE",
        "contact": "Contact: <sip:192.0.2.10:5060>",
        "user_agent": "User-Agent: Fanvil X6 2.4.1",
        "expires": "Expires: 0",
        "event": 'Event: ua-profile;profile-type="device";vendor="Fanvil";model="X6";'
        'version="2.4.1"',
        "accept": "Accept: application/url",
    }
    lines.update(replace)
    text = "\r\n".join(line for name, line in lines.items() if name not in drop)
    return (text + "\r\nContent-Length: 0\r\n\r\n").encode()


FANVIL = Phone(
    mac="0c383e113af8",
    vendor="Fanvil",
    model="X6",
    version="2.4.1",
    user_agent="Fanvil X6 2.4.1",
    source=PHONE,
    target=PHONE,
)

OK = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1234;rport=5060;received=192.0.2.10\r\n"
    "From: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=a1\r\n"
    f"To: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag={TAG}\r\n"
    "Call-ID: c1@192.0.2.10\r\n"
    "CSeq: 1 SUBSCRIBE\r\n"
    "Contact: <sip:192.0.2.1:5060>\r\n"
    "Expires: 0\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
).encode()

NOTIFY = (
    "NOTIFY sip:192.0.2.10:5060 SIP/2.0\r\n"
    f"Via: SIP/2.0/UDP 192.0.2.1:40000;branch={BRANCH};rport\r\n"
    "Max-Forwards: 70\r\n"
    f"From: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag={TAG}\r\n"
    "To: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=a1\r\n"
    "Call-ID: c1@192.0.2.10\r\n"
    "CSeq: 1 NOTIFY\r\n"
    "Contact: <sip:192.0.2.1:5060>\r\n"
    'Event: ua-profile;profile-type="device";vendor="Fanvil";model="X6";version="2.4.1"\r\n'
    "Subscription-State: terminated;reason=timeout\r\n"
    "Content-Type: application/url\r\n"
    "Content-Length: 43\r\n"
    "\r\n"
    f"{URL}"
).encode()


def answer(status: int, reason: str = "OK", *, branch: str = BRANCH, **replace: str) -> bytes:
    """The phone's answer to our NOTIFY."""
    lines = {
        "via": f"Via: SIP/2.0/UDP 192.0.2.1:40000;branch={branch};rport",
        "from": f"From: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag={TAG}",
        "to": "To: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=a1",
        "call_id": "Call-ID: c1@192.0.2.10",
        "cseq": "CSeq: 1 NOTIFY",
    }
    lines.update(replace)
    return (f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(lines.values()) + "\r\n\r\n").encode()


def notifying(responder: Responder, now: float = 100.0) -> None:
    assert responder.receive(subscribe(), PHONE, now) == [Decide(KEY, FANVIL)]
    assert responder.accept(KEY, url=URL, local=LOCAL, now=now) == [
        Reply(OK, PHONE),
        Notify(KEY, NOTIFY, PHONE),
    ]


def test_a_subscribe_gets_its_200_then_the_notify_and_the_phones_200_ends_it():
    responder = Responder(5060)
    assert responder.receive(subscribe(), PHONE, 100.0) == [Decide(KEY, FANVIL)]
    assert responder.state(KEY) is State.DECIDING
    assert responder.deadline == 132.0  # Timer J: forgotten if never decided
    assert responder.accept(KEY, url=URL, local=LOCAL, now=100.25) == [
        Reply(OK, PHONE),
        Notify(KEY, NOTIFY, PHONE),
    ]
    assert (responder.state(KEY), responder.deadline) == (State.NOTIFYING, 100.75)
    assert responder.receive(answer(200), ("192.0.2.10", 5060), 100.5) == [
        Finished(KEY, FANVIL, URL, Outcome.DONE, 200, 0, 0.25)
    ]
    assert responder.state(KEY) is State.DONE
    # the same 200 again (the phone's retransmission) is absorbed
    assert responder.receive(answer(200), PHONE, 101.0) == []
    # the SUBSCRIBE sent again before Timer J gets the same 200, and no second NOTIFY
    assert responder.receive(subscribe(), PHONE, 110.0) == [Reply(OK, PHONE)]
    assert responder.deadline == 132.0
    assert responder.timeout(131.9) == []
    assert responder.timeout(132.0) == []
    assert (responder.state(KEY), responder.deadline, len(responder)) == (None, None, 0)
    # after Timer J a SUBSCRIBE with the same key is a new one
    assert responder.receive(subscribe(), PHONE, 140.0) == [Decide(KEY, FANVIL)]


def test_a_subscribe_sent_again_while_deciding_is_absorbed():
    responder = Responder(5060)
    assert responder.receive(subscribe(), PHONE, 100.0) == [Decide(KEY, FANVIL)]
    assert responder.receive(subscribe(), PHONE, 100.5) == []
    assert responder.state(KEY) is State.DECIDING


def test_the_notify_is_sent_again_on_timer_e_until_timer_f():
    responder = Responder(5060)
    notifying(responder)
    sent = []
    while (due := responder.deadline) is not None and due <= 140:
        actions = responder.timeout(due)
        if actions and isinstance(actions[0], Notify):
            assert actions == [Notify(KEY, NOTIFY, PHONE)]
            sent.append(due)
        else:
            assert actions == [Finished(KEY, FANVIL, URL, Outcome.TIMEOUT, None, 10, 32.0)]
            assert due == 132.0
    # T1 = 0.5 s, doubling up to T2 = 4 s (RFC 3261 17.1.2.2); Timer F = 64*T1 = 32 s
    assert sent == [100.5, 101.5, 103.5, 107.5, 111.5, 115.5, 119.5, 123.5, 127.5, 131.5]
    assert (responder.state(KEY), responder.deadline) == (None, None)


def test_a_late_timer_sends_once_and_counts_from_when_it_ran():
    responder = Responder(5060)
    notifying(responder)
    assert responder.timeout(100.4) == []
    assert responder.timeout(102.0) == [Notify(KEY, NOTIFY, PHONE)]
    assert responder.deadline == 103.0


def test_a_provisional_answer_slows_retransmission_to_t2():
    responder = Responder(5060)
    notifying(responder)
    assert responder.receive(answer(180, "Ringing"), PHONE, 100.2) == []
    assert responder.state(KEY) is State.PROCEEDING
    assert responder.timeout(100.5) == [Notify(KEY, NOTIFY, PHONE)]
    assert responder.deadline == 104.5
    assert responder.receive(answer(200), PHONE, 101.0) == [
        Finished(KEY, FANVIL, URL, Outcome.DONE, 200, 1, 1.0)
    ]


def test_a_phone_that_refuses_the_notify():
    responder = Responder(5060)
    notifying(responder)
    assert responder.receive(answer(489, "Bad Event"), PHONE, 100.1) == [
        Finished(KEY, FANVIL, URL, Outcome.REJECTED, 489, 0, pytest.approx(0.1))
    ]
    assert responder.state(KEY) is State.REJECTED
    assert responder.receive(answer(200), PHONE, 100.2) == []


@pytest.mark.parametrize(
    "datagram",
    [
        answer(200, branch="z9hG4bKother"),
        answer(200, call_id="Call-ID: someone-else"),
        answer(200, cseq="CSeq: 2 NOTIFY"),
        answer(200, cseq="CSeq: 1 SUBSCRIBE"),
        answer(200, via="X-Nothing: here"),
    ],
)
def test_an_answer_to_no_notify_of_ours_is_stray(datagram):
    responder = Responder(5060)
    notifying(responder)
    status = datagram.split(b" ")[1].decode()
    assert responder.receive(datagram, PHONE, 100.1) == [
        Dropped(Drop.STRAY, PHONE, f"{status} answers no NOTIFY of ours")
    ]
    assert responder.state(KEY) is State.NOTIFYING


def test_the_filter_turns_phones_away_silently_and_once():
    responder = Responder(5060, filter=Filter(mac_prefixes=("001565", "0c383f")))
    detail = "MAC 0c383e113af8 has none of the prefixes"
    assert responder.receive(subscribe(), PHONE, 100.0) == [
        Dropped(Drop.MAC_PREFIX, PHONE, detail, FANVIL)
    ]
    assert responder.state(KEY) is State.DECLINED
    assert responder.receive(subscribe(), PHONE, 100.5) == []  # sent again: no answer, no count
    assert responder.accept(KEY, url=URL, local=LOCAL, now=101) == []
    assert Responder(5060, filter=Filter(mac_prefixes=("0c38",))).receive(
        subscribe(), PHONE, 100.0
    ) == [Decide(KEY, FANVIL)]
    by_model = Responder(5060, filter=Filter(models=("x7", "x7c")))
    assert by_model.receive(subscribe(), PHONE, 100.0) == [
        Dropped(Drop.MODEL, PHONE, "model 'X6' is not one of the models", FANVIL)
    ]
    assert Responder(5060, filter=Filter(models=("x6",))).receive(subscribe(), PHONE, 1.0) == [
        Decide(KEY, FANVIL)
    ]


def test_the_callers_refusal_and_a_decision_that_never_comes():
    responder = Responder(5060)
    responder.receive(subscribe(), PHONE, 100.0)
    assert responder.decline(KEY, Drop.UNKNOWN_PHONE, "no phone 0c383e113af8") == [
        Dropped(Drop.UNKNOWN_PHONE, PHONE, "no phone 0c383e113af8", FANVIL)
    ]
    assert responder.decline(KEY, Drop.UNKNOWN_PHONE, "again") == []
    assert responder.receive(subscribe(), PHONE, 100.5) == []
    other = Responder(5060)
    other.receive(subscribe(), PHONE, 100.0)
    assert other.timeout(132.0) == [
        Dropped(Drop.UNAVAILABLE, PHONE, "no decision within 32 s", FANVIL)
    ]
    assert other.accept(KEY, url=URL, local=LOCAL, now=133.0) == []


def test_subscriptions_are_bounded():
    responder = Responder(5060, limits=Limits(max_subscriptions=1))
    responder.receive(subscribe(), PHONE, 100.0)
    assert responder.receive(subscribe(call_id="Call-ID: c2"), PHONE, 100.0) == [
        Dropped(Drop.BUSY, PHONE, "1 subscriptions remembered already", FANVIL)
    ]


def test_close_aborts_the_notifies_in_flight():
    responder = Responder(5060)
    notifying(responder)
    responder.receive(subscribe(call_id="Call-ID: c2"), PHONE, 100.0)
    assert responder.close(101.0) == [Finished(KEY, FANVIL, URL, Outcome.ABORTED, None, 0, 1.0)]
    assert (len(responder), responder.deadline) == (0, None)


@pytest.mark.parametrize(
    ("datagram", "reason", "detail"),
    [
        (b"\x16\x03\x01 \x02 \x00", Drop.MALFORMED, "not a method: '\\x16\\x03\\x01'"),
        (b"x" * 9000, Drop.TOO_LARGE, "9000 bytes, more than 8192"),
        (subscribe(request="OPTIONS sip:x SIP/2.0"), Drop.METHOD, "OPTIONS is not SUBSCRIBE"),
        (subscribe(event="Event: presence"), Drop.EVENT, "Event 'presence', not ua-profile"),
        (subscribe(drop=("event",)), Drop.EVENT, "Event '', not ua-profile"),
        (subscribe(drop=("call_id",)), Drop.MALFORMED, "no call-id header"),
        (subscribe(drop=("via",)), Drop.MALFORMED, "no via header"),
        (subscribe(cseq="CSeq: 1 NOTIFY"), Drop.MALFORMED, "CSeq method NOTIFY in a SUBSCRIBE"),
        (subscribe(via="Via: SIP/2.0/UDP"), Drop.MALFORMED, "not a Via: 'SIP/2.0/UDP'"),
        (
            subscribe(
                request="SUBSCRIBE sip:pnp@224.0.1.75 SIP/2.0",
                to="To: <sip:pnp@224.0.1.75>",
                **{"from": "From: <sip:anonymous@192.0.2.10>;tag=a1"},
            ),
            Drop.NO_MAC,
            "no MAC address in the Request-URI, From or To",
        ),
    ],
)
def test_what_is_not_answered_and_why(datagram, reason, detail):
    responder = Responder(5060)
    assert responder.receive(datagram, PHONE, 100.0) == [Dropped(reason, PHONE, detail)]
    assert len(responder) == 0


@pytest.mark.parametrize(
    ("user", "mac"),
    [
        ("0c383e113af8", "0c383e113af8"),
        ("MAC%3a0C383E113AF8", "0c383e113af8"),
        ("mac:0c383e113af8", "0c383e113af8"),
        ("0c-38-3e-11-3a-f8", "0c383e113af8"),
        ("0c%3a38%3a3e%3a11%3a3a%3af8", "0c383e113af8"),
        ("0c383e113af", None),
        ("0c383e113af8a", None),
        ("phone", None),
        ("", None),
        (None, None),
    ],
)
def test_a_mac_in_a_user_part(user, mac):
    assert pnp.mac_of(user) == mac


def test_the_mac_is_taken_from_from_when_the_request_uri_has_none():
    responder = Responder(5060)
    [decide] = responder.receive(
        subscribe(request="SUBSCRIBE sip:224.0.1.75 SIP/2.0"), PHONE, 100.0
    )
    assert isinstance(decide, Decide) and decide.phone.mac == "0c383e113af8"


def test_where_answers_go_rfc_3261_18_2_2_and_rfc_3581():
    # no rport: to the Via's port, received added only where the host differs
    responder = Responder(5060)
    via = "Via: SIP/2.0/UDP phone.lan:5070;branch=z9hG4bK9"
    [decide] = responder.receive(subscribe(via=via, drop=("contact",)), ("192.0.2.10", 40123), 1)
    assert isinstance(decide, Decide)
    assert decide.phone.target == ("192.0.2.10", 5070)
    [reply, notify] = responder.accept(decide.key, url=URL, local=LOCAL, now=1)
    assert isinstance(reply, Reply) and isinstance(notify, Notify)
    assert reply.to == notify.to == ("192.0.2.10", 5070)
    assert reply.datagram.split(b"\r\n")[1] == (
        b"Via: SIP/2.0/UDP phone.lan:5070;branch=z9hG4bK9;received=192.0.2.10"
    )
    assert notify.datagram.startswith(b"NOTIFY sip:192.0.2.10:5070 SIP/2.0\r\n")
    # no port at all: 5060; the same host: no received
    via = "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK9"
    [decide] = Responder(5060).receive(subscribe(via=via), ("192.0.2.10", 40123), 1)
    assert isinstance(decide, Decide) and decide.phone.target == ("192.0.2.10", 5060)


def test_a_dual_stack_socket_and_ipv6():
    responder = Responder(5060)
    mapped = ("::ffff:192.0.2.10", 5060, 0, 0)
    [decide] = responder.receive(subscribe(), mapped, 1)
    assert isinstance(decide, Decide)
    assert (decide.phone.target, decide.phone.client) == (mapped, "192.0.2.10")
    [reply, _] = responder.accept(decide.key, url=URL, local=("::ffff:192.0.2.1", 40000), now=1)
    assert isinstance(reply, Reply)
    assert b";received=192.0.2.10\r\n" in reply.datagram
    assert b"Contact: <sip:192.0.2.1:5060>\r\n" in reply.datagram
    v6 = ("2001:db8::10", 5062, 0, 0)
    responder = Responder(5060)
    via = "Via: SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bK6;rport"
    [decide] = responder.receive(subscribe(via=via, drop=("contact",)), v6, 1)
    assert isinstance(decide, Decide)
    [_, notify] = responder.accept(decide.key, url=URL, local=("2001:db8::1", 41000, 0, 0), now=1)
    assert isinstance(notify, Notify)
    assert notify.datagram.split(b"\r\n")[:2] == [
        b"NOTIFY sip:[2001:db8::10]:5062 SIP/2.0",
        f"Via: SIP/2.0/UDP [2001:db8::1]:41000;branch={BRANCH};rport".encode(),
    ]


def test_a_subscribe_in_a_dialog_keeps_its_tag():
    responder = Responder(5060)
    to = "To: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=ours"
    [decide] = responder.receive(subscribe(to=to), PHONE, 1)
    assert isinstance(decide, Decide)
    [reply, notify] = responder.accept(decide.key, url=URL, local=LOCAL, now=1)
    assert isinstance(reply, Reply) and isinstance(notify, Notify)
    assert b"\r\nTo: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=ours\r\n" in reply.datagram
    assert b"\r\nFrom: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=ours\r\n" in notify.datagram


def test_what_a_phone_writes_is_cleaned_for_logs_and_urls():
    event = 'Event: ua-profile;vendor="Fan\\"vil";model="VOIP PHONE ";version=' + "9" * 80
    [decide] = Responder(5060).receive(
        subscribe(event=event, user_agent="User-Agent: \tX\tY "), PHONE, 1
    )
    assert isinstance(decide, Decide)
    phone = decide.phone
    assert (phone.vendor, phone.model, phone.version, phone.user_agent) == (
        'Fan"vil',
        "VOIP PHONE",
        "9" * 64,
        "XY",
    )
    template = "tftp://acs/$vendor/${model}-$version/$mac.cfg?i=$input&d=$$"
    assert pnp.provisioning_url(template, phone) == (
        f"tftp://acs/Fanvil/VOIPPHONE-{'9' * 64}/0c383e113af8.cfg?i=$input&d=$"
    )


def test_urls_in_logs_hide_passwords():
    assert pnp.redacted("http://acs:s3cret@192.0.2.1:7547/prov/x.cfg") == (
        "http://acs:***@192.0.2.1:7547/prov/x.cfg"
    )
    assert pnp.redacted("ftp://acs@192.0.2.1/x.cfg") == "ftp://acs@192.0.2.1/x.cfg"
    assert pnp.redacted(URL) == URL


def test_the_table_refuses_what_it_does_not_list():
    assert (State.DECLINED, pnp.Event.ACCEPTED) not in pnp.TRANSITIONS
    assert (State.DONE, pnp.Event.RETRANSMIT) not in pnp.TRANSITIONS
    error = pnp.SubscriptionError(State.DONE, pnp.Event.RETRANSMIT)
    assert str(error) == "retransmit is not allowed in state done"


def test_read_subscribe_needs_a_subscribe():
    with pytest.raises(pnp.Refused) as refused:
        pnp.read_subscribe(Request("NOTIFY", "sip:x@y"), PHONE)
    assert (refused.value.reason, refused.value.detail) == (Drop.METHOD, "NOTIFY is not SUBSCRIBE")


def test_mangled_datagrams_are_dropped_or_answered_never_a_crash():
    """10,000 SUBSCRIBEs and answers with bytes cut, inserted and repeated (a fixed seed):
    every one comes back as actions, and the responder keeps answering."""
    rng = random.Random(20261204)
    originals = [subscribe(), answer(200), answer(180, "Ringing")]
    alphabet = b' \t\r\n:;,<>"@=\\[]%SIP/2.0z9hG4bK0123456789abc\x00\xff'
    responder = Responder(5060)
    kinds = set()
    for i in range(10_000):
        datagram = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(datagram) + 1)
            choice = rng.random()
            if choice < 0.4:
                del datagram[at : at + rng.randint(1, 5)]
            elif choice < 0.8:
                datagram[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            else:
                datagram[at:at] = datagram[rng.randrange(len(datagram) or 1) :][:30]
        for action in responder.receive(bytes(datagram), PHONE, float(i)):
            kinds.add(type(action).__name__)
            if isinstance(action, Decide):
                responder.accept(action.key, url=URL, local=LOCAL, now=float(i))
        responder.timeout(float(i))
    assert kinds >= {"Decide", "Dropped", "Reply"}
    responder.timeout(1e9)
    assert responder.receive(subscribe(), PHONE, 2e9) == [Decide(KEY, FANVIL)]
