"""Writing a side's config at provisioning: the broker section, TLS files checked, TOML written
atomically and only when it loads, existing files never replaced unless forced. Shared by
`trygg init` (agent/provision.py) and `trygg center init` (center/provision.py).
"""

import json
import os
from pathlib import Path

from .configbase import load
from .errors import ConfigError, KeyFileError


def parse_broker(text: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT) -> (host, port), with a message a technician can act on."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ConfigError(f"--broker: expected HOST:PORT, got {text!r}")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--broker: port must be 1-65535, got {port!r}")
    return host, int(port)


def check_tls_files(ca: Path, cert: Path, key: Path) -> None:
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


def render_toml(sections: dict[str, dict], nested: tuple[str, ...] = ()) -> str:
    """A config file from sections; a section named in `nested` holds one table per device."""
    lines = ["# Written by trygg init; every key is documented in config/trygg.example.toml", ""]
    for name, values in sections.items():
        tables = {f"{name}.{k}": v for k, v in values.items()} if name in nested else {name: values}
        for table, keys in tables.items():
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
            lines.append("")
    return "\n".join(lines)


def refuse_existing(paths: list[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}; use --force to replace")


def write_config(path: Path, text: str, model) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    try:
        load(tmp, model)  # what we write must load
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)


def broker_section(broker: str, ca: Path, cert: Path, key: Path) -> dict:
    host, port = parse_broker(broker)
    check_tls_files(ca, cert, key)
    return {"host": host, "port": port, "ca": Path(ca).resolve(), "cert": Path(cert).resolve(), "key": Path(key).resolve()}
