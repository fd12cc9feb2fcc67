"""Provisioning the receiving side: `trygg center init` (config and the center key) and
`trygg center add-home` (enrolling a home's public key). Checks before it writes, keys 0600,
configs atomically, nothing replaced unless forced.
"""

import os
import shutil
from pathlib import Path

from base.errors import KeyFileError
from base.keys import Identity, load_public, write_private, write_public
from base.provisioning import broker_section, refuse_existing, render_toml, write_config
from protocol.names import STAFF_NAME_RULE, is_staff_name
from protocol.topics import check_home_id

from .config import CenterConfig


def init_center(broker: str, ca: Path, cert: Path, key: Path, directory: Path, force: bool = False,
                kem: str = "x25519", name: str = "center", store_url: str = "") -> dict[str, Path]:
    """Write center.toml, center.key (0600), center.pub (for devices) and homes/ under directory.

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
    identity = Identity.generate(name, kem)
    write_private(identity, out["center_key"], force=True)
    write_public(identity.public(), out["center_pub"], force=True)
    sections = {
        "center": {"name": name, "key": out["center_key"], "homes_dir": directory / "homes", "store": directory / "center.db"},
        "broker": broker,
    }
    if store_url:
        sections["store"] = {"url": store_url}
        sections["center"]["shared_group"] = "trygg"
    write_config(out["config"], render_toml(sections), CenterConfig)
    return out


def add_home(homes_dir: Path, public_key: Path, force: bool = False) -> Path:
    """Enroll a home's device.pub so the center trusts its signatures and can seal acks to it."""
    public = load_public(public_key)
    try:
        check_home_id(public.name)
    except ValueError as exc:
        raise KeyFileError(f"{public_key}: {exc}") from None
    return _enroll(homes_dir, public_key, public.name, force)


def add_staff(staff_dir: Path, public_key: Path, force: bool = False) -> Path:
    """Enroll a staff member's public key (made in their browser by the console): their signed
    case actions and console sign-ins are checked against it; the private key never comes here."""
    public = load_public(public_key)
    if not is_staff_name(public.name):
        raise KeyFileError(f"{public_key}: {public.name!r} is not a staff name ({STAFF_NAME_RULE})")
    return _enroll(staff_dir, public_key, public.name, force)


def _enroll(directory: Path, public_key: Path, name: str, force: bool) -> Path:
    target = Path(directory) / f"{name}.pub"
    refuse_existing([target], force)
    Path(directory).mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(public_key, tmp)
    os.replace(tmp, target)  # a rename changes the directory, so a running receiver re-reads it
    return target
