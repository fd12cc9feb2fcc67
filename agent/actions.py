"""What each allowed command does on the device: the glue from a verdict to a driver or setting.

Locks are driven by their drivers (drivers/lock.py: unlock(by) and lock(by) return a dict of
details). A jammed lock refuses before trying; a bolt that does not move is a failed command.
Look-ins are lookin.py's; a grant change that does not validate is refused with the reason.
Policy was already checked (commands.py).
"""

from typing import Callable

from drivers.lock import LockError, LockJammed

from .commands import Action, ActionFailed, ActionRefused
from base.errors import ConfigError
from protocol.messages import CommandMessage


def build_actions(locks: dict, status: Callable[[], dict], switch_center_key: Callable[[str], str],
                  lookin: Action | None = None, change_grant: Callable[[dict, str], dict] | None = None
                  ) -> dict[str, Action]:
    """The actions this device can carry out; without a camera there is no `lookin` or `lookin_grant`."""
    def drive(cmd: CommandMessage, staff, what: str) -> dict:
        try:
            return {"lock": cmd.args["lock"], **getattr(locks[cmd.args["lock"]], what)(by=staff.name)}
        except LockJammed as exc:
            raise ActionRefused(str(exc)) from None
        except LockError as exc:
            raise ActionFailed(str(exc)) from None

    def unlock(cmd: CommandMessage, staff) -> dict:
        return drive(cmd, staff, "unlock")

    def lock(cmd: CommandMessage, staff) -> dict:
        return drive(cmd, staff, "lock")

    def ping(cmd: CommandMessage, staff) -> dict:
        return {"pong": True}

    def device_status(cmd: CommandMessage, staff) -> dict:
        return {"status": status()}

    def switch(cmd: CommandMessage, staff) -> dict:
        try:
            return {"center_key": switch_center_key(str(cmd.args.get("kid", "")))}
        except ValueError as exc:
            raise ActionFailed(str(exc)) from None

    def grant(cmd: CommandMessage, staff) -> dict:
        try:
            return {"grant": change_grant(dict(cmd.args), staff.name)}
        except ConfigError as exc:
            raise ActionRefused(str(exc)) from None

    actions = {"unlock": unlock, "lock": lock, "ping": ping, "status": device_status, "switch_center_key": switch}
    if lookin is not None:
        actions.update(lookin=lookin, lookin_grant=grant)
    return actions
