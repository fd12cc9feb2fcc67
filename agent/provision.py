"""Provisioning a device for technicians: a working config and fresh keys (the center's: center/provision.py).

Checks everything it is given before writing anything (home id, broker address, TLS files,
the center's public key), writes keys at 0600 and configs atomically, and refuses to replace
existing files unless forced, so a re-run can never silently change a home's identity.
"""

from pathlib import Path

from base.errors import ConfigError
from base.keys import Identity, load_public, write_private, write_public
from base.provisioning import broker_section, refuse_existing, write_config
from base.provisioning import render_toml as _render_toml
from protocol.topics import check_home_id

from . import config as cfgmod


def render_toml(sections: dict[str, dict]) -> str:
    """A device config: each device section (locks, mats, ...) holds one table per device."""
    return _render_toml(sections, cfgmod.DEVICE_SECTIONS)


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
    "buttons": {"wrist": {"input": {"pin": 16}, "led": {"pin": 14}}},
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
    broker = broker_section(broker, ca, cert, key)
    center = load_public(center_key)
    directory = Path(directory).resolve()
    out = {n: directory / f for n, f in
           (("config", "trygg.toml"), ("device_key", "device.key"), ("device_pub", "device.pub"), ("center_pub", "center.pub"))}
    refuse_existing(list(out.values()), force)
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    state = Path(state_dir).resolve() if state_dir else directory
    state.mkdir(parents=True, exist_ok=True, mode=0o750)  # the outbox's home: validate and run need it
    identity = Identity.generate(home, kem)
    write_private(identity, out["device_key"], force=True)
    write_public(identity.public(), out["device_pub"], force=True)
    write_public(center, out["center_pub"], force=True)
    sections = {
        "home": {"id": home},
        "broker": broker,
        "keys": {"device": out["device_key"], "center": out["center_pub"]},
        "outbox": {"path": state / "outbox.db"},
        "trust": {"path": state / "trust.db"},
        "control": {"socket": Path(socket).resolve() if socket else directory / "trygg.sock"},
        "simulate": {"enabled": simulate},
        **(SIMULATED_HOME if simulate else {}),
    }
    write_config(out["config"], render_toml(sections), cfgmod.DeviceConfig)
    return out
