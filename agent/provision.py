"""Provisioning for technicians: write a working config and fresh keys for a device or a center.

Checks everything it is given before writing anything (home id, broker address, TLS files,
the center's public key), writes keys at 0600 and configs atomically, and refuses to replace
existing files unless forced, so a re-run can never silently change a home's identity.
"""

import json
import os
import shutil
from pathlib import Path

from . import config as cfgmod
from .errors import ConfigError, KeyFileError
from .keys import Identity, load_public, write_private, write_public
from .protocol.topics import check_home_id


def parse_broker(text: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT) -> (host, port), with a message a technician can act on."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ConfigError(f"--broker: expected HOST:PORT, got {text!r}")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--broker: port must be 1-65535, got {port!r}")
    return host, int(port)


def _check_tls_files(ca: Path, cert: Path, key: Path) -> None:
    for flag, path in (("--ca", ca), ("--cert", cert), ("--key", key)):
        if not Path(path).is_file():
            raise ConfigError(f"{flag}: no such file {path}")
    mode = Path(key).stat().st_mode & 0o777
    if mode & 0o007:
        raise KeyFileError(f"--key: {key} is readable by all users (mode {mode:o}); run chmod 600 {key}")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def render_toml(sections: dict[str, dict]) -> str:
    lines = ["# Written by trygg init; every key is documented in config/trygg.example.toml", ""]
    for name, values in sections.items():
        tables = {f"{name}.{k}": v for k, v in values.items()} if name in cfgmod.DEVICE_SECTIONS else {name: values}
        for table, keys in tables.items():
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
            lines.append("")
    return "\n".join(lines)


def _refuse_existing(paths: list[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}; use --force to replace")


def _write_config(path: Path, text: str, model) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    try:
        cfgmod.load(tmp, model)  # what we write must load
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)


def _broker_section(broker: str, ca: Path, cert: Path, key: Path) -> dict:
    host, port = parse_broker(broker)
    _check_tls_files(ca, cert, key)
    return {"host": host, "port": port, "ca": Path(ca).resolve(), "cert": Path(cert).resolve(), "key": Path(key).resolve()}


# What `trygg init --simulate` wires on mock pins: one of every device, as the default scenario expects.
SIMULATED_HOME = {
    "gpio": {"pins": "mock"},
    "locks": {
        "front-door": {"relay": {"pin": 17}, "bolt": {"pin": 27}, "door": {"pin": 22},
                       "door_alarm": [{"start": "22:00", "end": "07:00"}]},
        "medicine-cabinet": {"relay": {"pin": 23}, "bolt": {"pin": 24}, "door": {"pin": 25},
                             "unlock": {"nurse": "always"}},
    },
    "mats": {
        "bed": {"mode": "bed", "pressure": {"pin": 5}, "supervision": {"pin": 6}},
        "bedside": {"mode": "floor", "pressure": {"pin": 12}, "supervision": {"pin": 13}},
    },
    "buttons": {"wrist": {"input": {"pin": 16}}},
    "motion": {"hall": {"input": {"pin": 26}}},
    "dispensers": {"kitchen": {"doses": [{"time": "08:00"}, {"time": "13:00"}, {"time": "22:00"}],
                               "dispense": {"pin": 18}, "reminder": {"pin": 19}, "taken": {"pin": 20},
                               "empty": {"pin": 21}, "jam": {"pin": 4}}},
}


def init_device(home: str, broker: str, ca: Path, cert: Path, key: Path, center_key: Path, directory: Path,
                force: bool = False, kem: str = "x25519", state_dir: Path | None = None,
                socket: Path | None = None, simulate: bool = False) -> dict[str, Path]:
    """Write trygg.toml, device.key (0600), device.pub and center.pub under directory."""
    try:
        check_home_id(home)
    except ValueError as exc:
        raise ConfigError(f"--home: {exc}") from None
    broker_section = _broker_section(broker, ca, cert, key)
    center = load_public(center_key)
    directory = Path(directory).resolve()
    out = {n: directory / f for n, f in
           (("config", "trygg.toml"), ("device_key", "device.key"), ("device_pub", "device.pub"), ("center_pub", "center.pub"))}
    _refuse_existing(list(out.values()), force)
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    state = Path(state_dir).resolve() if state_dir else directory
    identity = Identity.generate(home, kem)
    write_private(identity, out["device_key"], force=True)
    write_public(identity.public(), out["device_pub"], force=True)
    write_public(center, out["center_pub"], force=True)
    sections = {
        "home": {"id": home},
        "broker": broker_section,
        "keys": {"device": out["device_key"], "center": out["center_pub"]},
        "outbox": {"path": state / "outbox.db"},
        "trust": {"path": state / "trust.db"},
        "control": {"socket": Path(socket).resolve() if socket else directory / "trygg.sock"},
        "simulate": {"enabled": simulate},
        **(SIMULATED_HOME if simulate else {}),
    }
    _write_config(out["config"], render_toml(sections), cfgmod.DeviceConfig)
    return out


def init_center(broker: str, ca: Path, cert: Path, key: Path, directory: Path, force: bool = False,
                kem: str = "x25519", name: str = "center") -> dict[str, Path]:
    """Write center.toml, center.key (0600), center.pub (for devices) and homes/ under directory."""
    broker_section = _broker_section(broker, ca, cert, key)
    directory = Path(directory).resolve()
    out = {n: directory / f for n, f in
           (("config", "center.toml"), ("center_key", "center.key"), ("center_pub", "center.pub"))}
    _refuse_existing(list(out.values()), force)
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    (directory / "homes").mkdir(exist_ok=True, mode=0o750)
    identity = Identity.generate(name, kem)
    write_private(identity, out["center_key"], force=True)
    write_public(identity.public(), out["center_pub"], force=True)
    sections = {
        "center": {"name": name, "key": out["center_key"], "homes_dir": directory / "homes", "store": directory / "center.db"},
        "broker": broker_section,
    }
    _write_config(out["config"], render_toml(sections), cfgmod.CenterConfig)
    return out


def add_home(homes_dir: Path, public_key: Path, force: bool = False) -> Path:
    """Enroll a home's device.pub so the center trusts its signatures and can seal acks to it."""
    public = load_public(public_key)
    try:
        check_home_id(public.name)
    except ValueError as exc:
        raise KeyFileError(f"{public_key}: {exc}") from None
    target = Path(homes_dir) / f"{public.name}.pub"
    _refuse_existing([target], force)
    Path(homes_dir).mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(public_key, tmp)
    os.replace(tmp, target)  # a rename changes the directory, so a running receiver re-reads it
    return target
