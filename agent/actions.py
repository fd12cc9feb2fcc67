"""What each allowed command does on the device, and who may give it unless [roles] says otherwise.

Each action the protocol declares (protocol/actions.py) is registered here once, with its
handler and its default roles (`@handles`); DEFAULT_ROLES, the config's default [roles], is
made from those registrations. Locks are driven by their drivers (drivers/lock.py: unlock(by)
and lock(by) return a dict of details): a jammed lock refuses before trying, a bolt that does
not move is a failed command. Look-ins are lookin.py's; a grant change that does not validate
is refused with the reason. Telling the resident help is coming is helpcoming.py's; its
arguments' values are checked here against the protocol's model, since policy checks only
their names. Policy was already checked (commands.py).
"""

from dataclasses import dataclass
from functools import partial
from typing import Callable

from base.errors import ConfigError
from drivers.lock import LockError, LockJammed
from protocol.actions import ACTIONS, command_args
from protocol.messages import CommandMessage

from .commands import Action, ActionFailed, ActionRefused
from .helpcoming import NOTHING, HelpFailed, HelpRefused


@dataclass(frozen=True)
class Parts:
    """What the handlers act on: this home's locks, its status, its center keys, its camera, and
    how it tells the resident help is coming (helpcoming.HelpComing: case, minutes -> dict)."""

    locks: dict
    status: Callable[[], dict]
    switch_center_key: Callable[[str], str]
    lookin: Action | None
    change_grant: Callable[[dict, str], dict] | None
    help_coming: Callable[[str | None, int | None], dict] | None = None


_HANDLERS: dict[str, tuple[Callable, tuple[str, ...]]] = {}  # action -> (handler, default roles)


def handles(action: str, *default_roles: str):
    """Register the handler of one of the protocol's actions, and who may give it by default."""
    if action not in ACTIONS:
        raise ValueError(f"{action!r} is not an action of the protocol (protocol/actions.py)")

    def register(handler: Callable) -> Callable:
        _HANDLERS[action] = (handler, default_roles)
        return handler
    return register


def _drive(parts: Parts, cmd: CommandMessage, staff, what: str) -> dict:
    try:
        return {"lock": cmd.args["lock"], **getattr(parts.locks[cmd.args["lock"]], what)(by=staff.name)}
    except LockJammed as exc:
        raise ActionRefused(str(exc), "jammed") from None
    except LockError as exc:
        raise ActionFailed(str(exc), "failed") from None


@handles("unlock", "night-staff", "nurse")
def unlock(parts: Parts, cmd: CommandMessage, staff) -> dict:
    return _drive(parts, cmd, staff, "unlock")


@handles("lock", "night-staff", "nurse", "technician")
def lock(parts: Parts, cmd: CommandMessage, staff) -> dict:
    return _drive(parts, cmd, staff, "lock")


@handles("ping", "night-staff", "nurse", "technician")
def ping(parts: Parts, cmd: CommandMessage, staff) -> dict:
    return {"pong": True}


@handles("status", "night-staff", "nurse", "technician")
def device_status(parts: Parts, cmd: CommandMessage, staff) -> dict:
    return {"status": parts.status()}


@handles("switch_center_key", "technician")
def switch(parts: Parts, cmd: CommandMessage, staff) -> dict:
    try:
        return {"center_key": parts.switch_center_key(str(cmd.args.get("kid", "")))}
    except ValueError as exc:
        raise ActionFailed(str(exc), "failed") from None


@handles("lookin", "night-staff")  # a look-in also needs the resident's grant
def lookin(parts: Parts, cmd: CommandMessage, staff) -> dict:
    return parts.lookin(cmd, staff)


@handles("lookin_grant", "nurse")  # the nurse records the resident's consent
def grant(parts: Parts, cmd: CommandMessage, staff) -> dict:
    try:  # the values' JSON types first, with the protocol's model: `true` is not a count
        args = command_args("lookin_grant", dict(cmd.args))
        return {"grant": parts.change_grant(args, staff.name)}
    except (ConfigError, ValueError) as exc:
        raise ActionRefused(str(exc), "invalid") from None


@handles("help_coming", "night-staff", "nurse")  # whoever may come in to help may say so
def help_coming(parts: Parts, cmd: CommandMessage, staff) -> dict:
    try:
        args = command_args("help_coming", dict(cmd.args))
    except ValueError as exc:
        raise ActionRefused(str(exc), "bad_argument") from None
    if parts.help_coming is None:
        raise ActionRefused(NOTHING, "nothing_to_tell")
    try:
        return parts.help_coming(args.get("case"), args.get("minutes"))
    except HelpRefused as exc:  # nothing to tell the resident with
        raise ActionRefused(str(exc), "nothing_to_tell") from None
    except HelpFailed as exc:
        raise ActionFailed(str(exc), "failed") from None


def _default_roles() -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for action, (_, allowed) in _HANDLERS.items():
        for role in allowed:
            roles.setdefault(role, []).append(action)
    return roles


DEFAULT_ROLES = _default_roles()
CAMERA_ACTIONS = ("lookin", "lookin_grant")  # without a camera there is nothing to look in with or to grant


def build_actions(locks: dict, status: Callable[[], dict], switch_center_key: Callable[[str], str],
                  lookin: Action | None = None, change_grant: Callable[[dict, str], dict] | None = None,
                  help_coming: Callable[[str | None, int | None], dict] | None = None) -> dict[str, Action]:
    """The actions this device can carry out; without a camera there is no `lookin` or `lookin_grant`.
    `help_coming` is always there: without a light or speaker it is refused, saying so."""
    parts = Parts(locks, status, switch_center_key, lookin, change_grant, help_coming)
    return {action: partial(handler, parts) for action, (handler, _) in _HANDLERS.items()
            if lookin is not None or action not in CAMERA_ACTIONS}
