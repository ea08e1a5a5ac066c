"""Presets inside a session: bring the device to what its presets say, then remember it.

After built-in provisioning and CTC binding, before the task queue. At the Inform, a device
whose mark (``devices.presets_mark``) is the one its facts give now (``Catalog.mark``) is
converged and costs nothing: no statement, no state. Otherwise the component evaluates the
presets that match the device and act on this session (events, schedule window), in order
of weight, each ``presets.plan`` at a time:

    refresh --GetParameterValues(what the ACS does not know)--> (evaluate again)
            --fault (a path the device lacks faults them all)--> each path alone, then again
    a preset's plan --AddObject / SetParameterValues--> (evaluate again)
                    --tags, phone profile (rows)--> (evaluate again)
                    --firmware: a Download task queued (the task queue runs it)
    every plan empty --> the mark is written: the next Informs cost nothing

A round is one pass over the presets; a round that changed something is followed by another
(a preset may match only once another set a value), at most ``MAX_ROUNDS``. A path set twice
in one session, or rounds that never settle, is a loop of presets undoing each other:
reported (``preset.loop`` event, fault 8899 on their channels), those presets backed off,
the session goes on to the task queue. A preset whose request faults (or goes unanswered)
is backed off alone (``devices.presets_state``: failures and the time of its next try),
recorded as a fault on its channel (``preset:<name>``) and a ``preset.fault`` event; the
other presets go on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from acs.config import Settings
from acs.cwmp import faults, xsd
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.db import hot, queries
from acs.db.queries import DeviceAuth
from acs.db.types import JSONDoc, OrderedJSON, UTCDateTime
from acs.services import events, fault_log, presets, task_specs, tasks
from acs.services.events import EventType, NewEvent
from acs.services.policy import results
from acs.services.policy.base import (
    Answer,
    Answered,
    Component,
    JsonState,
    Offer,
    SessionContext,
)
from acs.services.presets import Catalog, DeviceFacts, Plan, Preset

Pending = Literal["", "refresh", "add", "set"]


@dataclass(frozen=True, slots=True)
class PresetsState(JsonState):
    mark: str  # the mark this session's Inform gives (written once converged)
    version: str  # the presets' version it was computed under
    round: int = 1
    pending: Pending = ""  # what is in flight
    preset: int = 0  # whose request it is
    index: int = 0  # add: the object's index in the preset
    table: str = ""  # add: its table
    values: tuple[tuple[str, Any, str], ...] = ()  # set: what was sent
    refreshed: bool = False  # asked this round already: unknown now means absent
    asking: tuple[str, ...] = ()  # refresh: the paths asked
    probe: tuple[str, ...] = ()  # paths still to ask one by one (a refresh of many faulted)
    changed: bool = False  # this round changed something
    done: tuple[int, ...] = ()  # presets settled this round
    failed: tuple[int, ...] = ()  # presets that failed this session
    history: tuple[tuple[str, int], ...] = ()  # (path, preset) set this session
    added: tuple[tuple[str, str], ...] = ()  # ("preset:index", instance) added this session
    reset_seen: bool = False  # a 0 BOOTSTRAP's reset: the secrets set before are forgotten
    finished: bool = False

    @classmethod
    def from_json(cls, data: Any) -> PresetsState:
        fields = dict(data)
        for name in ("values", "history", "added"):
            fields[name] = tuple(tuple(v) for v in fields.get(name, ()))
        for name in ("done", "failed", "asking", "probe"):
            fields[name] = tuple(fields.get(name, ()))
        return cls(**fields)


_DEVICE = hot.Statement(
    "SELECT id, oui, product_class, software_version, mode, tags, parameters, mac, "
    "presets_state FROM devices WHERE id = :id",
    columns=(
        "id",
        "oui",
        "product_class",
        "software_version",
        "mode",
        "tags",
        "parameters",
        "mac",
        "presets_state",
    ),
    types={"tags": JSONDoc, "parameters": JSONDoc, "presets_state": JSONDoc},
)
_SAVE = hot.Statement(
    "UPDATE devices SET presets_mark = :mark, presets_state = :state WHERE id = :id",
    binds={"state": JSONDoc},
)
_STATE = hot.Statement(
    "UPDATE devices SET presets_state = :state WHERE id = :id", binds={"state": JSONDoc}
)
_TAGS = hot.Statement("UPDATE devices SET tags = :tags WHERE id = :id", binds={"tags": JSONDoc})
_PHONE = hot.Statement(
    "INSERT INTO phones (mac, profile, variables, modules, updated) "
    "VALUES (:mac, :profile, :variables, :modules, :now) "
    "ON CONFLICT (mac) DO UPDATE SET profile = excluded.profile, updated = excluded.updated",
    binds={"variables": JSONDoc, "modules": OrderedJSON, "now": UTCDateTime()},
)
_TASK_STATUS = hot.Statement(
    "SELECT status FROM tasks WHERE id = :id AND device_id = :device_id", columns=("status",)
)
_ACTIVE = ("queued", "sent", "awaiting_transfer", "awaiting_boot")
# The phone row's profile, in a session's history of what it set: two presets that give a
# phone different profiles undo each other as two that set one path do.
PHONE_PROFILE: Final = "phone profile"


class Presets(Component[PresetsState]):
    name = "presets"
    State = PresetsState

    def __init__(self, settings: Settings, cache: presets.CatalogCache | None = None):
        self.settings = settings
        self.cache = cache or presets.CatalogCache()
        self.zone = ZoneInfo(settings.presets_timezone)

    # --- the Inform: converged devices stop here --------------------------------------

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> PresetsState | None:
        catalog = await self.cache.get(tx, known.presets_version if known.exists else None)
        if not catalog.presets:
            return None
        d = inform.device_id
        mark = catalog.mark(
            root=ctx.facts.root,
            oui=d.oui,
            product_class=d.product_class,
            software_version=ctx.facts.software_version,
            mode=ctx.facts.mode,
            values={p.name: p.value for p in inform.parameter_list},
        )
        if known.presets_mark is not None and "0 BOOTSTRAP" not in ctx.facts.events:
            stored, _, waiting = known.presets_mark.partition("|")
            if stored == mark and not self._due(catalog, waiting, ctx):
                return None  # converged: nothing to do, nothing read
        return PresetsState(mark=mark, version=catalog.version)

    def _due(self, catalog: Catalog, waiting: str, ctx: SessionContext) -> bool:
        """Whether a preset the mark left waiting (matching, not converged, and not acting
        then or backed off: ``<id>@<retry, epoch seconds>``) acts in this session."""
        local = ctx.now.astimezone(self.zone)
        for entry in filter(None, waiting.split(",")):
            ident, _, retry = entry.partition("@")
            if retry and int(retry) > ctx.now.timestamp():
                continue  # backed off until then
            preset = catalog.by_id(int(ident))
            if preset is None or preset.acts_on(ctx.facts.events, local):
                return True
        return False

    # --- the ACS's turn -----------------------------------------------------------------

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: PresetsState | None
    ) -> Offer[PresetsState] | None:
        if state is None or state.finished:
            return None
        if state.probe:  # one path a device lacks faulted them all: ask each alone
            path, rest = state.probe[0], state.probe[1:]
            request = m.GetParameterValues((path,))
            return Offer(
                request, "refresh", replace(state, pending="refresh", asking=(path,), probe=rest)
            )
        queued = False
        for _ in range(8 * presets.MAX_ROUNDS):  # bounded: each turn settles a preset or sends
            catalog = await self.cache.get(tx, state.version)
            row = await tx.first(_DEVICE, id=ctx.device_id)
            if row is None:
                return None
            kept: dict[str, Any] = dict(row.presets_state or {})
            if not state.reset_seen and "0 BOOTSTRAP" in ctx.facts.events:
                # a factory reset: the values set before (the ACS cannot read a secret back
                # to compare) are the device's defaults again
                state = replace(state, reset_seen=True)
                if kept.pop("secrets", None) is not None:
                    await tx.execute(_STATE, state=kept, id=ctx.device_id)
            facts = DeviceFacts(
                id=row.id,
                root=ctx.facts.root,
                oui=row.oui,
                product_class=row.product_class,
                software_version=row.software_version,
                mode=ctx.facts.mode,
                tags=tuple(row.tags or ()),
                tree=row.parameters or {},
                secrets=kept.get("secrets", {}),
            )
            local = ctx.now.astimezone(self.zone)
            matching = [p for p in catalog.presets if presets.matches(p.filter, facts) is not False]
            acting = [p for p in matching if p.acts_on(ctx.facts.events, local)]
            owned = presets.ownership(
                [p for p in acting if p.invalid is None and presets.matches(p.filter, facts)],
                facts,
                self.spread,
            )
            plans: list[Plan] = []
            for p in acting:
                if p.id in state.done or p.id in state.failed or self._backed_off(kept, p, ctx):
                    continue
                if p.invalid is not None:  # a value its type refuses (stored before checks)
                    code = faults.ACS_INVALID_ARGUMENTS
                    state = await self._fail(tx, ctx, state, p.id, code, p.invalid, "acs", kept)
                    continue
                if presets.matches(p.filter, facts) is None:
                    unknown = [q for q in p.filter_paths(facts.root) if not facts.knows(q)]
                    if state.refreshed:
                        continue  # still unknown once asked: the device has no such value
                    plans.append(Plan(p, refresh=unknown))
                    continue
                task = await self._firmware_task(tx, ctx, p, kept)
                if task is not None and task not in _ACTIVE:
                    # its Download ended without the version: a failure of the preset
                    kept[str(p.id)] = {
                        k: v for k, v in (kept.get(str(p.id)) or {}).items() if k != "task"
                    }
                    await tx.execute(_STATE, state=kept, id=ctx.device_id)
                    extras = await presets.load_extras(tx, p, facts, row.mac)
                    if presets.plan(p, facts, spread=self.spread, extras=extras).firmware:
                        string = f"its firmware Download ended {task}, the version differs"
                        state = await self._fail(
                            tx, ctx, state, p.id, faults.ACS_FIRMWARE_MISMATCH, string, "acs", kept
                        )
                        continue
                extras = await presets.load_extras(tx, p, facts, row.mac, pending=task in _ACTIVE)
                added = {k.partition(":")[2]: v for k, v in state.added if k.startswith(f"{p.id}:")}
                plans.append(
                    presets.plan(
                        p, facts, spread=self.spread, owned=owned, added=added, extras=extras
                    )
                )
            refresh = sorted({q for pl in plans for q in pl.refresh})
            if refresh and not state.refreshed:
                request = m.GetParameterValues(tuple(refresh))
                asked = replace(state, pending="refresh", refreshed=True, asking=tuple(refresh))
                return Offer(request, "refresh", asked)
            for pl in plans:
                if pl.refresh:  # asked this round, still unknown: set what it wants anyway
                    pl = self._set_unknown(pl, facts, owned)
                if pl.converged:
                    state = replace(state, done=(*state.done, pl.preset.id))
                    continue
                offer, state, wrote = await self._act(tx, ctx, state, pl, facts, kept, row.mac)
                if offer is not None:
                    return offer
                if wrote:
                    queued = queued or pl.firmware is not None
                    break  # rows changed: evaluate again
            else:
                # every acting preset settled this round
                if state.changed and state.round < presets.MAX_ROUNDS:
                    state = replace(state, round=state.round + 1, done=(), changed=False)
                    continue
                if state.changed:
                    await self._loop(tx, ctx, state, catalog, [], kept)
                    return Offer(None, "", replace(state, finished=True), queued=queued)
                await self._finish(tx, ctx, state, catalog, matching, acting, facts, kept)
                return Offer(None, "", replace(state, finished=True), queued=queued)
        return Offer(None, "", replace(state, finished=True), queued=queued)

    @property
    def spread(self) -> bool:
        return self.settings.spread_inform_time

    def _set_unknown(self, pl: Plan, facts: DeviceFacts, owned: dict[str, int]) -> Plan:
        """After a refresh, paths still unknown are set (the answer says if they exist)."""
        values = []
        for path, given in pl.preset.desired.parameters.items():
            full = presets.absolute(facts.root, path)
            if full in pl.refresh and owned.get(full, pl.preset.id) == pl.preset.id:
                values.append(presets.SetValue(full, *presets.typed(full, given)))
        return replace(pl, refresh=[], set=[*pl.set, *values])

    def _backed_off(self, kept: dict[str, Any], p: Preset, ctx: SessionContext) -> bool:
        entry = kept.get(str(p.id))
        retry = entry.get("retry") if isinstance(entry, dict) else None
        return retry is not None and xsd.parse_datetime(retry) > ctx.now  # type: ignore[operator]

    async def _firmware_task(
        self, tx: hot.Transaction, ctx: SessionContext, p: Preset, kept: dict[str, Any]
    ) -> str | None:
        """The status of the Download this preset queued, if any."""
        entry = kept.get(str(p.id)) or {}
        task_id = entry.get("task")
        if p.desired.firmware is None or task_id is None:
            return None
        row = await tx.first(_TASK_STATUS, id=task_id, device_id=ctx.device_id)
        return "cancelled" if row is None else str(row.status)

    async def _act(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        state: PresetsState,
        pl: Plan,
        facts: DeviceFacts,
        kept: dict[str, Any],
        mac: str | None,
    ) -> tuple[Offer[PresetsState] | None, PresetsState, bool]:
        """The next step of one preset's plan: a request to send, or rows written."""
        p = pl.preset
        writes = [s.path for s in pl.set]
        if pl.phone_profile is not None and mac:
            writes.append(PHONE_PROFILE)
        looping = [w for w in writes if any(path == w for path, _ in state.history)]
        if looping:
            await self._loop(
                tx,
                ctx,
                replace(state, history=(*state.history, (looping[0], p.id))),
                None,
                looping,
                kept,
            )
            return Offer(None, "", replace(state, finished=True)), state, False
        if pl.tags:
            await tx.execute(_TAGS, tags=sorted({*facts.tags, *pl.tags}), id=ctx.device_id)
            return None, replace(state, changed=True), True
        if pl.phone_profile is not None and mac:
            await tx.execute(
                _PHONE,
                mac=presets.phone_mac(mac),
                profile=pl.phone_profile,
                variables={},
                modules={},
                now=ctx.now,
            )
            history = (*state.history, (PHONE_PROFILE, p.id))
            return None, replace(state, changed=True, history=history), True
        if pl.firmware is not None:
            spec = task_specs.TASK_ADAPTER.validate_python(
                {"name": "Download", "file": pl.firmware}
            )
            [task] = await tasks.queue_in(
                tx,
                ctx.device_id,
                [spec],
                created_by=p.channel,
                now=ctx.now,
                default_ttl=self.settings.task_default_ttl,
            )
            entry = dict(kept.get(str(p.id)) or {})
            entry["task"] = task["id"]
            kept[str(p.id)] = entry
            await tx.execute(_STATE, state=kept, id=ctx.device_id)
            return None, replace(state, changed=True), True
        if pl.add:
            add = pl.add[0]
            adding = m.AddObject(add.table, parameter_key=f"preset-{p.id}")
            after = replace(state, pending="add", preset=p.id, index=add.index, table=add.table)
            return Offer(adding, f"{p.id}", after), state, False
        if pl.set:
            values = tuple(s.as_json() for s in pl.set)
            request = m.SetParameterValues(
                tuple(m.ParameterValueStruct(s.path, s.value, s.type) for s in pl.set),
                parameter_key=f"preset-{p.id}",
            )
            after = replace(state, pending="set", preset=p.id, values=values)  # type: ignore[arg-type]
            return Offer(request, f"{p.id}", after), state, False
        return None, replace(state, done=(*state.done, p.id)), False

    async def _finish(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        state: PresetsState,
        catalog: Catalog,
        matching: list[Preset],
        acting: list[Preset],
        facts: DeviceFacts,
        kept: dict[str, Any],
    ) -> None:
        """Every acting preset settled: remember it, unless one failed or waits."""
        for p in acting:  # settled now: its failures are history (a backed-off one waits)
            if p.id in state.done and p.id not in state.failed and str(p.id) in kept:
                entry = {k: v for k, v in kept[str(p.id)].items() if k == "task"}
                if entry:
                    kept[str(p.id)] = entry
                else:
                    kept.pop(str(p.id))
        # a Download under way: not converged yet (its end is seen by evaluating)
        blocked = any(str(p.id) in kept and "task" in kept[str(p.id)] for p in matching)
        mark = None
        if not blocked and catalog.version == state.version:
            waiting = []
            for p in matching:
                retry = xsd.parse_datetime((kept.get(str(p.id)) or {}).get("retry"))
                if retry is not None:  # failed, backed off: waits for its time
                    waiting.append(f"{p.id}@{int(retry.timestamp())}")
                elif p not in acting and (
                    p.invalid is not None  # it faults when it acts
                    or presets.matches(p.filter, facts) is None
                    or not presets.plan(p, facts, spread=self.spread).converged
                ):
                    waiting.append(str(p.id))
            mark = f"{state.mark}|{','.join(waiting)}" if waiting else state.mark
            if len(mark) > _MARK_LENGTH:  # too many waiting to name: evaluated at every Inform
                mark = None
        await tx.execute(_SAVE, mark=mark, state=kept or None, id=ctx.device_id)

    # --- answers ------------------------------------------------------------------------

    async def on_answer(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        ref_id: str,
        answer: Answer,
        state: PresetsState | None,
    ) -> Answered[PresetsState]:
        if state is None or not state.pending:
            return Answered(state)
        pending = replace(state, pending="", values=(), asking=())
        applying = results.Applying(
            tx,
            ctx.device_id,
            0,
            ctx.now,
            self.settings.silent_grace,
            self.settings.watched_parameter_list,
        )
        if state.pending == "refresh":
            if isinstance(answer, cs.ResponseReceived):
                asked = {"name": "GetParameterValues", "parameter_names": ["x"]}
                await results.apply(applying, "GetParameterValues", asked, answer.response)
                got = [p.name for p in answer.response.parameter_list]
                empty = {  # objects that are there and hold nothing: known now, as empty
                    path: {"object": True}
                    for path in state.asking
                    if path.endswith(".") and not any(n.startswith(path) for n in got)
                }
                await queries.merge_parameters(tx, ctx.device_id, empty)
            elif len(state.asking) > 1:  # one path the device lacks faults them all (9005)
                return Answered(replace(pending, probe=state.asking))
            return Answered(pending)  # a path the device lacks: unknown now means absent
        if not isinstance(answer, cs.ResponseReceived):
            return Answered(await self._failed(tx, ctx, pending, state.preset, answer))
        if state.pending == "add":
            instance = f"{state.table}{answer.response.instance_number}."
            await queries.merge_parameters(tx, ctx.device_id, {instance: {"object": True}})
            key = f"{state.preset}:{state.index}"
            return Answered(replace(pending, changed=True, added=(*state.added, (key, instance))))
        # set: into the tree as a SetParameterValues task's would go (interval, watches)
        spec: dict[str, Any] = {
            "name": "SetParameterValues",
            "parameter_values": [{"name": n, "value": v, "type": t} for n, v, t in state.values],
            "parameter_key": f"preset-{state.preset}",
        }
        await results.apply(applying, "SetParameterValues", spec, answer.response)
        secrets = {n: presets.secret_digest(v) for n, v, _ in state.values if _is_secret(n)}
        if secrets:
            row = await tx.first(_DEVICE, id=ctx.device_id)
            kept = dict((row.presets_state if row is not None else None) or {})
            kept["secrets"] = {**kept.get("secrets", {}), **secrets}
            await tx.execute(_STATE, state=kept, id=ctx.device_id)
        history = (*state.history, *((n, state.preset) for n, _, _ in state.values))
        return Answered(replace(pending, changed=True, history=history))

    async def _failed(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        state: PresetsState,
        preset_id: int,
        answer: Answer,
    ) -> PresetsState:
        """A preset's request faulted or went unanswered: back it off, record it."""
        if isinstance(answer, cs.FaultReceived):
            code, string = answer.fault.fault_code, answer.fault.fault_string
        elif isinstance(answer, cs.RequestUnanswered):
            code, string = faults.ACS_NO_ANSWER, answer.reason
        else:
            code, string = faults.ACS_INVALID_RESPONSE, ""
        source = "cpe" if isinstance(answer, cs.FaultReceived) else "acs"
        return await self._fail(tx, ctx, state, preset_id, code, string, source)

    async def _fail(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        state: PresetsState,
        preset_id: int,
        code: int,
        string: str,
        source: str,
        kept: dict[str, Any] | None = None,
    ) -> PresetsState:
        """Back the preset off on this device (``kept``: the device's presets_state as this
        request holds it, updated in place), record the fault and the event."""
        catalog = await self.cache.get(tx, state.version)
        preset = catalog.by_id(preset_id)
        name = preset.name if preset is not None else str(preset_id)
        if kept is None:
            row = await tx.first(_DEVICE, id=ctx.device_id)
            kept = dict((row.presets_state if row is not None else None) or {})
        entry = dict(kept.get(str(preset_id)) or {})
        failures = int(entry.get("failures", 0)) + 1
        retry = ctx.now + timedelta(seconds=presets.backoff(failures))
        entry.update(failures=failures, retry=xsd.format_datetime(retry), fault=code)
        kept[str(preset_id)] = entry
        await tx.execute(_SAVE, mark=None, state=kept, id=ctx.device_id)
        detail = {"channel": f"preset:{name}", "preset": name, "failures": failures}
        await fault_log.record(
            tx,
            device_id=ctx.device_id,
            task_id=None,
            now=ctx.now,
            source=source,
            code=code,
            string=string or faults.describe(code),
            detail=detail,
        )
        await events.record(
            tx,
            ctx.now,
            [
                NewEvent(
                    EventType.PRESET_FAULT,
                    ctx.device_id,
                    {**detail, "code": code, "retry": xsd.format_datetime(retry)},
                )
            ],
        )
        return replace(state, failed=(*state.failed, preset_id))

    async def _loop(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        state: PresetsState,
        catalog: Catalog | None,
        paths: list[str],
        kept: dict[str, Any],
    ) -> None:
        """Presets undo each other: report it once per session and back them off."""
        catalog = catalog or await self.cache.get(tx, state.version)
        involved = sorted({pid for path, pid in state.history if not paths or path in paths})
        names = [p.name for pid in involved if (p := catalog.by_id(pid)) is not None]
        for pid in involved:
            entry = dict(kept.get(str(pid)) or {})
            failures = int(entry.get("failures", 0)) + 1
            retry = ctx.now + timedelta(seconds=presets.backoff(failures))
            entry.update(
                failures=failures, retry=xsd.format_datetime(retry), fault=faults.ACS_PRESET_LOOP
            )
            kept[str(pid)] = entry
        await tx.execute(_SAVE, mark=None, state=kept, id=ctx.device_id)
        detail = {
            "channel": ",".join(f"preset:{n}" for n in names),
            "presets": names,
            "paths": paths or sorted({path for path, _ in state.history}),
            "rounds": state.round,
        }
        await fault_log.record(
            tx,
            device_id=ctx.device_id,
            task_id=None,
            now=ctx.now,
            source="acs",
            code=faults.ACS_PRESET_LOOP,
            string=faults.describe(faults.ACS_PRESET_LOOP),
            detail=detail,
        )
        await events.record(tx, ctx.now, [NewEvent(EventType.PRESET_LOOP, ctx.device_id, detail)])


def _is_secret(name: str) -> bool:
    from acs.services.inform import is_secret

    return is_secret(name)


_MARK_LENGTH: Final = 255  # devices.presets_mark's length
