#!/usr/bin/env python3
"""SD-card wear: what a quiet home writes per day (issue 17). Target < 20 MB/day.

Real processes on loopback: Mosquitto with mutual TLS, a home running `trygg run` (mock pins, a
quiet home: nothing happens but heartbeats, device-health telemetry, the outbox's sweeps and
the center's acks) and a receiving service that records and acknowledges. The home's directory
(outbox, trust.db, its log file) is on a real disk, under /var/tmp by default (SD_WEAR_DIR), not
on tmpfs, where /proc/PID/io's write_bytes would read 0.

Figures come from /proc/<daemon pid>/io over SD_WEAR_S (default 300) seconds, after
SD_WEAR_SETTLE_S (default 15) seconds connected and quiet:
  - write_bytes: bytes this process caused to be sent to the block layer (SQLite pages, WAL,
    checkpoints, its log file), minus cancelled_write_bytes (pages dirtied and then truncated
    away before writeback, as a truncated WAL's);
  - the log's share: how much the daemon's log file grew (under systemd that goes to journald,
    which writes it with its own overhead; counted here as the daemon's own write);
  - fsync/fdatasync/ftruncate calls, counted with `strace -f -c` attached for the window (when
    strace is installed; SD_WEAR_STRACE=0 turns it off). Each fsync that changes a file's size
    also makes the file system commit its journal, which write_bytes does not count (the kernel's
    jbd2 thread writes it): the estimate adds JOURNAL_BLOCKS 4 KiB blocks per such call
    (descriptor, inode table block, bitmap or extent, commit record), stated as an estimate.
The home's periodic work is sped up SD_WEAR_SPEEDUP times (default 6: heartbeat every 10 s
instead of 60, sweep every 5 s instead of 30, device health every 150 s instead of 900), and the
day's figure is scaled back: bytes * 86400 / (window * speedup). The window is rounded to a whole
number of device-health periods, so it holds a known number of telemetry rows (the only writes
of a quiet home, it turns out), not one more or less by chance of phase. Work that does not follow those
timers is counted as if it did (over-counted, never under). SD_WEAR_SPEEDUP=1 measures the
product's own intervals.

Then, in this process, where a telemetry row's bytes go: SD_WEAR_ROWS (default 30) rows of
1 KiB (the padded size), each committed and then deleted as its ack would (the outbox drains
each time, as in a quiet home), through agent.outbox.Outbox with the daemon's settings, with the
kernel's writeback forced between rows (os.sync: rows 15 minutes apart are written back one by
one). Once as shipped, once with the truncating checkpoint on every drain left out (a
what-if for the outbox's owner; the product is not changed by this script).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import env_float, env_int, header, result, say, status, temp_root, wait_until

B = "sd_wear"
WINDOW_S = env_float("SD_WEAR_S", 300.0)
SETTLE_S = env_float("SD_WEAR_SETTLE_S", 15.0)
SPEEDUP = env_int("SD_WEAR_SPEEDUP", 6)
HEARTBEAT_S, SWEEP_S, HEALTH_S = 60, 30.0, 900.0  # the product's defaults (agent/config.py, drivers/health.py)
TARGET_MB = 20.0
JOURNAL_BLOCKS = 4  # ext4 journal blocks per size-changing fsync (an estimate, see the docstring)
SYNC_CALLS = ("fsync", "fdatasync", "ftruncate")


def strace_start(pid: int) -> subprocess.Popen | None:
    if os.environ.get("SD_WEAR_STRACE", "1") == "0" or not shutil.which("strace"):
        return None
    proc = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=" + ",".join(SYNC_CALLS), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # attached to every thread before the window starts
    return proc


def strace_counts(proc: subprocess.Popen | None) -> dict[str, int] | None:
    """The calls per syscall strace -c counted (None: not measured)."""
    if proc is None:
        return None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    counts = {name: 0 for name in SYNC_CALLS}
    for line in err.splitlines():
        match = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if match and match.group(2) in counts:
            counts[match.group(2)] = int(match.group(1))
    return counts


@contextmanager
def quiet_home(root: Path, overrides: dict):
    """_common.running_lab's broker, receiver and one connected home, with config overrides."""
    from base.labpki import make_lab_pki
    from tests.support.broker import Broker
    from tests.support.lab import Lab

    pki = make_lab_pki(root / "pki", ["center"])
    with Broker(root / "broker", pki) as broker:
        lab = Lab(root, pki, broker.port)
        try:
            home = lab.home("hem-sd", **overrides)
            lab.watch()
            home.start()
            sock = home.dir / "trygg.sock"
            wait_until(lambda: status(sock)["link"] == "connected", 20, "the home to connect")
            yield home, sock
        finally:
            lab.close()


def io(pid: int | str) -> dict[str, int]:
    """/proc/PID/io as numbers."""
    return {k: int(v) for k, v in (line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())}


def per_row(base: Path, drain_checkpoint: bool, rows: int) -> tuple[float, int]:
    """write_bytes per telemetry row put and then deleted (the outbox drained each time), and
    the WAL's size at the end."""
    from agent.outbox import Outbox, Row

    with tempfile.TemporaryDirectory(dir=base, prefix="trygg-sd-wear-rows-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.db", 8 << 20, {"event": 7 * 86400.0, "telemetry": 86400.0})
        if not drain_checkpoint:
            outbox.checkpoint = lambda: None  # the what-if: no truncating checkpoint when it drains
        try:
            def one(i: int) -> None:
                row = Row(f"row-{i}", "telemetry", "trygg/v1/hem-sd/up/telemetry", os.urandom(1024), time.time())
                assert outbox.put_many([row]) == [True]
                outbox.delete([row.id])
                os.sync()
            for i in range(3):  # the table, its index and the WAL exist, as in a running home
                one(-1 - i)
            before = io("self")["write_bytes"]
            for i in range(rows):
                one(i)
            written = io("self")["write_bytes"] - before
            wal = Path(tmp) / "outbox.db-wal"
            return written / rows, wal.stat().st_size if wal.exists() else 0
        finally:
            outbox.close()


def files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}


def main() -> None:
    base = Path(os.environ.get("SD_WEAR_DIR", "/var/tmp"))
    os.environ["TMPDIR"] = str(base)  # temp_root (tempfile.mkdtemp) then makes the lab there
    tempfile.tempdir = None
    period = HEALTH_S / SPEEDUP
    window_s = max(1, round(WINDOW_S / period)) * period
    header(f"sd_wear: a quiet home's writes over {window_s:.0f} s, its timers x{SPEEDUP}, scaled to a day")
    overrides = {"uplink": {"heartbeat_s": max(1, round(HEARTBEAT_S / SPEEDUP))},
                 "outbox": {"sweep_s": SWEEP_S / SPEEDUP}, "health": {"every_s": HEALTH_S / SPEEDUP}}
    with temp_root("sd-wear") as root:
        fs = os.statvfs(root)
        with quiet_home(root, overrides) as (home, sock):
            pid, home_dir = home.proc.pid, home.dir
            time.sleep(SETTLE_S)
            tracer = strace_start(pid)
            before, files0, t0 = io(pid), files(home_dir), time.monotonic()
            time.sleep(window_s)
            after, files1, t1 = io(pid), files(home_dir), time.monotonic()
            syncs = strace_counts(tracer)
            st = status(sock)
    window = t1 - t0
    scale = 86400 / (window * SPEEDUP)
    written = after["write_bytes"] - before["write_bytes"]
    cancelled = after["cancelled_write_bytes"] - before["cancelled_write_bytes"]
    log_bytes = files1.get("daemon.log", 0) - files0.get("daemon.log", 0)
    net = written - cancelled
    mb = 1e6
    say(f"  home directory on {root} (statvfs f_bsize {fs.f_bsize}); link {st.get('link')}, "
        f"outbox depth {sum(c['depth'] for c in st['outbox']['classes'].values())}")
    result(B, "written per day (write_bytes - cancelled)", net * scale / mb, "MB/day", f"< {TARGET_MB:.0f} MB",
           net * scale / mb < TARGET_MB, digits=2,
           note=f"{net:,} B in {window:.0f} s at x{SPEEDUP}; write_bytes {written:,}, cancelled {cancelled:,}")
    result(B, "of which the daemon's log per day", log_bytes * scale / mb, "MB/day", digits=2,
           note=f"daemon.log grew {log_bytes:,} B")
    result(B, "syscall writes per day (wchar)", (after["wchar"] - before["wchar"]) * scale / mb, "MB/day", digits=2,
           note="all write() calls, sockets included; not the card")
    result(B, "write syscalls per day (syscw)", (after["syscw"] - before["syscw"]) * scale, "calls/day")
    if syncs is None:
        say("  fsync calls: not counted (strace not installed or SD_WEAR_STRACE=0)")
    else:
        per_day = {name: n * scale for name, n in syncs.items()}
        journal = (per_day["fsync"] + per_day["fdatasync"]) * JOURNAL_BLOCKS * 4096
        result(B, "fsync + fdatasync calls per day", per_day["fsync"] + per_day["fdatasync"], "calls/day",
               note=", ".join(f"{n} {c}" for n, c in syncs.items()) + " in the window")
        result(B, "with the file system's journal (estimate)", (net * scale + journal) / mb, "MB/day",
               f"< {TARGET_MB:.0f} MB", (net * scale + journal) / mb < TARGET_MB, digits=2,
               note=f"+{JOURNAL_BLOCKS} x 4 KiB per fsync, not measured")
    rows = env_int("SD_WEAR_ROWS", 30)
    shipped, wal_shipped = per_row(base, True, rows)
    kept, wal_kept = per_row(base, False, rows)
    per_day = 86400 / HEALTH_S
    result(B, "one telemetry row put + acked, as shipped", shipped / 1024, "KiB", digits=1,
           note=f"{rows} rows of 1 KiB; x{per_day:.0f}/day = {shipped * per_day / mb:.2f} MB; WAL after: {wal_shipped:,} B")
    result(B, "the same without the drain checkpoint (what-if)", kept / 1024, "KiB", digits=1,
           note=f"x{per_day:.0f}/day = {kept * per_day / mb:.2f} MB; WAL after: {wal_kept:,} B (journal_size_limit)")
    grown = {name: files1.get(name, 0) - files0.get(name, 0) for name in sorted(set(files0) | set(files1))}
    say("  file sizes in the home directory, start -> end of the window: " +
        ", ".join(f"{n} {files0.get(n, 0):,}->{files1.get(n, 0):,}" for n in grown if files0.get(n) or files1.get(n)))


if __name__ == "__main__":
    main()
