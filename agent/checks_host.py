"""Doctor: what the device itself must offer - a synchronized clock, free disk, GPIO pins (a pin
factory, and each configured pin free), and the camera and speaker the config names.

Everything outside is passed in (the clock's state, the pin factory, the paths under /proc and
/dev, the PATH lookup), so tests drive these checks with gpiozero's MockFactory and files of
their own. Nothing here drives a pin: a pin is only reserved and opened as an input, then
released, and only while the daemon is not running (the daemon holds its pins itself).
"""

import warnings
from importlib.util import find_spec
from pathlib import Path

from base.doctor import Verdict, failed, passed, warned

PI5_FIX = ("apt install python3-lgpio (a Raspberry Pi 5's pins need lgpio; a virtualenv needs "
           "--system-site-packages to see it), then restart trygg")
PIN_FIX = "apt install python3-lgpio (or python3-rpi-lgpio), then restart trygg"


def check_clock(synced: bool) -> Verdict:
    """The kernel's NTP state (base/clock.py): events say whether their time can be believed."""
    if synced:
        return passed("clock", "synchronized (NTP)")
    return warned("clock", "NOT synchronized: event times are marked approximate, visit windows and look-ins are "
                  "refused, certificates may look expired", "timedatectl set-ntp true; check timedatectl "
                  "timesync-status (the NTP server must be reachable)")


def check_disk(cfg, free_bytes) -> Verdict:
    """Free space where the outbox lives, against its limits ([outbox] min_free_bytes, max_bytes)."""
    where = cfg.outbox.path.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    free = free_bytes(where)
    mib = free / 1048576
    low, room = cfg.outbox.min_free_bytes, cfg.outbox.min_free_bytes + cfg.outbox.max_bytes
    fix = f"free space on the file system of {where} (old logs: journalctl --vacuum-size=50M)"
    if free < low:
        return failed("disk", f"{mib:.1f} MiB free at {where}: below [outbox] min_free_bytes, the outbox "
                      "stops growing and drops old telemetry", fix)
    if free < room:
        return warned("disk", f"{mib:.1f} MiB free at {where}: less than the outbox may need "
                      f"({room / 1048576:.0f} MiB with its margin)", fix)
    return passed("disk", f"{mib:.0f} MiB free at {where}")


def load_factory(load_default, model_file: Path):
    """(factory, None) or (None, Verdict): gpiozero's default factory, and what to do without one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gpiozero warns once per factory it falls back from
            return load_default(), None
    except Exception as exc:  # noqa: BLE001 - gpiozero raises BadPinFactory, ImportError or its own
        try:
            model = model_file.read_text(errors="replace").strip("\x00\n ")
        except OSError:
            model = ""
        on = f" on {model}" if model else " (not a Raspberry Pi?)"
        fix = PI5_FIX if "Raspberry Pi 5" in model else PIN_FIX
        return None, failed("gpio", f"no GPIO pin factory{on}: {type(exc).__name__}: {exc}", fix)


def check_gpio(cfg, load_default, model_file: Path, daemon_running: bool) -> list[Verdict]:
    """The pin factory, then each configured pin: free (not reserved, and the pin can be opened)."""
    pins = cfg.pins()
    if cfg.gpio.pins == "mock":
        return [warned("gpio", '[gpio] pins = "mock": every device runs on simulated pins, no real device works',
                       'set [gpio] pins = "board" (mock is for demos and tests)')]
    factory, problem = load_factory(load_default, model_file)
    if problem:
        if not pins:
            return [warned(problem.check, problem.detail + " (no device uses a pin yet)", problem.fix)]
        return [problem]
    verdicts = [passed("gpio", f"pin factory {type(factory).__name__}")]
    if daemon_running:
        verdicts.append(passed("pins", f"{len(pins)} pins held by the running daemon (stop it to check each one: "
                               "systemctl stop trygg)"))
        return verdicts
    verdicts += check_pins(factory, pins)
    return verdicts


class _Reserver:
    """What gpiozero's reservations need of a requester: it conflicts with any other user."""

    def _conflicts_with(self, other) -> bool:
        return True

    def __repr__(self) -> str:
        return "<trygg doctor>"


def check_pins(factory, pins: list[tuple[str, int]]) -> list[Verdict]:
    """One verdict per pin in use by something else or unusable; one pass when all are free."""
    me, bad = _Reserver(), []
    for where, number in pins:
        name = f"GPIO{number}"
        try:
            factory.reserve_pins(me, name)
        except Exception as exc:  # noqa: BLE001 - GPIOPinInUse, PinInvalidPin, ...
            bad.append(failed("pins", f"{where}: {name} cannot be used: {exc}",
                              f"free {name} (another program or device holds it) or wire {where} to a free pin"))
            continue
        try:
            factory.pin(name).close()  # another process holding the line fails here (lgpio: busy)
        except Exception as exc:  # noqa: BLE001
            bad.append(failed("pins", f"{where}: {name} cannot be opened: {type(exc).__name__}: {exc}",
                              f"stop whatever holds {name} (gpioinfo shows it), or wire {where} to a free pin"))
        finally:
            factory.release_pins(me, name)
    return bad or [passed("pins", f"{len(pins)} configured pins free")]


def check_camera(cfg, dev: Path = Path("/dev"), camera_info=None) -> Verdict:
    camera = cfg.lookin.camera
    if camera == "none":
        return passed("camera", "none configured")
    if camera == "synthetic":
        return warned("camera", "the synthetic demo camera: look-ins show a generated room",
                      '[lookin] camera = "picamera2" (Pi camera) or "opencv" (USB)')
    if camera == "opencv":
        device = cfg.lookin.device
        path = dev / f"video{device}" if isinstance(device, int) else Path(device)
        if not path.exists():
            return failed("camera", f"USB camera {path} not found", "plug in the camera (ls /dev/video*) or fix "
                          "[lookin] device")
        if find_spec("cv2") is None:
            return failed("camera", "OpenCV is not installed", "apt install python3-opencv")
        return passed("camera", f"USB camera {path} present")
    if find_spec("picamera2") is None:
        return failed("camera", "picamera2 is not installed", "apt install python3-picamera2")
    if camera_info is None:
        from picamera2 import Picamera2  # only on a Pi: from the OS packages

        camera_info = Picamera2.global_camera_info
    cameras = camera_info()
    if not cameras:
        return failed("camera", "no Pi camera found", "check the camera's ribbon cable; rpicam-hello --list-cameras")
    return passed("camera", f"Pi camera {cameras[0].get('Model', '?')}")


def check_speaker(cfg, which, cards: Path = Path("/proc/asound/cards")) -> Verdict:
    hc = cfg.help_coming
    if hc.speaker == "none":
        return passed("speaker", "none configured")
    if hc.output_file is not None:
        return warned("speaker", f"writes to {hc.output_file} instead of playing (tests and demos)",
                      "remove [help_coming] output_file so the resident hears it")
    tools = (["espeak-ng"] if hc.speaker == "speech" else []) + ["aplay"]
    missing = [t for t in tools if which(t) is None]
    if missing:
        return failed("speaker", f"{', '.join(missing)} not installed",
                      "apt install " + " ".join("espeak-ng" if t == "espeak-ng" else "alsa-utils" for t in missing))
    try:
        listed = cards.read_text()
    except OSError:
        listed = ""
    if not listed.strip() or "no soundcards" in listed:
        return failed("speaker", "no sound card found", "connect the speaker (aplay -l lists sound cards)")
    return passed("speaker", f"{hc.speaker} on {hc.device or 'the default sound card'}")
