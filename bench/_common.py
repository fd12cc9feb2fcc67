"""Shared helpers for the benchmarks: paths, sizes from the environment, result lines, temp dirs,
talking to a running daemon over its control socket.

Every benchmark prints human-readable figures with their target and PASS/MISS next to them,
and, for bench/run_all.py, one machine-readable line per figure starting with "@@RESULT "
(run_all.py hides those lines when it echoes a benchmark's output).
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent import control  # noqa: E402
from base.errors import DaemonNotRunning  # noqa: E402

BODY_300 = {"room": "hall", "note": "x" * 270}  # an event body of ~300 B of JSON (sealed directly)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def say(text: str = "") -> None:
    print(text, flush=True)


def header(text: str) -> None:
    say()
    say(f"== {text}")


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def result(bench: str, name: str, value: float | None, unit: str, target: str = "", ok: bool | None = None,
           digits: int = 0, note: str = "") -> None:
    """Print one figure: name, value, unit, target and PASS/MISS (or '-' when informational)."""
    verdict = "-" if ok is None else ("PASS" if ok else "MISS")
    line = f"  {name:<52} {fmt(value, digits):>12} {unit:<8}"
    if target:
        line += f"  target {target:<10} {verdict}"
    if note:
        line += f"  ({note})"
    say(line)
    say("@@RESULT " + json.dumps({"bench": bench, "name": name, "value": value, "unit": unit, "digits": digits,
                                  "target": target, "verdict": verdict if target else "", "note": note}))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


@contextmanager
def temp_root(prefix: str):
    """A fresh temporary directory, removed afterwards unless BENCH_KEEP=1."""
    path = Path(tempfile.mkdtemp(prefix=f"trygg-bench-{prefix}-"))
    try:
        yield path
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            say(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


from tests.support.lab import FILLER_KINDS  # noqa: E402
from tests.support.lab import wait_for as wait_until  # noqa: E402, F401  (one poller for tests and benchmarks)


def status(sock: Path) -> dict:
    """The daemon's status over its control socket (in-process: no `trygg` start-up cost)."""
    return next(control.request(sock, {"op": "status"}, timeout=10))


def depth(st: dict) -> int:
    return sum(c["depth"] for c in st["outbox"]["classes"].values())


def simulate(sock: Path, cls: str, count: int = 1, kind: str | None = None) -> list[str]:
    """Inject events through the control socket (fixed simulated body); ids of those accepted.
    Without a kind, an everyday one of that class (FILLER_KINDS): tests are rate-limited."""
    req = {"op": "simulate", "class": cls, "count": count, "kind": kind or FILLER_KINDS[cls]}
    for attempt in range(50):
        try:
            return [a["id"] for a in control.request(sock, req, timeout=120) if not a.get("done") and a.get("accepted")]
        except DaemonNotRunning as exc:
            # The control server listens with socketserver's default backlog of 5; with a timeout set,
            # connect() to a full Unix-socket backlog fails at once with EAGAIN, which control.request
            # reports as "not running". Nothing was committed yet, so trying again is safe.
            if "not running" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def prefill(sock: Path, cls: str, n: int, connections: int = 16) -> list[str]:
    """Commit n events through the control socket, from several connections at once.

    One `simulate` request injects its events one after the other, and each waits for its own
    group commit (up to group_commit_ms), so parallel requests are what lets group commit batch.
    """
    per = [n // connections + (1 if i < n % connections else 0) for i in range(connections)]
    out: list[list[str]] = [[] for _ in per]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            if per[i]:
                out[i] = simulate(sock, cls, per[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]
    ids = [i for chunk in out for i in chunk]
    if len(ids) != n:
        raise RuntimeError(f"prefill committed {len(ids)} of {n}")
    return ids


def proc_stat(pid: int) -> tuple[float, int, int]:
    """(cpu seconds utime+stime, VmRSS kB, VmHWM kB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return cpu, rss, hwm


def cpu_seconds(pid: int) -> float:
    return proc_stat(pid)[0]


@dataclass
class Setup:
    """What running_lab starts: the lab PKI, the broker, the lab, one connected home and a receiver."""

    pki: object  # base.labpki.LabPKI
    broker: object  # tests.support.broker.Broker
    lab: object  # tests.support.lab.Lab
    home: object  # tests.support.lab.Home
    watch: object  # tests.support.lab.Watch
    sock: Path  # the home's control socket


@contextmanager
def running_lab(root: Path, home_id: str, clients: tuple[str, ...] = ("center",)):
    """A lab broker, a center watching and one connected home, with the parts a bench may need.

    Yields a Setup; every process is stopped on the way out. `clients` are the lab client
    certificates made besides the homes' ("center" is the center's own).
    """
    from base.labpki import make_lab_pki
    from tests.support.broker import Broker
    from tests.support.lab import Lab

    pki = make_lab_pki(root / "pki", list(clients))
    with Broker(root / "broker", pki) as broker:
        lab = Lab(root, pki, broker.port)
        try:
            home = lab.home(home_id)
            watch = lab.watch()
            home.start()
            sock = home.dir / "trygg.sock"
            wait_until(lambda: status(sock)["link"] == "connected", 20, "the home to connect")
            yield Setup(pki, broker, lab, home, watch, sock)
        finally:
            lab.close()


@contextmanager
def running_home(root: Path, home_id: str):
    """A lab broker, a center watching and one connected home: what idle and latency measure.

    Yields (home, watch, control socket); every process is stopped on the way out.
    """
    with running_lab(root, home_id) as s:
        yield s.home, s.watch, s.sock
