#!/usr/bin/env python3
"""Run every benchmark in sequence and print a summary table of their figures.

Usage (from the repo root): python bench/run_all.py [NAME ...]   (default: all, in order)
Each benchmark runs as its own process (`python bench/NAME.py`); its output is echoed as it
comes, without the machine-readable "@@RESULT" lines, which feed the summary at the end.
Sizes come from environment variables documented in bench/README.md. Exits non-zero only if a
benchmark failed to run; a MISS is a figure, not a failure.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHES = ["ingest", "drain", "latency", "idle", "commands", "pin_edge", "lookin", "padding", "stall", "outbox_disk", "cases", "fleet", "year", "reports", "reports_response", "sd_wear", "web"]
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", 600))


def run(name: str) -> tuple[list[dict], int, float]:
    results: list[dict] = []
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-u", str(HERE / f"{name}.py")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stdout:
            if line.startswith("@@RESULT "):
                results.append(json.loads(line[len("@@RESULT "):]))
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
            if time.monotonic() - t0 > TIMEOUT_S:
                print(f"!! {name} took longer than {TIMEOUT_S:.0f} s; stopping it", flush=True)
                proc.terminate()
                break
        code = proc.wait(30)
    except BaseException:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    return results, code, time.monotonic() - t0


def fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main() -> int:
    names = sys.argv[1:] or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
        return 2
    everything: list[dict] = []
    failed: list[str] = []
    timings: list[tuple[str, float, int]] = []
    started = time.monotonic()
    for name in names:
        print(f"\n######## bench/{name}.py", flush=True)
        results, code, took = run(name)
        timings.append((name, took, code))
        everything += results
        if code != 0:
            failed.append(name)
            print(f"!! bench/{name}.py exited with {code}", flush=True)
    total = time.monotonic() - started

    print("\n######## summary")
    w = max([len(r["name"]) for r in everything] + [10])
    print(f"{'bench':<8} {'figure':<{w}} {'value':>12} {'unit':<7} {'target':<10} verdict")
    print("-" * (w + 50))
    for r in everything:
        print(f"{r['bench']:<8} {r['name']:<{w}} {fmt(r['value'], r.get('digits', 0)):>12} {r['unit']:<7} "
              f"{r['target'] or '':<10} {r['verdict'] or ''}")
    print("-" * (w + 50))
    targets = [r for r in everything if r["target"]]
    passed = sum(1 for r in targets if r["verdict"] == "PASS")
    print(f"targets: {passed} PASS, {len(targets) - passed} MISS of {len(targets)}")
    print("time: " + ", ".join(f"{n} {t:.0f} s" + ("" if c == 0 else f" (exit {c})") for n, t, c in timings)
          + f"; total {total:.0f} s")
    if failed:
        print(f"FAILED to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
