"""Checking one home's audit chain as the center holds it: the `audit` events the device forwarded.

Owns the judgement only: `check(entries)` takes the event bodies (any order, duplicates as
stored) and names the first entry that does not fit; `render(report)` words it for staff. Never
reads the store, opens envelopes or prints: the caller does that (`trygg center audit verify`).

What the device chains (agent/audit.py, the hash in protocol/auditchain.py): entry 1 follows
GENESIS, entry n's `prev` is entry n-1's `hash`, and `hash` covers prev, seq, time, synced, kind,
the detail *as stored on the device* and, for a sealed entry, the sealed bytes. A forwarded body
is `AuditEntry.to_json()`: those fields, `detail` (all of it in the plain form, only the readable
part in the sealed form) and `sealed` (base64, or null in the plain form). The checks, in order,
for each seq from the first the center holds:

1. gap: seq n-1 is held and n is not, but a later one is ("entry n is missing");
2. duplicates: two copies of one seq that differ in what the hash covers (tampering);
3. shape: the fields are of the types the device sends;
4. link: `prev` is entry n-1's `hash` (GENESIS for entry 1) — a swap, a replacement or a
   rewritten device log breaks it;
5. own hash: recomputed as the device does, when the body still holds what it covers.

What it cannot see, and why:
- The hash covers the sealed bytes, and the center's opener (center/opening.py) drops them when
  it opens the detail. So pass the bodies as forwarded (before opening) for check 5 on every
  entry; for an opened or unopened body (`sealed` missing, or `sealed: True`) and for an entry
  the device sent without its detail because it was too large (`detail: {"truncated": true}`),
  only checks 1–4 apply. `hashes_checked` in the report says how many entries check 5 covered.
- Truncation: the device reports its newest seq nowhere the center sees (not in status, not in
  the entries), so entries cut off the end before they were forwarded look like entries not
  sent yet. The report gives the last entry and its time; staff compare it with
  `trygg audit verify` on the device ("intact: N entries", N being its newest seq).
- The start: a home enrolled later, or whose older events were expired, is forwarded from the
  middle, so the first entry the center holds is taken as the start ("from entry N"); only a
  held entry 1 must follow GENESIS. Likewise a missing first entry cannot be told from that.
- Whoever controls the device can write any chain before it is forwarded; what the center holds
  cannot be changed afterwards without this check naming it.

Re-sealing: when the device seals entries an older version wrote in plain, it re-hashes its
chain from entry 1 and appends an `audit_sealed` entry whose readable `old_head` is the old
"seq:hash" (agent/audit.py). Entries forwarded before that keep their old hashes here, so the
first entry forwarded after it does not link. That break is accepted when it is explained: an
`audit_sealed` entry follows, the entries between are in the sealed form, and its old head is
entry n-1 as held here — or, when entries were re-sealed before they were forwarded, the old
hash recomputed through them (which needs their opened detail; without it the break is
accepted on the `audit_sealed` entry's word, and the report notes it).
"""

import base64
import binascii
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from protocol.auditchain import GENESIS, canonical, entry_hash

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TRUNCATED = {"truncated": True}  # what the device forwards when an entry is too large to send


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int  # distinct seqs held
    first_seq: int | None
    last_seq: int | None
    first_bad: int | None  # seq of the first entry that does not fit (None when ok, or no seq to name)
    problem: str | None  # one sentence naming that entry and what is wrong
    last_time: float | None = None  # the device's time of the last entry (UTC seconds)
    last_synced: bool = True  # whether the device's clock was synchronized for it
    hashes_checked: int = 0  # entries whose own hash was recomputed (check 5), up to the first bad one
    notes: tuple[str, ...] = field(default_factory=tuple)  # what was accepted but is worth knowing

    @property
    def from_start(self) -> bool:
        return self.first_seq == 1

    def to_json(self) -> dict:
        return {**asdict(self), "notes": list(self.notes), "from_start": self.from_start}


@dataclass(frozen=True)
class _Entry:
    seq: int
    prev: Any
    hash: Any
    time: Any
    synced: Any
    kind: Any
    detail: Any
    form: str  # plain | sealed (as forwarded) | opened | unopened | truncated | bad
    sealed: bytes | None

    @property
    def checkable(self) -> bool:
        return self.form in ("plain", "sealed")

    @property
    def core(self) -> tuple:
        return (self.prev, self.hash, repr(self.time), self.synced, self.kind)

    @property
    def content(self) -> tuple:
        return (*self.core, self.form, _canon(self.detail), self.sealed)


def _canon(detail: Any) -> str:
    return canonical(detail) if isinstance(detail, dict) else repr(detail)


def _form(body: dict) -> tuple[str, bytes | None]:
    if "sealed" not in body:
        return "opened", None
    sealed = body["sealed"]
    if sealed is None:
        return ("truncated" if body.get("detail") == _TRUNCATED else "plain"), None
    if sealed is True:
        return "unopened", None
    if isinstance(sealed, str):
        try:
            return "sealed", base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError):
            return "bad", None
    return "bad", None


def _entry(body: Any) -> _Entry | None:
    if not isinstance(body, dict):
        return None
    seq = body.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    form, sealed = _form(body)
    return _Entry(seq, body.get("prev"), body.get("hash"), body.get("time"), body.get("synced"), body.get("kind"),
                  body.get("detail"), form, sealed)


def _malformed(e: _Entry) -> str | None:
    """Which field is not what the device sends, if any."""
    for name, good in (("prev", isinstance(e.prev, str) and _HEX64.match(e.prev)),
                       ("hash", isinstance(e.hash, str) and _HEX64.match(e.hash)),
                       ("time", isinstance(e.time, float)),
                       ("synced", isinstance(e.synced, bool)),
                       ("kind", isinstance(e.kind, str)),
                       ("detail", isinstance(e.detail, dict)),
                       ("sealed", e.form != "bad")):
        if not good:
            return name
    return None


def _own_hash(e: _Entry) -> str:
    return entry_hash(e.prev, e.seq, e.time, e.synced, e.kind, canonical(e.detail), e.sealed)


def _pick(copies: list[_Entry]) -> tuple[_Entry, bool]:
    """The copy to walk with (one whose hash can be recomputed, if any), and whether the copies
    differ in what the hash covers (the same form compared in full, other forms by their core)."""
    rank = ("sealed", "plain", "opened", "unopened", "truncated", "bad")
    chosen = min(copies, key=lambda c: rank.index(c.form))
    differ = any(c.core != chosen.core or (c.form == chosen.form and c.content != chosen.content) for c in copies)
    return chosen, differ


def _full_detail(e: _Entry) -> dict:
    """An opened entry's detail as the device once stored it in plain: the opener merges the
    readable part into the full detail, and only `reason_kind` is the readable part's own."""
    detail = dict(e.detail)
    if e.kind == "command" and "reason" in detail:
        detail.pop("reason_kind", None)
    return detail


def _resealed(held: dict[int, _Entry], n: int) -> tuple[bool, str]:
    """Entry n does not link to entry n-1: is it the device's re-sealing (module docstring)?
    (accepted, the note when accepted or the problem when not)."""
    before, m = held[n - 1], n
    while m in held and held[m].kind != "audit_sealed":
        if held[m].form in ("plain", "truncated"):
            return False, ""
        m += 1
    if m not in held or before.form != "plain":
        return False, ""
    old = held[m].detail.get("old_head") if isinstance(held[m].detail, dict) else None
    seq_text, _, old_hash = str(old).partition(":")
    if seq_text != str(m - 1):
        return False, (f"entry {n} does not follow entry {n - 1}, and entry {m} (audit_sealed) names "
                       f"{str(old)[:80]!r} as the old head instead of entry {m - 1}")
    digest, opened = before.hash, True
    for i in range(n, m):
        if held[i].form != "opened":
            opened = False
            break
        e = held[i]
        digest = entry_hash(digest, i, e.time, e.synced, e.kind, canonical(_full_detail(e)), None)
    if m == n or opened:
        if digest != old_hash:
            return False, (f"entry {n} does not follow entry {n - 1}: the device re-sealed its trail at entry {m}, "
                           f"but the old head it names is not the chain the center holds")
        return True, f"the device re-sealed its older entries at entry {m}; the old head it names matches"
    return True, (f"the device re-sealed its older entries at entry {m}; entries {n}..{m - 1} were forwarded "
                  f"after that, so their link to entry {n - 1} rests on entry {m}'s word")


def check(entries: list[dict]) -> ChainReport:
    """The first entry of one home's forwarded audit chain that does not fit, if any (see the
    module docstring for the checks and their order)."""
    held: dict[int, list[_Entry]] = {}
    unplaced = 0
    for body in entries:
        e = _entry(body)
        if e is None:
            unplaced += 1
        else:
            held.setdefault(e.seq, []).append(e)
    if not held:
        problem = f"{unplaced} audit events have no valid seq" if unplaced else None
        return ChainReport(not unplaced, 0, None, None, None, problem)
    seqs = sorted(held)
    chosen: dict[int, _Entry] = {}
    differ: set[int] = set()
    for s in seqs:
        chosen[s], changed = _pick(held[s])
        if changed:
            differ.add(s)
    last = chosen[seqs[-1]]
    base = {"entries": len(seqs), "first_seq": seqs[0], "last_seq": seqs[-1],
            "last_time": last.time if isinstance(last.time, float) else None, "last_synced": last.synced is not False}
    checked, notes = 0, []

    def bad(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, first_bad=seq, problem=problem, hashes_checked=checked, notes=tuple(notes), **base)

    for i, s in enumerate(seqs):
        e = chosen[s]
        if i and seqs[i - 1] != s - 1:
            after = seqs[i - 1]
            missing = f"entry {after + 1} is" if after + 1 == s - 1 else f"entries {after + 1}..{s - 1} are"
            return bad(after + 1, f"{missing} missing: the center holds entry {after} and then entry {s}")
        if s in differ:
            return bad(s, f"entry {s} was received twice with different contents (altered after it was sent)")
        wrong = _malformed(e)
        if wrong:
            return bad(s, f"entry {s} is malformed: its {wrong} is not what the device sends")
        if s == 1 and e.prev != GENESIS:
            return bad(s, "entry 1 does not start a chain: its previous hash is not the genesis hash")
        if s != seqs[0] and e.prev != chosen[s - 1].hash:
            accepted, why = _resealed(chosen, s)
            if not accepted:
                return bad(s, why or f"entry {s} does not follow entry {s - 1}: its previous hash is not "
                                     f"entry {s - 1}'s hash (entries swapped, replaced or rewritten)")
            notes.append(why)
        if e.checkable:
            if _own_hash(e) != e.hash:
                return bad(s, f"entry {s} ({e.kind}) was altered: its hash does not match its contents")
            checked += 1
    if unplaced:
        return ChainReport(False, first_bad=None, problem=f"{unplaced} audit events have no valid seq",
                           hashes_checked=checked, notes=tuple(notes), **base)
    return ChainReport(True, first_bad=None, problem=None, hashes_checked=checked, notes=tuple(notes), **base)


def _when(t: float | None, synced: bool) -> str:
    if t is None:
        return "an unknown time"
    try:
        text = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a time no device sends: show it as it came
        text = repr(t)
    return text if synced else f"{text} (device clock not synchronized)"


def render(report: ChainReport) -> str:
    """One or two lines for staff: the verdict, then the last entry to compare with the device."""
    if report.first_seq is None:
        return f"audit chain BROKEN: {report.problem}" if report.problem else "no audit entries from this home yet"
    start = "from the start" if report.from_start else \
        f"from entry {report.first_seq} (the center holds none before it)"
    if report.ok:
        head = (f"audit chain intact {start} to entry {report.last_seq}, {report.hashes_checked} of "
                f"{report.entries} hashes recomputed" + "".join(f"; {n}" for n in report.notes))
    else:
        where = f" at entry {report.first_bad}" if report.first_bad is not None else ""
        head = f"audit chain BROKEN{where}: {report.problem} (held: entries {report.first_seq}..{report.last_seq})"
    last = (f"last entry {report.last_seq} at {_when(report.last_time, report.last_synced)}: if `trygg audit "
            f"verify` on the device counts more entries, the rest have not reached the center (unsent or cut off)")
    return f"{head}\n{last}"
