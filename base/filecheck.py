"""The files a config names: does each exist where the service needs it, can the service user
read it, and is every private key safe (0600, or 0640 with the service's group, owned by the
service user or root)?

Used by `trygg config validate` and the doctors, so a technician learns about a missing CA file
or a key at 0644 before `run` does (or, worse, before it silently does not). Each side's config
declares what its path keys are (FILES: "section.key" -> one of the kinds below); a section
holding a BrokerConfig gets the broker's rules without declaring them. Reads metadata only,
never a file's contents; never changes a mode.
"""

import os
import pwd
import stat
import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from .configbase import BrokerConfig

FILE = "file"  # must exist, readable by the service
PRIVATE = "private"  # must exist, readable by the service, safe mode
CREATED_PRIVATE = "created-private"  # made by the service at start: its directory must exist; if there, safe mode
OPTIONAL_PRIVATE = "optional-private"  # used only when present: if there, safe mode
DIRECTORY = "directory"  # must exist as a directory the service can enter
KINDS = (FILE, PRIVATE, CREATED_PRIVATE, OPTIONAL_PRIVATE, DIRECTORY)

BROKER_FILES = {"ca": FILE, "cert": FILE, "key": PRIVATE}
SERVICE_USER = "trygg"  # the device's systemd unit runs as this user (systemd/trygg.service)


@dataclass(frozen=True)
class ServiceUser:
    """Who must be able to read the files: the service's user and its groups."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]

    @classmethod
    def lookup(cls, name: str = SERVICE_USER) -> "ServiceUser":
        """The named user when it exists (an installed device), else whoever runs this (a lab)."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = pwd.getpwuid(os.geteuid())
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, frozenset(groups))

    def may(self, st: os.stat_result, bits: tuple[int, int, int]) -> bool:
        """bits: (owner, group, other) permission bits, e.g. read (S_IRUSR, S_IRGRP, S_IROTH)."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            return bool(st.st_mode & bits[0])
        if st.st_gid in self.groups:
            return bool(st.st_mode & bits[1])
        return bool(st.st_mode & bits[2])


READ = (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)
ENTER = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


def service_user_for(model: type[BaseModel]) -> ServiceUser | None:
    """The service user a config's model names (SERVICE_USER), or None when it names none."""
    name = getattr(model, "SERVICE_USER", None)
    return ServiceUser.lookup(name) if name else None


def file_rules(model: type[BaseModel]) -> dict[tuple[str, str], str]:
    """(section, key) -> kind, for every path key the model's FILES (or its broker sections) name."""
    rules = {}
    for section, field in model.model_fields.items():
        if _is_broker(field.annotation):
            rules.update({(section, key): kind for key, kind in BROKER_FILES.items()})
    for where, kind in getattr(model, "FILES", {}).items():
        section, _, key = where.partition(".")
        rules[(section, key)] = kind
    return rules


def _is_broker(annotation) -> bool:
    options = typing.get_args(annotation) or (annotation,)
    return any(isinstance(a, type) and issubclass(a, BrokerConfig) for a in options)


def named_paths(model: type[BaseModel], data: dict, config: BaseModel | None, base: Path) -> list[tuple[str, Path, str]]:
    """(where, absolute path, kind) for every declared path key with a value: from the checked
    config when it passed, else from the file's own values (or the defaults), so one wrong key
    elsewhere does not hide a missing key file."""
    found = []
    for (section, key), kind in file_rules(model).items():
        if config is not None:
            part = getattr(config, section, None)
            value = getattr(part, key, None) if part is not None else None
        else:
            value = _raw_value(model, data, section, key)
        if value is None or not isinstance(value, (str, Path)) or "\x00" in str(value) or str(value) == "":
            continue
        path = Path(value)
        found.append((f"{section}.{key}", path if path.is_absolute() else (base / path).resolve(), kind))
    return found


def _raw_value(model: type[BaseModel], data: dict, section: str, key: str):
    raw = data.get(section) if isinstance(data, dict) else None
    if isinstance(raw, dict) and key in raw:
        return raw[key]
    if raw is None and section not in model.model_fields:
        return None
    field = model.model_fields.get(section)
    options = typing.get_args(field.annotation) or (field.annotation,) if field else ()
    for option in options:
        if isinstance(option, type) and issubclass(option, BaseModel) and key in option.model_fields:
            default = option.model_fields[key].default
            return default if isinstance(default, (str, Path)) else None
    return None


def check_path(where: str, path: Path, kind: str, user: ServiceUser | None, readable: bool = True) -> list[str]:
    """The problems with one named file, each one line naming the key, the path and the fix.
    readable: also check the service user can reach and read it (the doctor does; `config
    validate` checks presence and modes only, as it may run before the user and its groups exist).
    user None: the service user is not known (a config that does not name it): a key's group is
    then not checked, only that nobody else can read it."""
    readable = readable and user is not None
    if kind == CREATED_PRIVATE:
        parent = path.parent
        if not parent.is_dir():
            owner = user.name if user else "SERVICE-USER"
            return [(f"{where}: directory {parent} does not exist; create it for the service: "
                     f"install -d -o {owner} -g {owner} -m 0750 {parent}")]
    try:
        st = path.stat()
    except FileNotFoundError:
        if kind in (CREATED_PRIVATE, OPTIONAL_PRIVATE):
            return []
        what = "directory" if kind == DIRECTORY else "file"
        return [f"{where}: no such {what} {path}"]
    except OSError as exc:
        return [f"{where}: cannot look at {path}: {exc.strerror or exc}"]
    problems = []
    if kind == DIRECTORY and not stat.S_ISDIR(st.st_mode):
        return [f"{where}: {path} is not a directory"]
    if kind != DIRECTORY and not stat.S_ISREG(st.st_mode):
        return [f"{where}: {path} is not a regular file"]
    blocked = _blocked_parent(path, user) if readable else None
    if blocked is not None:
        problems.append(f"{where}: the service user {user.name} cannot reach {path} (directory {blocked} "
                        f"is closed to it); run chmod o+x {blocked} or chgrp {user.name} {blocked}")
    elif readable and not user.may(st, ENTER if kind == DIRECTORY else READ):
        problems.append(f"{where}: the service user {user.name} cannot read {path} (owner uid {st.st_uid}, "
                        f"mode {stat.S_IMODE(st.st_mode):04o}); run chown {user.name} {path}")
    if kind in (PRIVATE, CREATED_PRIVATE, OPTIONAL_PRIVATE):
        problems += private_problems(where, path, st, user)
    if kind == CREATED_PRIVATE:  # an SQLite database: its -wal and -shm hold the same rows
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                problems += private_problems(where, extra, extra.stat(), user)
            except OSError:
                pass
    return problems


def private_problems(where: str, path: Path, st: os.stat_result, user: ServiceUser | None) -> list[str]:
    """A private key or database: 0600, or 0640 when its group is the service's; owned by the
    service user or root; never writable by anyone else. Without a known service user: any group."""
    mode = stat.S_IMODE(st.st_mode)
    group_read_ok = mode & 0o070 == 0o040 and (user is None or st.st_gid == user.gid)
    if mode & 0o007 or (mode & 0o070 and not group_read_ok):
        return [f"{where}: {path} is readable by others (mode {mode:04o}); run chmod 600 {path}"]
    if user is not None and st.st_uid not in (user.uid, 0):
        return [(f"{where}: {path} is owned by uid {st.st_uid}, not {user.name} or root; "
                 f"run chown {user.name} {path}")]
    return []


def _blocked_parent(path: Path, user: ServiceUser) -> Path | None:
    """The first directory on the way to path the user may not enter, if any."""
    if user.uid == 0:
        return None
    for parent in reversed(path.parents):
        try:
            if not user.may(parent.stat(), ENTER):
                return parent
        except OSError:
            return parent
    return None


def check_files(model: type[BaseModel], data: dict, config: BaseModel | None, base: Path,
                user: ServiceUser | None = None, readable: bool = True) -> list[str]:
    """Every problem with every file the config names, one line each (empty: all good).
    user: whose access counts; default: the model's SERVICE_USER, if it names one."""
    user = user or service_user_for(model)
    problems = []
    for where, path, kind in named_paths(model, data, config, base):
        problems += check_path(where, path, kind, user, readable)
    return problems
