"""Provisioning the receiving side: `trygg center init` (config and the center key),
`trygg center add-home` (enrolling a home's public key) and `add-homes` (many at once).
Checks before it writes, keys 0600, configs and enrolled keys atomically, nothing replaced
unless forced. A home's key file is checked by one function, `check_home_key`, for one home
or two thousand; a batch is checked whole before its first file is written.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from base.errors import KeyFileError, TryggError
from base.keys import Identity, PublicIdentity, load_public, parse_public, write_private, write_public
from base.provisioning import broker_section, refuse_existing, render_toml, write_config
from protocol.names import STAFF_NAME_RULE, is_staff_name
from protocol.topics import check_home_id

from .config import CenterConfig


def init_center(broker: str, ca: Path, cert: Path, key: Path, directory: Path, force: bool = False,
                kem: str = "x25519", name: str = "center", store_url: str = "",
                state_dir: Path | None = None) -> dict[str, Path]:
    """Write center.toml, center.key (0600), center.pub (for devices) and homes/ under directory;
    the SQLite store and the console's session key go to state_dir (default: directory), which
    the services may write (their units make /etc read-only).

    With a PostgreSQL store, receivers share the homes' messages (an MQTT shared subscription):
    every receiver of the site is initialised with the same --store.
    """
    broker = broker_section(broker, ca, cert, key)
    directory = Path(directory).resolve()
    out = {n: directory / f for n, f in
           (("config", "center.toml"), ("center_key", "center.key"), ("center_pub", "center.pub"))}
    refuse_existing(list(out.values()), force)
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    (directory / "homes").mkdir(exist_ok=True, mode=0o750)
    state = Path(state_dir).resolve() if state_dir else directory
    state.mkdir(parents=True, exist_ok=True, mode=0o750)
    identity = Identity.generate(name, kem)
    write_private(identity, out["center_key"], force=True)
    write_public(identity.public(), out["center_pub"], force=True)
    sections = {
        "center": {"name": name, "key": out["center_key"], "homes_dir": directory / "homes", "store": state / "center.db"},
        "broker": broker,
    }
    if store_url:
        sections["store"] = {"url": store_url}
        sections["center"]["shared_group"] = "trygg"
    write_config(out["config"], render_toml(sections), CenterConfig)
    return out


@dataclass(frozen=True)
class HomeKey:
    """A home's device.pub as checked; what is enrolled is exactly these bytes, read once."""

    file: Path
    public: PublicIdentity
    data: bytes

    @property
    def home(self) -> str:
        return self.public.name


def check_home_key(public_key: Path) -> HomeKey:
    """The check add-home and add-homes share: a readable Trygg public key file whose name is a
    valid home id. KeyFileError names the file and what is wrong."""
    path = Path(public_key)
    try:
        data = path.read_bytes()
        parsed = json.loads(data)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable Trygg key file ({exc})") from None
    public = parse_public(parsed, path)
    try:
        check_home_id(public.name)
    except ValueError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    return HomeKey(path, public, data)


def add_home(homes_dir: Path, public_key: Path, force: bool = False) -> Path:
    """Enroll a home's device.pub so the center trusts its signatures and can seal acks to it."""
    key = check_home_key(public_key)
    return _enroll(homes_dir, key.home, key.data, force)


def add_staff(staff_dir: Path, public_key: Path, force: bool = False) -> Path:
    """Enroll a staff member's public key (made in their browser by the console): their signed
    case actions and console sign-ins are checked against it; the private key never comes here."""
    public = load_public(public_key)
    if not is_staff_name(public.name):
        raise KeyFileError(f"{public_key}: {public.name!r} is not a staff name ({STAFF_NAME_RULE})")
    return _enroll(staff_dir, public.name, Path(public_key).read_bytes(), force)


def _enroll(directory: Path, name: str, data: bytes, force: bool) -> Path:
    target = Path(directory) / f"{name}.pub"
    refuse_existing([target], force)
    _write_key(target, data)
    return target


def _write_key(target: Path, data: bytes) -> None:
    """Whole or not at all: a receiver globs *.pub, so it never sees the .tmp being written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)  # a rename changes the directory, so a running receiver re-reads it


# -- many homes at once ------------------------------------------------------------------------
@dataclass(frozen=True)
class Enrollment:
    home: str
    file: Path
    result: str  # enrolled, replaced, unchanged

    def to_json(self) -> dict:
        return {"home": self.home, "file": str(self.file), "result": self.result}


class BatchRefused(TryggError, ValueError):
    """Some files of a batch are bad, so none was enrolled; `problems` has one line per bad file."""

    def __init__(self, problems: list[str], total: int) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} of {total} key files refused; nothing was enrolled")


def key_files_in(folder: Path) -> list[Path]:
    """The *.pub files directly in folder, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KeyFileError(f"{folder}: no such folder")
    files = sorted(p for p in folder.glob("*.pub"))
    if not files:
        raise KeyFileError(f"{folder}: no .pub files in this folder")
    return files


def key_files_listed(list_file: Path) -> list[Path]:
    """The paths in a list file, one a line; blank lines and lines starting with # are skipped,
    a relative path is relative to the list file's folder."""
    list_file = Path(list_file)
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"--list: cannot read {list_file} ({exc})") from None
    files = [list_file.parent / line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not files:
        raise KeyFileError(f"--list: {list_file} names no key files")
    return files


def add_homes(homes_dir: Path, files: list[Path], force: bool = False) -> list[Enrollment]:
    """Enroll many homes: every file checked as add-home checks it, and the batch as a whole,
    before anything is written; see `_judge` for the checks. A home already enrolled with this
    very key is unchanged, so an installer can run the same command again."""
    homes_dir = Path(homes_dir)
    problems: list[str] = []
    seen: dict[str, Path] = {}
    plan: list[tuple[HomeKey, str]] = []
    for file in files:
        try:
            plan.append(_judge(file, homes_dir, seen, force))
        except KeyFileError as exc:
            problems.append(str(exc))
    if problems:
        raise BatchRefused(problems, len(files))
    done: list[Enrollment] = []
    for key, result in plan:
        if result != "unchanged":
            try:
                _write_key(homes_dir / f"{key.home}.pub", key.data)
            except OSError as exc:  # each file is whole or absent, so running it again finishes the batch
                raise TryggError(f"{key.file}: could not enroll {key.home} ({exc}); {len(done)} of {len(plan)} "
                                 "homes were done before it: fix the cause and run the same command again") from None
        done.append(Enrollment(key.home, key.file, result))
    return done


def _judge(file: Path, homes_dir: Path, seen: dict[str, Path], force: bool) -> tuple[HomeKey, str]:
    """One file of a batch, checked in this order: a valid home key (`check_home_key`); the
    only file for its home in this batch; its home not enrolled, or enrolled with this same key
    (unchanged), or with another key and force given (replaced). KeyFileError names the file."""
    key = check_home_key(file)
    if key.home in seen:
        other = seen[key.home]
        if os.path.realpath(other) == os.path.realpath(file):
            raise KeyFileError(f"{file}: listed twice")
        raise KeyFileError(f"{file}: home {key.home} is also in {other}; give one key per home")
    seen[key.home] = Path(file)
    target = homes_dir / f"{key.home}.pub"
    if not target.exists():
        return key, "enrolled"
    try:
        if load_public(target).to_json() == key.public.to_json():
            return key, "unchanged"
    except KeyFileError:
        pass  # an enrolled file that does not load is not this key
    if not force:
        raise KeyFileError(f"{file}: home {key.home} is enrolled with a different key ({target}); "
                           "use --force to replace it")
    return key, "replaced"
