"""Generated months for the response-time and resident reports, with the known truth returned.

Everything goes into a real store through the code the receiving service runs: alarms recorded
by EventStore.record with the CaseDesk opening cases in the same transaction, staff case actions
signed with staff keys and checked by CaseDesk.act, and (for a resident) the device's own
AuditLog writing a sealed, hash-chained trail whose entries are forwarded as real `audit`
events, sealed and signed by the home's key, with the device's signed command results beside
them. The generator decides every time and outcome first, so the truth is what it decided, not
what the store says.
"""

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from base.keys import Identity, write_private, write_public
from center import config as cfgmod
from center.reports.stats import month_bounds
from center.staffsign import SignedAction
from center.store import EventStore, Received
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import EventMessage, encode
from tests.support.reportyear import poisson

ZONE = "Europe/Stockholm"
KINDS = ("fall", "help", "bed_exit", "door_open")
OUTCOMES = ("helped", "helped", "helped", "injured", "ambulance", "not_home", "technical")
NOTES = ("Låg på golvet i hallen, hjälpt upp", "Trafikstörning på väg 31", "Två larm samtidigt i området",
         "Nyckelgömman var tom", "Brukaren ville ha sällskap")
STAFF = ("anna", "bo", "cilla", "david", "elin", "fredrik")


@dataclass
class Center:
    root: Path
    config: Path
    cfg: cfgmod.CenterConfig
    key: Identity
    staff: dict[str, Identity]


def _toml(value) -> str:
    return json.dumps(value, ensure_ascii=True)  # a JSON string or list of strings is valid TOML


def make_center(root: Path, areas: dict[str, dict] | None = None, answer_min: float = 3,
                on_site_min: float = 30) -> Center:
    """A center directory with its key, staff keys and a config whose [promise] has these areas
    ({name: {label, homes, answer_within_min?, on_site_within_min?}})."""
    root.mkdir(parents=True, exist_ok=True)
    key = Identity.generate("center")
    write_private(key, root / "center.key")
    write_public(key.public(), root / "center.pub")
    (root / "staff").mkdir(mode=0o700)
    (root / "homes").mkdir()
    staff = {name: Identity.generate(name) for name in STAFF}
    for name, identity in staff.items():
        write_public(identity.public(), root / "staff" / f"{name}.pub")
    lines = ['[center]', 'name = "center"', '[broker]', 'host = "127.0.0.1"', 'ca = "ca.pem"', 'cert = "c.pem"',
             'key = "k.pem"', '[promise]', f'answer_within_min = {answer_min}', f'on_site_within_min = {on_site_min}',
             f'time_zone = "{ZONE}"']
    for name, area in (areas or {}).items():
        lines.append(f'[promise.areas.{name}]')
        lines += [f'{k} = {_toml(v)}' for k, v in area.items()]
    config = root / "center.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Center(root, config, cfgmod.load(config), key, staff)


@dataclass
class TrueCase:
    home: str
    area: str
    kind: str
    opened: float
    accepted: float | None
    on_site: float | None
    closed: float | None
    outcome: str | None
    note: str | None
    late_answer: bool  # what the generator decided, not what a report says
    late_on_site: bool
    id: str = ""


def _plan_case(rand: random.Random, home: str, area: str, opened: float, terms) -> TrueCase:
    """One case's times: mostly inside the promise, some just over, some far over, some called off."""
    late_answer = rand.random() >= 0.85
    answer = terms.answer_s * (rand.uniform(1.03, 5) if late_answer else rand.uniform(0.08, 0.95))
    kind = rand.choice(KINDS)
    note = rand.choice(NOTES) if rand.random() < 0.45 else None
    if rand.random() < 0.12:  # called off by phone: closed without a visit, mostly soon
        late = rand.random() >= 0.8
        close = terms.on_site_s + rand.uniform(60, 1200) if late else answer + rand.uniform(0.02, 0.3) * terms.on_site_s
        return TrueCase(home, area, kind, opened, opened + answer, None, opened + close, "false_alarm", note,
                        late_answer, late)
    late = rand.random() >= 0.85
    on_site = max(terms.on_site_s * (rand.uniform(1.03, 1.8) if late else rand.uniform(0.2, 0.95)), answer + 30)
    assert late == (on_site > terms.on_site_s), "the plan must know its own truth"
    close = on_site + rand.uniform(300, 3600)
    return TrueCase(home, area, kind, opened, opened + answer, opened + on_site, opened + close, rand.choice(OUTCOMES),
                    note, late_answer, late)


def fill_cases(center: Center, store: EventStore, homes: dict[str, str], months: list[str], seed: int = 18,
               per_home_month: float = 1.5, left_open: float = 0.01,
               planted: dict[str, list[float]] | None = None, keep_open: frozenset = frozenset()) -> list[TrueCase]:
    """Cases for homes ({home: area or ""}) over these months and two days either side, plus the
    alarm times planted per home; returns the truth. A few cases (left_open) are left as they
    stand, open or accepted with nobody there (late on site whenever the report is made), and so
    is a planted alarm of a home in keep_open."""
    from center.service import case_desk

    rand = random.Random(seed)
    cfg = center.cfg
    desk = case_desk(cfg, store, [center.key])
    first, _ = month_bounds(months[0], ZONE)
    _, last = month_bounds(months[-1], ZONE)
    start, end = first - 2 * 86400, last + 2 * 86400
    device = Identity.generate("hem-pool")
    pool = [envelope.seal(encode(EventMessage(id=new_id(), home="hem-pool", cls="alarm", kind="fall", time=start,
                                              clock_synced=True, body={"n": i})),
                          topics.up("hem-pool", "alarm"), device.sign, center.key.kem.public) for i in range(8)]
    truth: list[TrueCase] = []
    for home, area in homes.items():
        terms = cfg.promise.terms(area or "ovriga")
        count = poisson(rand, per_home_month * len(months) + per_home_month * 4 / 30)
        times = sorted([rand.uniform(start, end) for _ in range(count)] + (planted or {}).get(home, []))
        last_close = -1e18
        for at in times:
            if at < last_close + 600:
                continue  # still open: a new alarm would join that case, not open one
            case = _plan_case(rand, home, area or "ovriga", at, terms)
            kept = home in keep_open and at in (planted or {}).get(home, [])
            if kept or (rand.random() < left_open and at > end - 5 * 86400):
                taken = rand.random() < 0.5
                case = TrueCase(home, case.area, case.kind, at, case.accepted if taken else None, None, None, None,
                                None, case.late_answer or not taken, True)
            truth.append(case)
            last_close = case.closed if case.closed is not None else 1e18
    staff = list(center.staff.values())
    with store.db.tx():  # one transaction: the build's speed is not a figure
        for case in sorted(truth, key=lambda c: c.opened):
            event = EventMessage(id=new_id(), home=case.home, cls="alarm", kind=case.kind, time=case.opened,
                                 clock_synced=True, body={})
            row = Received(event.id, case.home, "alarm", topics.up(case.home, "alarm"), rand.choice(pool), case.opened)
            store.record([row], lambda tx, new, e=event: desk.on_events(tx, [(e, r.received) for r in new]))
            case.id = desk.open_case_of(case.home).id
            who = rand.choice(staff)
            steps = [("accept", case.accepted, {}), ("on_site", case.on_site, {}),
                     ("close", case.closed, {"outcome": case.outcome, "note": case.note})]
            for action, at, args in steps:
                if at is not None:
                    desk.act(SignedAction.make(who, case.id, action, at, args), at)
    return truth


# -- a resident's month: the device's audit trail, its command results, its cases ---------------
@dataclass
class Visit:
    what: str  # lookin | unlock
    at: float
    staff: str
    role: str
    outcome: str  # done | refused
    code: str = ""
    privacy: str | None = None
    capture_ms: float | None = None
    lock: str = "front-door"
    locked_after_s: float | None = None  # None: not locked again through the system
    case_kinds: list[str] | None = None  # the alarm that brought them; None: a planned visit
    command: str = field(default_factory=new_id)
    seq: int = 0


def fill_resident(center: Center, store: EventStore, home: str, name: str, month: str, work: Path,
                  staff: tuple[str, ...], seed: int = 7, tamper: int | None = None) -> list[Visit]:
    """One home's month of look-ins and door entries, as its device audits them; the truth.
    tamper=N: the device's entry N is altered after it was chained (before it was forwarded)."""
    from agent.audit import AuditLog
    from agent.trustdb import AtRest, TrustDB
    from center.atrest import Sealer
    from center.residents import RESIDENT_CONTEXT, ResidentCard, Residents
    from center.service import case_desk
    from tests.support.fakes import FakeClock

    rand = random.Random(seed)
    start, _end = month_bounds(month, ZONE)
    device = Identity.generate(home)
    write_public(device.public(), center.cfg.center.homes_dir / f"{home}.pub")
    Residents(store.db, Sealer([center.key], RESIDENT_CONTEXT)).set(
        home, ResidentCard(name=name, address=f"{name.split()[0]}s väg 3", locks={"front-door": "Ytterdörren"}), start)
    visits: list[Visit] = []
    for day in range(0, 28, 2):
        night = start + day * 86400 + 22 * 3600
        who = rand.choice(staff)
        visits.append(Visit("lookin", night + rand.uniform(0, 6 * 3600), who, "night-staff",
                            *(("done", "") if rand.random() < 0.8 else ("refused", "used_up")),
                            privacy=rand.choice(("none", "blur", "silhouette")), capture_ms=rand.uniform(400, 2500)))
        if day % 4 == 0:
            alarm = rand.random() < 0.5
            visits.append(Visit("unlock", night + rand.uniform(0, 6 * 3600), rand.choice(staff), "night-staff", "done",
                                locked_after_s=rand.uniform(300, 2400) if rand.random() < 0.85 else None,
                                case_kinds=[rand.choice(KINDS)] if alarm else None))
    visits.sort(key=lambda v: v.at)
    desk = case_desk(center.cfg, store, [center.key])
    db = TrustDB(work / f"{home}-trust.db", AtRest(home, device, lambda: center.key.kem.public))
    clock = FakeClock(datetime.fromtimestamp(start - 3600, UTC))
    log = AuditLog(db, clock)

    def send(kind: str, body: dict, at: float) -> None:
        event = EventMessage(id=new_id(), home=home, cls="event", kind=kind, time=at, clock_synced=True, body=body)
        topic = topics.up(home, "event")
        sealed = envelope.seal(encode(event), topic, device.sign, center.key.kem.public)
        store.record([Received(event.id, home, "event", topic, sealed, at + 1.0)],
                     lambda tx, new: desk.on_events(tx, [(event, r.received) for r in new]))

    def audit(kind: str, detail: dict, at: float) -> int:
        clock.wall = datetime.fromtimestamp(at, UTC)
        entry = log.append(kind, detail)
        body = entry.to_json()
        if entry.seq == tamper:
            body["time"] += 600.0  # moved ten minutes after it was chained
        send("audit", body, at)
        return entry.seq

    def command(v: Visit, action: str, at: float, result: dict) -> int:
        detail = {"outcome": v.outcome, "code": v.code, "reason": "" if v.outcome == "done" else v.code,
                  "bytes": 400, "command": v.command if action != "lock" else v.command + "-lock", "action": action,
                  "staff": v.staff, "role": v.role}
        seq = audit("command", detail, at)
        send("command_result", {**{k: detail[k] for k in ("command", "action", "outcome", "code", "reason", "staff",
                                                            "role")}, **result}, at)
        return seq

    audit("start", {"config_sha256": "ab" * 32, "center_key": "k1"}, start - 3000)
    for name_ in staff:
        audit("staff_added", {"name": name_, "role": "night-staff", "kid": name_, "replaced": False}, start - 2000)
    for v in visits:
        if v.what == "lookin":
            v.seq = command(v, "lookin", v.at, {"args": {}, "frames": 3, "privacy": v.privacy, "left": 1,
                                                "capture_ms": round(v.capture_ms, 1)} if v.outcome == "done" else {"args": {}})
            continue
        case_id = None
        if v.case_kinds:
            alarm = EventMessage(id=new_id(), home=home, cls="alarm", kind=v.case_kinds[0], time=v.at - 600,
                                 clock_synced=True, body={})
            store.record([Received(alarm.id, home, "alarm", topics.up(home, "alarm"), b"sealed", v.at - 600)],
                         lambda tx, new, a=alarm: desk.on_events(tx, [(a, r.received) for r in new]))
            case_id = desk.open_case_of(home).id
            desk.act(SignedAction.make(center.staff[v.staff], case_id, "accept", v.at - 500), v.at - 500)
        v.seq = command(v, "unlock", v.at, {"args": {"lock": v.lock}})
        if v.locked_after_s is not None:
            command(v, "lock", v.at + v.locked_after_s, {"args": {"lock": v.lock}})
        if case_id:
            closed = v.at + (v.locked_after_s or 900) + 60
            desk.act(SignedAction.make(center.staff[v.staff], case_id, "close", closed, {"outcome": "helped"}), closed)
    db.close()
    return visits
