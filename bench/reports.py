#!/usr/bin/env python3
"""reports: how long the day nurse's morning report takes for a 300-home municipality.

A year of 300 homes goes into a SQLite store (tests/support/reportyear.py: bulk inserts into the
store's own tables; the last MORNING_DETAIL days are real envelopes signed by each home's key and
sealed to the center key, as the report opens them; older days are filler of the same size, so
the store has a year's bulk). Per home and day ~7 messages (motion summary, two doses, bed exits
and night doors as alarms with their cases, two health readings). The build runs with fsync off.
Figures, fsync back on:
  - the report's data for every home (`center.reports.morning.report`): the first run, which
    opens five weeks of envelopes and keeps each finished day's facts as a sealed digest, and
    the next run, which opens the digests and only today's envelopes (the morning's usual case);
  - its HTML and its PDF (the homes needing attention drawn in full, the rest one line each);
  - `trygg center report morning --format pdf --out F`, whole process.
Target (issue 18): the morning report for 300 homes in < 5 s.
Sizes: MORNING_HOMES (300), MORNING_DAYS (365), MORNING_DETAIL (45).
"""

import subprocess
import sys
import time
from datetime import date

from _common import env_int, header, result, say, temp_root

HOMES = env_int("MORNING_HOMES", 300)
DAYS = env_int("MORNING_DAYS", 365)
DETAIL = env_int("MORNING_DETAIL", 45)
TARGET_S = 5.0
MORNING = date(2026, 11, 30)


def main() -> None:
    from base.labpki import make_lab_pki
    from center import config as cfgmod
    from center.reportcli import render
    from center.reports.morning import Settings, report
    from tests.support.lab import ENV, TRYGG
    from tests.support.reportyear import generate, make_center

    header(f"reports: the morning report for {HOMES} homes ({DAYS} days in the store, the last {DETAIL} real)")
    with temp_root("morning") as root:
        pki = make_lab_pki(root / "pki", ["center"])
        truth = generate(make_center(root, pki), homes=HOMES, days=DAYS, morning=MORNING, seed=2026,
                         planted_share=0.3, detail_days=DETAIL)
        size = sum(p.stat().st_size for p in (root / "center").glob("center.db*"))
        result("reports", "events in the store", truth.events, "")
        result("reports", "store size on disk", size / 2**20, "MiB", note=f"built in {truth.seconds:.0f} s, fsync off")
        cfg = cfgmod.load(truth.config)
        settings = Settings(outcomes=dict(cfg.cases.outcomes))
        runs = {}
        for run in ("first", "next"):
            started = time.monotonic()
            data = report(cfg, MORNING, None, settings, time.time())
            runs[run] = time.monotonic() - started
            opened = data["opened"]
            result("reports", f"morning report data, {HOMES} homes, {run} run", runs[run], "s",
                   target=f"< {TARGET_S:.0f} s" if run == "next" else "", ok=runs[run] < TARGET_S if run == "next" else None,
                   digits=2, note=f"{opened['envelopes']:,} envelopes and {opened['digests']:,} day digests opened")
        say(f"  ({data['needs_attention']} of {HOMES} homes need attention)")
        started = time.monotonic()
        html = render(data, "html")
        result("reports", "its HTML", time.monotonic() - started, "s", digits=2, note=f"{len(html) / 2**20:.1f} MiB")
        started = time.monotonic()
        pdf = render(data, "pdf")
        result("reports", "its PDF", time.monotonic() - started, "s", digits=2, note=f"{len(pdf) / 2**10:.0f} KiB")
        out = root / "morgon.pdf"
        started = time.monotonic()
        subprocess.run([*TRYGG, "center", "report", "morning", "--date", MORNING.isoformat(), "--format", "pdf",
                        "--out", str(out), "--config", str(truth.config)], env=ENV, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result("reports", "`trygg center report morning --format pdf`", time.monotonic() - started, "s", digits=2,
               note="whole process, digests kept")
    say()


if __name__ == "__main__":
    sys.exit(main())
