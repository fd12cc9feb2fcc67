"""Commands from night staff: judge every one, act only on those that pass, audit and answer all.

A command arrives on trygg/v1/<home>/down/cmd. It is acted on only when all hold, checked in
this order (the first failure is the reason given):

  1. it is not oversized, and arrived on this home's command topic;
  2. the envelope opens with the device key and is signed by an enrolled staff key;
  3. the body is a valid command for this home;
  4. its id was never seen (replay cache), and that staff member is not revoked;
  5. it is fresh (time window or challenge, freshness.py);
  6. the member's role allows the action, and the lock's rule allows it now (policy.py).

Every attempt is audited with its verdict, its stable code (protocol/refusals.py: the check
that failed and, after a dot, why) and a reason for people. Every new command that was
verifiably signed by enrolled staff also gets a signed result event (`command_result`: done,
refused or failed, with the code and the reason), sealed to the center through the outbox like
any event; a replay gets none: the original was answered, and a replayed copy is an attacker's
or the broker's, so it is audited and otherwise ignored. Hostile input is normal here: messages are judged on
this module's own thread from a bounded queue (a flood costs dropped messages, counted, never
the uplink or the alarms), and refusals beyond refusals_audited_per_min, and dropped
messages, are counted and audited as one summary per minute.
"""

import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .audit import AuditLog
from .config import CommandsConfig
from base.errors import EnvelopeError
from protocol.events import Event
from .freshness import Freshness
from base.keys import Identity
from .policy import Policy
from protocol import envelope, topics
from protocol.messages import CommandMessage, decode
from .staff import StaffMember, StaffRegistry
from base.errors import TryggError

log = logging.getLogger(__name__)
_REPLAYED = "replayed: this command id was already received"
MAX_COMMAND_BYTES = 8 * 1024  # a command is a few hundred bytes; refuse anything larger before any crypto


class _ActionError(TryggError):
    """`code` is the cause after the action's name in the verdict's code (protocol/refusals.ACTION):
    given, or the code of a Refusal given as the message."""

    default = ""

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or getattr(message, "code", None) or self.default


class ActionFailed(_ActionError, RuntimeError):
    """The command was allowed but could not be carried out (e.g. the lock did not move)."""

    default = "failed"


class ActionRefused(_ActionError, PermissionError):
    """The device itself says no, whoever asks (e.g. a jammed lock is not driven)."""

    default = "refused"


Action = Callable[[CommandMessage, StaffMember], dict]


@dataclass
class Verdict:
    outcome: str  # done, refused, failed
    reason: str = ""
    command: CommandMessage | None = None
    staff: StaffMember | None = None
    detail: dict = field(default_factory=dict)
    replay: bool = False
    code: str = ""  # stable (protocol/refusals.py); "" for done

    @property
    def answer(self) -> bool:
        """A signed result goes back for every new command verifiably from enrolled staff. Not
        for replays: the original got its answer, and a replayed flood must not fill the outbox."""
        return self.command is not None and self.staff is not None and not self.replay

    def audit_detail(self, size: int) -> dict:
        cmd, who = self.command, self.staff
        return {
            "outcome": self.outcome, "code": self.code, "reason": self.reason, "bytes": size,
            "command": cmd.id if cmd else None, "action": cmd.action if cmd else None,
            "staff": who.name if who else None, "role": who.role if who else None,
        }

    def result_body(self) -> dict:
        cmd, who = self.command, self.staff
        return {"command": cmd.id, "action": cmd.action, "args": dict(cmd.args), "outcome": self.outcome,
                "code": self.code, "reason": self.reason, "staff": who.name, "role": who.role, **self.detail}


class RefusalLimiter:
    """At most `per_min` refusals audited individually per minute; the rest counted by reason.

    Each minute's uncounted rest becomes one summary, even while the flood goes on. Thread-safe:
    the uplink thread counts dropped messages while the command thread judges.
    """

    def __init__(self, per_min: int, clock) -> None:
        self.per_min, self.clock = per_min, clock
        self._lock = threading.Lock()
        self._window_start = clock.monotonic()
        self._count = 0
        self._suppressed: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()  # suppressed in minutes that are over

    def allow(self, reason: str) -> bool:
        with self._lock:
            self._roll()
            self._count += 1
            if self._count <= self.per_min:
                return True
            self._suppressed[_reason_kind(reason)] += 1
            return False

    def suppress(self, reason: str) -> None:
        """Count without auditing individually (e.g. dropped from a full queue)."""
        with self._lock:
            self._roll()
            self._suppressed[_reason_kind(reason)] += 1

    def _roll(self) -> None:
        if self.clock.monotonic() - self._window_start >= 60:
            self._window_start, self._count = self.clock.monotonic(), 0
            self._pending.update(self._suppressed)
            self._suppressed.clear()

    def take_summary(self, final: bool = False) -> dict | None:
        """What was suppressed in the minutes that are over (all of it when final)."""
        with self._lock:
            self._roll()
            if final:
                self._pending.update(self._suppressed)
                self._suppressed.clear()
            if not self._pending:
                return None
            summary = {"suppressed": sum(self._pending.values()), "by_reason": dict(self._pending.most_common(20))}
            self._pending.clear()
            return summary


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0][:80]


class Commands:
    def __init__(self, home: str, device: Identity, staff: StaffRegistry, freshness: Freshness, policy: Policy,
                 audit: AuditLog, actions: dict[str, Action], report: Callable[[Event], object],
                 cfg: CommandsConfig, clock) -> None:
        self.home = home
        self.topic = topics.command(home)
        self.device = device
        self.staff = staff
        self.freshness = freshness
        self.policy = policy
        self.audit = audit
        self.actions = actions
        self.report = report
        self.limiter = RefusalLimiter(cfg.refusals_audited_per_min, clock)
        self._queue: queue.Queue = queue.Queue(maxsize=cfg.queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self.counts: Counter[str] = Counter()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._audit_summary(final=True)  # nothing counted is lost at shutdown

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, topic: str, payload: bytes) -> None:
        """From the uplink thread: queue for judging; never blocks, drops (counted) when full."""
        try:
            self._queue.put_nowait((topic, bytes(payload[: MAX_COMMAND_BYTES + 1]), len(payload)))
        except queue.Full:
            self.counts["dropped"] += 1
            self.limiter.suppress("dropped: command queue full")

    def status(self) -> dict:
        return {**{k: self.counts[k] for k in ("done", "refused", "failed", "dropped")},
                "challenge": self.freshness.challenge}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload, size = self._queue.get(timeout=1.0)
            except queue.Empty:
                pass
            else:
                try:
                    self.handle(topic, payload, size)
                except Exception:  # a bug costs one command, never the thread; nothing acted on it
                    log.exception("commands: unexpected error judging a command")
            self._audit_summary()

    def _audit_summary(self, final: bool = False) -> None:
        summary = self.limiter.take_summary(final)
        if summary:
            try:
                self.audit.append("command_refusals_suppressed", summary)
            except Exception:  # on the command thread: a full disk must not end the judging of commands
                log.exception("commands: could not audit the refusal summary %s", summary)

    # -- judging --------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, size: int | None = None) -> Verdict:
        """Judge one message, act when allowed, audit, answer. Returns the verdict (for tests)."""
        size = len(payload) if size is None else size
        verdict = self._judge(topic, payload, size)
        if verdict.outcome == "allowed":
            verdict = self._act(verdict)
        self.counts[verdict.outcome] += 1
        audited = verdict.outcome != "refused" or self.limiter.allow(verdict.reason)
        if audited:  # the log follows the audit's limit: a flood must not flood the journal either
            self.audit.append("command", verdict.audit_detail(size))
            log.info("command %s: %s %s", verdict.command.id if verdict.command else "-", verdict.outcome,
                     verdict.reason)
        if verdict.answer:  # whatever the flood: staff always hear back about their own command
            self.report(Event("event", "command_result", verdict.result_body()))
        return verdict

    def _judge(self, topic: str, payload: bytes, size: int) -> Verdict:
        def no(code: str, reason: str, cmd=None, member=None, replay: bool = False) -> Verdict:
            return Verdict("refused", reason, cmd, member, replay=replay, code=code)

        if size > MAX_COMMAND_BYTES:
            return no("oversized", f"oversized: {size} bytes (limit {MAX_COMMAND_BYTES})")
        if topic != self.topic:
            return no("wrong_topic", f"wrong topic: {topic[:200]!r}")
        try:
            opened = envelope.open_sealed(payload, topic, [self.device.kem], self.staff.signer_lookup)
        except EnvelopeError as exc:
            return no(f"envelope.{exc.code}", f"envelope: {exc}")
        member = self.staff.by_kid(opened.signer_kid)
        try:
            cmd = decode(opened.body, CommandMessage)
        except (ValueError, OverflowError) as exc:  # MessageError, with its code
            return no(f"malformed.{getattr(exc, 'code', 'bad_value')}", f"malformed command: {exc}", member=member)
        if cmd.home != self.home:
            return no("wrong_home", f"command for home {cmd.home!r}", cmd, member)
        if self.freshness.seen(cmd.id):
            return no("replayed", _REPLAYED, cmd, member, replay=True)
        if not member.active:
            return no("revoked", f"staff member {member.name} is revoked", cmd, member)
        stale = self.freshness.refusal(cmd)
        if stale:
            return no(f"not_fresh.{stale.code}", f"not fresh: {stale}", cmd, member)
        if not self.freshness.remember(cmd):  # arrived twice at once: the other copy was first
            return no("replayed", _REPLAYED, cmd, member, replay=True)
        why_not = self.policy.refusal(member.role, cmd.action, dict(cmd.args))
        if why_not:
            return no(f"not_allowed.{why_not.code}", f"not allowed: {why_not}", cmd, member)
        return Verdict("allowed", "", cmd, member)

    def _act(self, verdict: Verdict) -> Verdict:
        cmd, who = verdict.command, verdict.staff
        action = self.actions.get(cmd.action)
        if action is None:
            return Verdict("failed", f"this device cannot {cmd.action}", cmd, who, code="unsupported")
        try:
            detail = action(cmd, who)
        except ActionFailed as exc:
            return Verdict("failed", str(exc), cmd, who, code=f"{cmd.action}.{exc.code}")
        except ActionRefused as exc:
            return Verdict("refused", str(exc), cmd, who, code=f"{cmd.action}.{exc.code}")
        except Exception as exc:  # a driver bug is a failed command, reported, not a crash
            log.exception("commands: %s failed", cmd.action)
            return Verdict("failed", f"{type(exc).__name__}: {exc}", cmd, who, code="error")
        return Verdict("done", "", cmd, who, detail)
