#!/usr/bin/env python3
"""Look-in: request -> decrypted picture on disk at the center, and the daemon's memory around it.

Real processes on loopback: Mosquitto with mutual TLS (tests.support.broker), `trygg center watch
--json` (the receiver), and homes running `trygg run` as their own processes with the synthetic
camera at 1280x720, one frame a look-in, an all-day grant (a window 00:00-00:00: no synchronized
clock needed) and max_per_night = 50, no indicator or shutter wired (a shutter would add its
shutter_open_s, 0.5 s by default, to every look-in). Staff are enrolled through the CLI (`trygg
center staff-key`, `trygg staff add`), as in bench/commands.py.

1. The main home (privacy "blur", the default): one warm-up look-in, then BENCH_LOOKINS (40) in one
   `center.commander.Commander` session, as a console would: time from just before
   `look_in()` to just after `center.lookin.write_pictures()` returned (sign, seal, broker, the
   daemon's checks, camera, filter, JPEG, seal to the staff key, broker, open, write 0600).
   Waiting for the device's next challenge between look-ins is not counted.
2. Its daemon's VmRSS (/proc/PID/status), sampled every 5 ms by a thread while look-ins run:
   cold (before the first look-in), idle (settled after the warm-up), peak during, and after
   (settled after the last); and the peak of the short-lived capture process (drivers/capture.py,
   the daemon's child: camera, OpenCV, numpy and the frames live there, never in the daemon).
3. A second home (the per-night count caps one home at 50): LOOKIN_CLI_N (5) whole `trygg center
   lookin --json` invocations (Python start-up included), then the grant changed by a nurse's
   signed `lookin_grant` command to "silhouette" and to "none", LOOKIN_PRIVACY_N (6) look-ins each.
"""

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (env_float, env_int, header, percentile, proc_stat, result, say, status, temp_root,  # noqa: E402
                     wait_until)

B = "lookin"
NIGHT_CAP = 50  # LookinConfig.max_per_night's upper bound; the count is per home and night
N = min(env_int("BENCH_LOOKINS", 40), NIGHT_CAP - 1)  # one of the 50 is the warm-up
CLI_N = env_int("LOOKIN_CLI_N", 5)
PRIVACY_N = env_int("LOOKIN_PRIVACY_N", 6)
SETTLE_S = env_float("LOOKIN_SETTLE_S", 3.0)  # at least this long idle before an RSS reading
SAMPLE_S = 0.005
RSS_SLACK_MB = 5.0
TARGET_S = 1.5
HOME_ID, SIDE_ID = "hem-look", "hem-look-2"
STAFF, NURSE = "anna", "carl"
GRANT = {"camera": "synthetic", "width": 1280, "height": 720, "burst": 1, "privacy": "blur",
         "roles": ["night-staff"], "windows": [{"start": "00:00", "end": "00:00"}], "max_per_night": NIGHT_CAP}
MB = 1024  # kB


# -- memory ------------------------------------------------------------------------------------
class RssSampler:
    """VmRSS of one process every SAMPLE_S in a thread; `peak()` is the highest since `reset()`."""

    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        self.samples = 0
        self.pid = pid
        self._peak = 0
        self.child_peak = 0  # the capture process's VmRSS, highest seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> int:
        text = os.pread(self.fd, 8192, 0)
        at = text.index(b"VmRSS:")
        return int(text[at + 6: text.index(b"kB", at)])

    def children_rss(self) -> int:
        total = 0
        for task in Path(f"/proc/{self.pid}/task").glob("*/children"):
            for child in task.read_text().split():
                try:
                    text = Path(f"/proc/{child}/status").read_text()
                    total += int(text.split("VmRSS:")[1].split("kB")[0])
                except (OSError, IndexError, ValueError):
                    pass  # gone between the listing and the read
        return total

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            rss, child = self.read(), self.children_rss()
            with self._lock:
                self._peak = max(self._peak, rss)
                self.child_peak = max(self.child_peak, child)
                self.samples += 1

    def reset(self) -> None:
        with self._lock:
            self._peak = self.read()

    def peak(self) -> int:
        with self._lock:
            return max(self._peak, self.read())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.fd)


def settled_rss(pid: int, least_s: float = SETTLE_S, limit_s: float = 20.0) -> tuple[int, float]:
    """VmRSS (kB) once it has been idle least_s and stopped moving (< 0.1 MB over 1 s); waited s."""
    started = time.monotonic()
    time.sleep(least_s)
    last = proc_stat(pid)[1]
    while time.monotonic() - started < limit_s:
        time.sleep(1.0)
        now = proc_stat(pid)[1]
        if abs(now - last) < 0.1 * MB:
            return now, time.monotonic() - started
        last = now
    return last, time.monotonic() - started


def mapped(pid: int) -> dict[str, bool]:
    """Whether OpenCV's and numpy's shared objects are mapped into the process."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {"cv2": "cv2" in maps or "libopencv" in maps, "numpy": "numpy" in maps}


# -- the lab -----------------------------------------------------------------------------------
@contextmanager
def camera_lab(root: Path):
    """Broker, receiver, two camera homes provisioned (not started), staff enrolled."""
    from base.labpki import make_lab_pki
    from tests.support.broker import Broker
    from tests.support.lab import Lab, trygg

    pki = make_lab_pki(root / "pki", ["center"])
    with Broker(root / "broker", pki) as broker:
        lab = Lab(root, pki, broker.port)
        try:
            main, side = lab.home(HOME_ID, lookin=GRANT), lab.home(SIDE_ID, lookin=GRANT)
            lab.enroll(main, STAFF, "night-staff")  # makes the key at the center and enrolls it
            pub = root / "center" / "staff" / f"{STAFF}.pub"
            trygg("staff", "add", STAFF, "--key", pub, "--role", "night-staff", "--config", side.config)
            lab.enroll(side, NURSE, "nurse")
            lab.watch()
            yield lab, main, side
        finally:
            lab.close()


def start(home) -> Path:
    home.start()
    sock = home.dir / "trygg.sock"
    wait_until(lambda: status(sock)["link"] == "connected", 20, f"{home.id} to connect")
    return sock


def commander(lab, home_id: str, staff: str):
    from center import config as center_config
    from base.clock import SystemClock
    from base.keys import load_public
    from center import keyring
    from center.commander import Commander

    cfg = center_config.load(lab.center_config)
    return Commander(cfg, keyring.opening_keys(cfg), keyring.staff_identity(cfg, staff),
                     load_public(cfg.center.homes_dir / f"{home_id}.pub"), SystemClock())


# -- look-ins ----------------------------------------------------------------------------------
def look_ins(c, n: int, out: Path, sampler: RssSampler | None = None) -> dict:
    """n look-ins in one session: request -> picture written, per look-in; the picture's facts."""
    from center.lookin import write_pictures

    took, sizes, capture, peaks, bad, shapes = [], [], [], [], [], set()
    for i in range(n):
        old = c.status.challenge
        if sampler:
            sampler.reset()
        t0 = time.monotonic()
        answer, picture = c.look_in(timeout=20)
        if picture is None:
            bad.append(answer.result.get("reason") or answer.outcome)
            continue
        [path] = write_pictures(picture, out / f"look-{i}.jpg")
        t1 = time.monotonic()
        if sampler:
            peaks.append(sampler.peak())
        took.append(t1 - t0)
        sizes.append(answer.result["bytes"])
        capture.append(answer.result["capture_ms"] / 1000)
        shapes.add((picture.width, picture.height, picture.privacy, path.read_bytes()[:2] == b"\xff\xd8"))
        c.wait_for_new_challenge(old, timeout=5)
    return {"took": took, "bytes": sizes, "capture": capture, "peaks": peaks, "bad": bad, "shapes": shapes}


def cli_look_ins(lab, n: int, out: Path) -> dict:
    from tests.support.lab import trygg

    wall, rt, bad = [], [], []
    for i in range(n):
        t0 = time.monotonic()
        proc = trygg("center", "lookin", SIDE_ID, "--as", STAFF, "--out", out / f"cli-{i}.jpg", "--json",
                     "--timeout", 20, "--config", lab.center_config, check=False, timeout=60)
        t1 = time.monotonic()
        answer = json.loads(proc.stdout) if proc.stdout.strip() else {}
        if proc.returncode != 0:
            bad.append(f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}")
            continue
        wall.append(t1 - t0)
        rt.append(answer["round_trip_ms"] / 1000)
    return {"wall": wall, "rt": rt, "bad": bad}


def set_privacy(lab, level: str) -> None:
    with commander(lab, SIDE_ID, NURSE) as c:
        answer = c.send("lookin_grant", {"privacy": level}, timeout=10)
    if answer.outcome != "done":
        raise RuntimeError(f"changing the grant to {level} was {answer.outcome}: {answer.result.get('reason')}")


def ms(values: list[float], p: float) -> float | None:
    return percentile(values, p) * 1000 if values else None


def main() -> None:
    header(f"lookin: {N} look-ins at 1280x720 (synthetic camera, blur) request -> decrypted JPEG on disk, "
           f"mTLS loopback; daemon RSS around them")
    with temp_root("lookin") as root:
        out = root / "pictures"
        out.mkdir()
        with camera_lab(root) as (lab, main_home, side):
            sock = start(main_home)
            pid = main_home.proc.pid
            cold, _ = settled_rss(pid)
            cold_maps = mapped(pid)
            with commander(lab, HOME_ID, STAFF) as c, RssSampler(pid) as sampler:
                warm = look_ins(c, 1, out, sampler)
                idle, idle_wait = settled_rss(pid)
                warm_maps = mapped(pid)
                started = time.monotonic()
                run = look_ins(c, N, out, sampler)
                run_took = time.monotonic() - started
                samples = sampler.samples
                child_peak = sampler.child_peak
            after, after_wait = settled_rss(pid)
            hwm = proc_stat(pid)[2]
            in_use = status(sock)["lookin"]["in_use"]
            counted = status(sock)["lookin"]["used"]

            start(side)
            cli = cli_look_ins(lab, CLI_N, out)
            levels = {}
            for level in ("silhouette", "none"):
                set_privacy(lab, level)
                with commander(lab, SIDE_ID, STAFF) as c:
                    look_ins(c, 1, out)  # warm-up after the grant change
                    levels[level] = look_ins(c, PRIVACY_N, out)

    took = run["took"]
    say(f"\n(1) {len(took)} of {N} look-ins done in one session in {run_took:.0f} s"
        + (f"; not done: {run['bad'][:3]}" if run["bad"] else "")
        + f"; pictures (width, height, privacy, JPEG): {sorted(run['shapes'])}")
    say(f"    the warm-up look-in took {ms(warm['took'], 100):.0f} ms")
    result(B, "look-in request -> picture on disk: p50", ms(took, 50), "ms", digits=0)
    ok = bool(took) and ms(took, 95) < TARGET_S * 1000
    result(B, "look-in request -> picture on disk: p95", ms(took, 95), "ms", f"< {TARGET_S * 1000:.0f} ms", ok,
           digits=0)
    result(B, "look-in request -> picture on disk: max", ms(took, 100), "ms", digits=0)
    result(B, "device part (camera, filter, JPEG, seal): p50", ms(run["capture"], 50), "ms", digits=0,
           note="the result's capture_ms")
    result(B, "sealed picture size: p50", percentile(run["bytes"], 50) if run["bytes"] else None, "bytes",
           note="the result's bytes, blur")

    say(f"\n(2) CLI, `trygg center lookin --json`, {len(cli['wall'])} of {CLI_N} done"
        + (f"; not done: {cli['bad'][:3]}" if cli["bad"] else ""))
    result(B, "CLI look-in invocation wall time: p50", ms(cli["wall"], 50), "ms", digits=0,
           note=f"round_trip_ms inside it p50 {ms(cli['rt'], 50) or 0:.0f} ms; includes Python start-up")
    for level, got in levels.items():
        result(B, f"look-in, privacy {level}: p50", ms(got["took"], 50), "ms", digits=0,
               note=f"{len(got['took'])} look-ins; device part p50 {ms(got['capture'], 50) or 0:.0f} ms; "
                    f"sealed {percentile(got['bytes'], 50) if got['bytes'] else 0:,} bytes"
                    + (f"; not done: {got['bad'][:2]}" if got["bad"] else ""))

    def loaded(m: dict) -> str:
        return ", ".join(f"{k} {'mapped' if v else 'not mapped'}" for k, v in m.items())

    say(f"\n(3) daemon VmRSS (MB = 1024 kB), sampled every {SAMPLE_S * 1000:.0f} ms during look-ins "
        f"({samples:,} samples)")
    say(f"    before the first look-in: {loaded(cold_maps)}; after it: {loaded(warm_maps)}.")
    say("    The camera, OpenCV and the frames live in a short-lived capture process (drivers/capture.py),")
    say("    so the daemon itself should not grow; that process's own peak is printed last.")
    result(B, "RSS cold, before the first look-in", cold / MB, "MB", digits=1)
    result(B, "RSS idle, settled after the warm-up look-in", idle / MB, "MB", digits=1,
           note=f"read {idle_wait:.0f} s after it; warm-up peak {warm['peaks'][0] / MB:.1f} MB" if warm["peaks"]
           else "")
    peaks = run["peaks"]
    result(B, "RSS peak during a look-in: p50 of the per-look-in peaks", percentile(peaks, 50) / MB if peaks else None,
           "MB", digits=1)
    result(B, "RSS peak during the look-ins: max", max(peaks) / MB if peaks else None, "MB", digits=1,
           note=f"VmHWM {hwm / MB:.1f} MB")
    result(B, "RSS after, settled after the last look-in", after / MB, "MB", digits=1,
           note=f"read {after_wait:.0f} s after it; camera in use: {in_use}; {counted} counted tonight")
    grew = (after - idle) / MB
    result(B, "RSS after - idle (after the warm-up)", grew, "MB", f"<= {RSS_SLACK_MB:.0f} MB", grew <= RSS_SLACK_MB,
           digits=1, note=f"after - cold: {(after - cold) / MB:+.1f} MB")
    result(B, "capture process (child) RSS peak", child_peak / MB, "MB", digits=1,
           note="exits after each look-in")
    if grew > RSS_SLACK_MB:
        say("    (bench/README.md, lookin.py, says what held it when this was written)")


if __name__ == "__main__":
    main()
