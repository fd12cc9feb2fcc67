"""Every command action a device understands, and the arguments each takes: declared once, here.

The device refuses any other action or argument (agent/policy.py) and registers one handler and
its default roles per action (agent/actions.py); the center builds each command's arguments
with the action's model (center/commander.py). Types only: what the values must be (a lock this
home has, a key it has staged) is for the device to judge, with its reasons. No I/O.
"""

from typing import Annotated, Literal

from pydantic import Field

from .errors import MessageError
from .times import Strict
from .wiremodel import check

Text = Annotated[str, Field(max_length=256)]  # what a command argument may carry (messages.ArgValue)


class NoArgs(Strict):
    """No arguments."""


class LockArgs(Strict):
    lock: Text  # which of the home's locks


class CenterKeyArgs(Strict):
    kid: Text  # the id of the center key the device should switch to


CaseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", strict=True)]  # the center's case id (a UUID)


class HelpComingArgs(Strict):
    """Tell the resident help is on its way: the alarm case accepted (for the record), and how
    long the alarm button's light stays steady (left out: the home's [help_coming] minutes).
    Strict: a minute count sent as true or 30.0 is refused, not read as 1 or 30."""

    case: CaseId | None = None
    minutes: Annotated[int, Field(ge=1, le=240, strict=True)] | None = None


class GrantArgs(Strict):
    """The parts of the resident's look-in grant to change; the rest stays."""

    privacy: Literal["none", "blur", "silhouette"] | None = None
    max_per_night: int | None = Field(default=None, ge=0, le=50)
    roles: Text | None = None  # comma-separated
    windows: Text | None = None  # comma-separated HH:MM-HH:MM
    times: Text | None = None  # comma-separated HH:MM ("" clears them)
    tolerance_s: int | None = Field(default=None, ge=0, le=6 * 3600)


ACTIONS: dict[str, type[Strict]] = {
    "unlock": LockArgs,
    "lock": LockArgs,
    "ping": NoArgs,
    "status": NoArgs,
    "switch_center_key": CenterKeyArgs,
    "lookin": NoArgs,
    "lookin_grant": GrantArgs,
    "help_coming": HelpComingArgs,
}
ACTION_ARGS: dict[str, tuple[str, ...]] = {name: tuple(model.model_fields) for name, model in ACTIONS.items()}


def command_args(action: str, args: dict) -> dict:
    """A command's arguments checked against its action's model with strict types (unset ones,
    None, left out), or MessageError (a ValueError, with a code) with one line saying
    what is wrong: `30.0` or `true` is not a count of minutes, `"5"` is not a number."""
    model = ACTIONS.get(action)
    if model is None:
        raise ValueError(f"no action {action!r} (known: {', '.join(ACTIONS)})")
    try:
        return check(model, {k: v for k, v in args.items() if v is not None}, "args").model_dump(exclude_none=True)
    except MessageError as exc:
        raise MessageError(f"{action}: {exc}", code=exc.code, where=exc.where) from None
