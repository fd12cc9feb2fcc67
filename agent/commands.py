"""Commands from night staff: judge every one, act only on those that pass, audit and answer all.

A command arrives on trygg/v1/<home>/down/cmd. It is acted on only when all hold, checked in
this order (the first failure is the reason given):

  1. it is not oversized, and arrived on this home's command topic;
  2. the envelope opens with the device key and is signed by an enrolled staff key;
  3. the body is a valid command for this home;
  4. that staff member is not revoked;
  5. it is fresh (time window or challenge, freshness.py) and its id was never seen;
  6. the member's role allows the action, and the lock's rule allows it now (policy.py).

Every attempt is audited with its verdict and reason. Every command that was verifiably
signed by enrolled staff also gets a signed result event (`command_result`: done, refused or
failed, with the reason), sealed to the center through the outbox like any event. Hostile
input is normal here: messages are judged on this module's own thread from a bounded queue
(a flood costs dropped messages, counted, never the uplink or the alarms), and refusals
beyond refusals_audited_per_min are counted and audited as one summary per minute.
"""

import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .audit import AuditLog
from .config import CommandsConfig
from .errors import EnvelopeError
from .events import Event
from .freshness import Freshness
from .keys import Identity
from .policy import Policy
from .protocol import envelope, topics
from .protocol.messages import CommandMessage, decode
from .staff import StaffMember, StaffRegistry

log = logging.getLogger(__name__)
MAX_COMMAND_BYTES = 8 * 1024  # a command is a few hundred bytes; refuse anything larger before any crypto


class ActionFailed(Exception):
    """The command was allowed but could not be carried out (e.g. the lock did not move)."""


Action = Callable[[CommandMessage, StaffMember], dict]


@dataclass
class Verdict:
    outcome: str  # done, refused, failed
    reason: str = ""
    command: CommandMessage | None = None
    staff: StaffMember | None = None
    detail: dict = field(default_factory=dict)

    def audit_detail(self, size: int) -> dict:
        cmd, who = self.command, self.staff
        return {
            "outcome": self.outcome, "reason": self.reason, "bytes": size,
            "command": cmd.id if cmd else None, "action": cmd.action if cmd else None,
            "staff": who.name if who else None, "role": who.role if who else None,
        }

    def result_body(self) -> dict:
        cmd, who = self.command, self.staff
        return {"command": cmd.id, "action": cmd.action, "args": dict(cmd.args), "outcome": self.outcome,
                "reason": self.reason, "staff": who.name, "role": who.role, **self.detail}


class RefusalLimiter:
    """At most `per_min` refusals audited individually per minute; the rest counted by reason."""

    def __init__(self, per_min: int, clock) -> None:
        self.per_min, self.clock = per_min, clock
        self._window_start = clock.monotonic()
        self._count = 0
        self.suppressed: Counter[str] = Counter()

    def allow(self, reason: str) -> bool:
        self._roll()
        self._count += 1
        if self._count <= self.per_min:
            return True
        self.suppressed[reason.split(":")[0][:80]] += 1
        return False

    def _roll(self) -> None:
        if self.clock.monotonic() - self._window_start >= 60:
            self._window_start, self._count = self.clock.monotonic(), 0

    def take_summary(self) -> dict | None:
        """Once the minute is over: what was suppressed in it."""
        self._roll()
        if not self.suppressed or self._count:
            return None
        summary = {"suppressed": sum(self.suppressed.values()), "by_reason": dict(self.suppressed.most_common(20))}
        self.suppressed.clear()
        return summary


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

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, topic: str, payload: bytes) -> None:
        """From the uplink thread: queue for judging; never blocks, drops (counted) when full."""
        try:
            self._queue.put_nowait((topic, bytes(payload[: MAX_COMMAND_BYTES + 1]), len(payload)))
        except queue.Full:
            self.counts["dropped"] += 1
            self.limiter.allow("dropped: command queue full")

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
            summary = self.limiter.take_summary()
            if summary:
                self.audit.append("command_refusals_suppressed", summary)

    # -- judging --------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, size: int | None = None) -> Verdict:
        """Judge one message, act when allowed, audit, answer. Returns the verdict (for tests)."""
        size = len(payload) if size is None else size
        verdict = self._judge(topic, payload, size)
        if verdict.outcome == "allowed":
            verdict = self._act(verdict)
        self.counts[verdict.outcome] += 1
        if verdict.outcome != "refused" or self.limiter.allow(verdict.reason):
            self.audit.append("command", verdict.audit_detail(size))
            if verdict.command is not None and verdict.staff is not None:
                self.report(Event("event", "command_result", verdict.result_body()))
        log.info("command %s: %s %s", verdict.command.id if verdict.command else "-", verdict.outcome, verdict.reason)
        return verdict

    def _judge(self, topic: str, payload: bytes, size: int) -> Verdict:
        if size > MAX_COMMAND_BYTES:
            return Verdict("refused", f"oversized: {size} bytes (limit {MAX_COMMAND_BYTES})")
        if topic != self.topic:
            return Verdict("refused", f"wrong topic: {topic[:200]!r}")
        try:
            opened = envelope.open_sealed(payload, topic, [self.device.kem], self.staff.signer_lookup)
        except EnvelopeError as exc:
            return Verdict("refused", f"envelope: {exc}")
        member = self.staff.by_kid(opened.signer_kid)
        try:
            cmd = decode(opened.body, CommandMessage)
        except ValueError as exc:
            return Verdict("refused", f"malformed command: {exc}", staff=member)
        if cmd.home != self.home:
            return Verdict("refused", f"command for home {cmd.home!r}", cmd, member)
        if not member.active:
            return Verdict("refused", f"staff member {member.name} is revoked", cmd, member)
        stale = self.freshness.refusal(cmd)
        if stale:
            return Verdict("refused", f"not fresh: {stale}", cmd, member)
        if not self.freshness.remember(cmd):
            return Verdict("refused", "replayed: this command id was already received", cmd, member)
        why_not = self.policy.refusal(member.role, cmd.action, dict(cmd.args))
        if why_not:
            return Verdict("refused", f"not allowed: {why_not}", cmd, member)
        return Verdict("allowed", "", cmd, member)

    def _act(self, verdict: Verdict) -> Verdict:
        cmd = verdict.command
        action = self.actions.get(cmd.action)
        if action is None:
            return Verdict("failed", f"this device cannot {cmd.action}", cmd, verdict.staff)
        try:
            detail = action(cmd, verdict.staff)
        except ActionFailed as exc:
            return Verdict("failed", str(exc), cmd, verdict.staff)
        except Exception as exc:  # a driver bug is a failed command, reported, not a crash
            log.exception("commands: %s failed", cmd.action)
            return Verdict("failed", f"{type(exc).__name__}: {exc}", cmd, verdict.staff)
        return Verdict("done", "", cmd, verdict.staff, detail)
