"""CTC LOID binding inside a session (``acs.services.ctc`` has the rules and the work orders).

A CTC gateway informs with ``X CT-COM BIND`` once an installer typed the subscriber's LOID
into it. The LOID usually comes in the Inform; if not, the ACS asks for it first. Then the
device is bound to its work order (whose tasks are queued behind this flow) and told the
outcome in ``X_CT-COM_UserInfo.Status`` and ``.Result``.

States (``phase``)::

    fetch --GetParameterValues(UserInfo.)--> fetching --response--> report (bound now)
                                                      --fault or none--> (done: no binding)
    report --SetParameterValues(Status, Result)--> reported --any answer--> (done)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from acs.config import Settings
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp import xsd
from acs.db import hot, queries
from acs.db.queries import DeviceAuth
from acs.services import ctc, fault_log
from acs.services.inform import set_values_patch
from acs.services.policy.base import (
    Answer,
    Answered,
    Component,
    JsonState,
    Offer,
    SessionContext,
)

log = logging.getLogger("acs.ctc")

Phase = Literal["fetch", "fetching", "report", "reported"]


@dataclass(frozen=True, slots=True)
class CtcBindState(JsonState):
    phase: Phase
    status: int = 0
    result: int = 0


class CtcBinding(Component[CtcBindState]):
    name = "ctc"
    State = CtcBindState

    def __init__(self, settings: Settings):
        self.settings = settings

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> CtcBindState | None:
        if ctx.facts.mode != "ctc" or "X CT-COM BIND" not in ctx.facts.events:
            return None
        loid, password = ctc.userinfo_from(inform.parameter_list)
        if loid is None:
            return CtcBindState("fetch")
        return await self._bind(tx, ctx, loid, password)

    async def _bind(
        self, tx: hot.Transaction, ctx: SessionContext, loid: str | None, password: str | None
    ) -> CtcBindState:
        outcome = await ctc.bind(
            tx,
            device_id=ctx.device_id,
            loid=loid,
            password=password,
            now=ctx.now,
            task_ttl=self.settings.task_default_ttl,
        )
        log.info("%s: CTC bind of LOID %r: %s", ctx.device_id, loid, outcome.detail)
        return CtcBindState("report", outcome.status, outcome.result)

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: CtcBindState | None
    ) -> Offer[CtcBindState] | None:
        if state is None:
            return None
        userinfo = f"{ctx.facts.root}.{ctc.USERINFO}"
        if state.phase == "fetch":
            return Offer(m.GetParameterValues((userinfo,)), "userinfo", CtcBindState("fetching"))
        if state.phase == "report":
            request = m.SetParameterValues(_status(userinfo, state), parameter_key="acs-ctc-bind")
            return Offer(request, "status", CtcBindState("reported", state.status, state.result))
        return None

    async def on_answer(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        ref_id: str,
        answer: Answer,
        state: CtcBindState | None,
    ) -> Answered[CtcBindState]:
        if state is None:
            return Answered(None)
        if state.phase == "fetching":
            if isinstance(answer, cs.ResponseReceived):
                loid, password = ctc.userinfo_from(answer.response.parameter_list)
                return Answered(await self._bind(tx, ctx, loid, password))
            return Answered(None)
        if isinstance(answer, cs.ResponseReceived):
            done = _status(f"{ctx.facts.root}.{ctc.USERINFO}", state)
            await queries.merge_parameters(tx, ctx.device_id, set_values_patch(done, ctx.now))
        elif isinstance(answer, cs.FaultReceived):
            await fault_log.from_cpe(
                tx,
                device_id=ctx.device_id,
                now=ctx.now,
                code=answer.fault.fault_code,
                string=answer.fault.fault_string,
                detail={"ctc_bind_status": True},
            )
        return Answered(None)


def _status(userinfo: str, state: CtcBindState) -> tuple[m.ParameterValueStruct, ...]:
    return (
        m.ParameterValueStruct(userinfo + "Status", state.status, xsd.UNSIGNED_INT),
        m.ParameterValueStruct(userinfo + "Result", state.result, xsd.UNSIGNED_INT),
    )
