"""The center's key files: its own keys through a rotation, and the staff members' key pairs.

Center keys: `key` is the current one (it signs acks and commands are sealed back to it),
`next_key` exists only during a rotation, and retired keys are kept so that events sealed
to an old key before a home switched (still waiting in its outbox) can still be opened.
Staff keys: one Ed25519 + HPKE key pair per person, private file 0600 in staff_dir; the
public file is what a technician enrolls on each device (`trygg staff add`).
"""

import os
from pathlib import Path

from .config import CenterConfig
from base.errors import KeyFileError, TryggError
from base.keys import Identity, PublicIdentity, load_private, load_public, write_private, write_public
from protocol.names import is_staff_name
from protocol.kem import KemPrivate, key_id
from protocol.topics import check_home_id
from base.keys import check_name


def opening_keys(cfg: CenterConfig) -> list[KemPrivate]:
    """Every private HPKE key events may be sealed to: current, next, retired."""
    keys = [load_private(cfg.center.key).kem]
    if cfg.center.next_key.exists():
        keys.append(load_private(cfg.center.next_key).kem)
    if cfg.center.retired_keys.is_dir():
        keys += [load_private(p).kem for p in sorted(cfg.center.retired_keys.glob("*.key"))]
    return keys


def enrolled_home(cfg: CenterConfig, home: str) -> Path:
    """The enrolled home's .pub, or TryggError saying what is wrong with HOME (every command and
    console request that names a home goes through here)."""
    try:
        check_home_id(home)
    except ValueError as exc:
        raise TryggError(f"HOME: {exc}") from None
    path = cfg.center.homes_dir / f"{home}.pub"
    if not path.exists():
        raise TryggError(f"home {home} is not enrolled here (no {path}; trygg center add-home)")
    return path


def _pub(path: Path) -> Path:
    return path.with_suffix(".pub")


def new_staff_key(cfg: CenterConfig, name: str, kem: str, force: bool = False) -> Path:
    """Create NAME.key (0600) and NAME.pub in the staff directory; return the .pub path."""
    check_name(name)
    staff_dir = cfg.center.staff_dir
    staff_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity = Identity.generate(name, kem)
    write_private(identity, staff_dir / f"{name}.key", force)
    write_public(identity.public(), staff_dir / f"{name}.pub", force=True)
    return staff_dir / f"{name}.pub"


def staff_identity(cfg: CenterConfig, name: str) -> Identity:
    check_name(name)
    path = cfg.center.staff_dir / f"{name}.key"
    if not path.exists():
        raise KeyFileError(f"no key for staff member {name!r} at {path} (create one: trygg center staff-key {name})")
    return load_private(path)


def staff_public(cfg: CenterConfig, name: str) -> PublicIdentity | None:
    """An enrolled staff member's public key (their .pub in the staff directory), or None."""
    if not is_staff_name(name):
        return None
    path = cfg.center.staff_dir / f"{name}.pub"
    try:
        return load_public(path) if path.exists() else None
    except KeyFileError:
        return None


def new_next_key(cfg: CenterConfig, kem: str) -> Path:
    """Start a rotation: create the next center key; return its .pub for technicians."""
    if cfg.center.next_key.exists():
        raise KeyFileError(f"{cfg.center.next_key} exists: a rotation is already under way (finish it first)")
    current = load_private(cfg.center.key)
    identity = Identity.generate(current.name, kem)
    write_private(identity, cfg.center.next_key)
    write_public(identity.public(), _pub(cfg.center.next_key), force=True)
    return _pub(cfg.center.next_key)


def promote_next_key(cfg: CenterConfig) -> Path:
    """Finish a rotation: retire the current key (kept for opening old events), make next current."""
    if not cfg.center.next_key.exists():
        raise KeyFileError(f"no next key at {cfg.center.next_key}: start a rotation with trygg center new-key")
    load_private(cfg.center.next_key)  # must be a valid key before anything moves
    cfg.center.retired_keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = load_private(cfg.center.key)
    retired = cfg.center.retired_keys / f"center-{key_id(current.sign.public_key().public_bytes_raw()).hex()}.key"
    if retired.exists():
        raise KeyFileError(f"{retired} exists already: this key was retired before")
    os.link(cfg.center.key, retired)  # the old key is never without a name, even after a crash here
    os.replace(cfg.center.next_key, cfg.center.key)
    if _pub(cfg.center.next_key).exists():
        os.replace(_pub(cfg.center.next_key), _pub(cfg.center.key))
    return cfg.center.key
