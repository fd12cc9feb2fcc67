"""What each allowed command does on the device: the glue from a verdict to a driver or setting.

Locks are driven by their drivers (anything with unlock() and lock() returning a dict of
details; an exception means the action failed). Until the door-lock driver exists, a
simulated lock stands in and records the action. Policy was already checked (commands.py).
"""

from typing import Callable

from .commands import Action, ActionFailed
from .protocol.messages import CommandMessage


def build_actions(locks: dict, status: Callable[[], dict], switch_center_key: Callable[[str], str]) -> dict[str, Action]:
    def unlock(cmd: CommandMessage, staff) -> dict:
        return {"lock": cmd.args["lock"], **locks[cmd.args["lock"]].unlock()}

    def lock(cmd: CommandMessage, staff) -> dict:
        return {"lock": cmd.args["lock"], **locks[cmd.args["lock"]].lock()}

    def ping(cmd: CommandMessage, staff) -> dict:
        return {"pong": True}

    def device_status(cmd: CommandMessage, staff) -> dict:
        return {"status": status()}

    def switch(cmd: CommandMessage, staff) -> dict:
        try:
            return {"center_key": switch_center_key(str(cmd.args.get("kid", "")))}
        except ValueError as exc:
            raise ActionFailed(str(exc)) from None

    return {"unlock": unlock, "lock": lock, "ping": ping, "status": device_status, "switch_center_key": switch}
