"""What `trygg doctor` and `trygg center doctor` share: one check's verdict, the report, the exit code.

A technician runs doctor to see every problem at once, not one failure at a time, so each check
returns a verdict instead of raising, and the report prints them all. Each verdict that is not a
pass carries its fix in one line. Exit 0 when all pass, 1 when the worst is a warning, 2 on a fail
(installers' scripts branch on it).
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
_MARK = {PASS: "ok  ", WARN: "WARN", FAIL: "FAIL"}


@dataclass(frozen=True)
class Verdict:
    """One check: what was checked, how it went, what was found, and (unless it passed) the fix."""

    check: str
    status: str
    detail: str
    fix: str = ""

    def __post_init__(self):
        if self.status not in _RANK:
            raise ValueError(f"status must be one of {sorted(_RANK)}, got {self.status!r}")
        if self.status != PASS and not self.fix:
            raise ValueError(f"check {self.check!r}: a {self.status} needs its fix")


def passed(check: str, detail: str) -> Verdict:
    return Verdict(check, PASS, detail)


def warned(check: str, detail: str, fix: str) -> Verdict:
    return Verdict(check, WARN, detail, fix)


def failed(check: str, detail: str, fix: str) -> Verdict:
    return Verdict(check, FAIL, detail, fix)


def run_checks(checks: Iterable[tuple[str, Callable[[], Verdict | list[Verdict]]]]) -> list[Verdict]:
    """Run every check; one that crashes is a fail with its error, never the end of the report."""
    verdicts: list[Verdict] = []
    for name, check in checks:
        try:
            got = check()
        except Exception as exc:  # noqa: BLE001 - a doctor reports what broke, it never stops at it
            got = failed(name, f"the check itself failed: {type(exc).__name__}: {exc}",
                         "report this to Trygg's developers with the line above")
        verdicts.extend(got if isinstance(got, list) else [got])
    return verdicts


def exit_code(verdicts: Iterable[Verdict]) -> int:
    """0 all passed, 1 the worst is a warning, 2 something failed."""
    return max((_RANK[v.status] for v in verdicts), default=0)


def render_text(verdicts: list[Verdict]) -> str:
    lines = []
    for v in verdicts:
        lines.append(f"{_MARK[v.status]}  {v.check}: {v.detail}")
        if v.fix:
            lines.append(f"      fix: {v.fix}")
    counts = {s: sum(v.status == s for v in verdicts) for s in _RANK}
    lines.append(f"{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed")
    return "\n".join(lines)


def render_json(verdicts: list[Verdict]) -> str:
    worst = {0: PASS, 1: WARN, 2: FAIL}[exit_code(verdicts)]
    return json.dumps({"status": worst, "checks": [asdict(v) for v in verdicts]}, ensure_ascii=False)
