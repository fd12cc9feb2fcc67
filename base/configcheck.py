"""Checking a config file in one pass: every problem a technician must fix, listed at once.

`configbase.load` refuses at the first kind of problem, which is what `run` needs. A technician
needs the whole list, so here: a file that is not UTF-8 is one line naming the line of the bad
byte (and the rest is still read); TOML errors are collected one per line (each bad line left
out and the rest read again); the schema is checked on what remains; and the files the config
names are checked (filecheck.py) even when some other key is wrong. Never writes anything.
"""

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .configbase import CONFIG_ENV, _resolve_paths, describe_errors
from .errors import ConfigError
from .filecheck import ServiceUser, check_files

MAX_TOML_ERRORS = 20
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass
class Checked:
    """What one pass over a config file found: the config (when the schema passed) and every problem."""

    path: Path
    model: type[BaseModel] | None = None
    config: BaseModel | None = None
    data: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError(f"{self.path}:\n" + "\n".join(self.errors))


def check_config(path: Path, choose_model: Callable[[dict], type[BaseModel]], user: ServiceUser | None = None,
                 files: bool = True) -> Checked:
    """Read, parse, validate and (files=True) check the named files of one config file: present,
    private keys at safe modes (whether the service user can read them is the doctor's check).

    choose_model: the config model for the parsed sections (a device's or another part's)."""
    path = Path(path)
    checked = Checked(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        checked.errors.append(f"config file not found (use --config PATH or set {CONFIG_ENV})")
        return checked
    except OSError as exc:
        checked.errors.append(f"cannot read the config file: {exc.strerror or exc}")
        return checked
    text = _decode(raw, checked.errors)
    data = _parse_toml(text, checked.errors)
    if data is None:
        return checked
    checked.data = data
    checked.model = model = choose_model(data)
    base = path.parent.resolve()
    try:
        checked.config = _resolve_paths(model.model_validate(data), base, str(path))
    except ValidationError as exc:
        checked.errors += describe_errors(exc).splitlines()
    except ConfigError as exc:  # a NUL in a path: the message is "source:\nwhere: what"
        checked.errors += str(exc).splitlines()[1:]
    if files:
        checked.errors += check_files(model, data, checked.config, base, user, readable=False)
    return checked


def _decode(raw: bytes, errors: list[str]) -> str:
    """UTF-8, or one line per line holding bytes that are not (read on with them replaced)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(f"line {number}: not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
                          "save the file as UTF-8")
    return raw.decode("utf-8", errors="replace")


def _parse_toml(text: str, errors: list[str]) -> dict | None:
    """TOML, with each line that is not valid TOML reported and left out, so the rest is checked too."""
    lines = text.splitlines(keepends=True)
    mended: set[int] = set()
    for _ in range(MAX_TOML_ERRORS):
        try:
            return tomllib.loads("".join(lines))
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            found = _AT.search(message)
            what = _AT.sub("", message)
            what = what[:1].lower() + what[1:]
            if not found:
                errors.append(f"not valid TOML: {what}")
                return None
            number = int(found[1])
            if number in mended:  # the mended header is still wrong: leave it out after all
                lines[number - 1] = "\n"
                continue
            errors.append(f"line {number}: not valid TOML: {what}")
            if number > len(lines) or not lines[number - 1].strip():
                return None  # nothing left to leave out: the rest cannot be read
            lines[number - 1] = _mend_header(lines[number - 1])
            if lines[number - 1] != "\n":
                mended.add(number)
    errors.append(f"more than {MAX_TOML_ERRORS} lines are not valid TOML; fix these first")
    return None


def _mend_header(line: str) -> str:
    """A broken table header (`[broker`) read as the table it names, so its keys are not taken
    for the table above it; any other bad line is left out."""
    name = line.strip().strip("[]").strip()
    if line.lstrip().startswith("[") and re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return f"[{name}]\n"
    return "\n"
