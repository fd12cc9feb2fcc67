#!/usr/bin/env python3
"""reports_response: how long the monthly response-time report and a resident's record take.

A year of a 300-home municipality's alarm cases goes into a SQLite store through the code the
receiving service runs (tests/support/reportcases.py: alarms recorded by EventStore.record with
the CaseDesk opening cases, staff actions signed and checked by CaseDesk.act), two areas with
their own promise; one home also gets a month of its device's real audit trail. The build runs
with fsync off (its speed is not a figure). Figures, fsync back on:
  - the month's report built from the store (cases opened in memory), its HTML, its PDF;
  - `trygg center report response --month M --format pdf --out F`, whole process, median of 3
    (target: a monthly report in < 30 s, issue 18);
  - `trygg center report resident HOME --month M --format pdf`, whole process, median of 3.
Sizes: REPORT_HOMES (300), REPORT_MONTHS (12), REPORT_ALARMS (1.5 per home and month).
"""

import os
import statistics
import subprocess
import sys
import time

from _common import env_float, env_int, header, result, say, temp_root

HOMES = env_int("REPORT_HOMES", 300)
MONTHS = env_int("REPORT_MONTHS", 12)
ALARMS = env_float("REPORT_ALARMS", 1.5)
TARGET_S = 30.0


def months_of(year: int, count: int) -> list[str]:
    return [f"{year + (m // 12)}-{m % 12 + 1:02d}" for m in range(count)]


def bench_response_report() -> None:
    """Build the year, then print the figures (a function so other scripts can call it)."""
    from center.reports import response
    from center.reports.pdf import html_to_pdf
    from center.store import EventStore
    from tests.support.reportcases import fill_cases, fill_resident, make_center

    months = months_of(2026, MONTHS)
    month = months[-2] if len(months) > 1 else months[0]  # a whole month with a month after it
    header(f"reports_response: {HOMES} homes x {MONTHS} months, {ALARMS} alarms per home and month")
    with temp_root("reports") as root:
        homes = {f"hem-{i:03d}": ("" if i % 10 == 0 else "tatort" if i % 3 else "landsbygd") for i in range(HOMES)}
        areas = {"tatort": {"label": "Tätort", "homes": sorted(h for h, a in homes.items() if a == "tatort")},
                 "landsbygd": {"label": "Landsbygd", "on_site_within_min": 60,
                               "homes": sorted(h for h, a in homes.items() if a == "landsbygd")}}
        center = make_center(root / "center", areas)
        store = EventStore(center.cfg.store_url)
        store.db.query("PRAGMA synchronous=OFF")
        built = time.monotonic()
        truth = fill_cases(center, store, homes, months, per_home_month=ALARMS)
        fill_resident(center, store, "hem-resident", "Astrid Andersson", month, root, ("anna", "bo"))
        say(f"  built {len(truth):,} cases in {time.monotonic() - built:.0f} s")
        store.db.query("PRAGMA synchronous=FULL")

        started = time.monotonic()
        data = response.report(center.cfg, store, month, time.time())
        t_data = time.monotonic() - started
        started = time.monotonic()
        html = response.to_html(data)
        t_html = time.monotonic() - started
        started = time.monotonic()
        pdf = html_to_pdf(html)
        t_pdf = time.monotonic() - started
        store.close()
        result("reports_response", f"cases in {month}", data["total"]["cases"], "")
        result("reports_response", "cases outside the promise (listed)", data["total"]["outside"], "")
        result("reports_response", "report data from the store", t_data * 1000, "ms")
        result("reports_response", "its HTML", t_html * 1000, "ms")
        result("reports_response", "its PDF (WeasyPrint)", t_pdf * 1000, "ms", note=f"{len(pdf) // 1024} KiB")

        def timed(*args: str) -> float:
            runs = []
            for _ in range(3):
                began = time.monotonic()
                subprocess.run([sys.executable, "-m", "agent", "center", "report", *args, "--config",
                                str(center.config), "--out", str(root / "out.pdf")], check=True,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
                runs.append(time.monotonic() - began)
            return statistics.median(runs)
        t_cli = timed("response", "--month", month, "--format", "pdf")
        result("reports_response", f"`report response --month {month} --format pdf`", t_cli, "s",
               target=f"< {TARGET_S:.0f} s", ok=t_cli < TARGET_S, digits=2, note="median of 3, whole process")
        t_res = timed("resident", "hem-resident", "--month", month, "--format", "pdf")
        result("reports_response", f"`report resident HOME --month {month}`", t_res, "s", digits=2,
               note="median of 3, whole process")
    say()


if __name__ == "__main__":
    bench_response_report()
