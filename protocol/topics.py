"""MQTT topic names. Topics carry routing metadata only: a home id and a priority class.

    trygg/v1/<home>/up/<class>    device -> center, sealed events
    trygg/v1/<home>/down/ack      center -> device, sealed signed acknowledgements
    trygg/v1/<home>/down/cmd      center -> device, sealed commands signed by a staff key
    trygg/v1/<home>/status        device -> center, retained signed presence (no personal data)
    trygg/v1/<home>/lookin        device -> the staff member who asked, a look-in picture sealed
                                  to their key; never retained, never queued on the device
"""

import re
from dataclasses import dataclass

PREFIX = "trygg/v1"
from .events import CLASSES  # alarm, event, telemetry: most important first
HOME_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
HOME_ID_RULE = "1-63 characters a-z, 0-9 and '-', starting with a letter or digit"

UP_WILDCARD = f"{PREFIX}/+/up/+"
STATUS_WILDCARD = f"{PREFIX}/+/status"


def check_home_id(home: str) -> str:
    """Return home unchanged when it is a valid home id, else raise ValueError naming the rule."""
    if not isinstance(home, str) or not HOME_ID_RE.fullmatch(home):
        raise ValueError(f"home id must be {HOME_ID_RULE}, got {home!r}")
    return home


def up(home: str, cls: str) -> str:
    if cls not in CLASSES:
        raise ValueError(f"class must be one of {', '.join(CLASSES)}, got {cls!r}")
    return f"{PREFIX}/{check_home_id(home)}/up/{cls}"


def ack(home: str) -> str:
    return f"{PREFIX}/{check_home_id(home)}/down/ack"


def command(home: str) -> str:
    return f"{PREFIX}/{check_home_id(home)}/down/cmd"


def status(home: str) -> str:
    return f"{PREFIX}/{check_home_id(home)}/status"


def lookin(home: str) -> str:
    return f"{PREFIX}/{check_home_id(home)}/lookin"


@dataclass(frozen=True)
class Topic:
    """A parsed topic: which home, which kind of channel, and the class for uplink events."""

    home: str
    channel: str  # "up", "ack", "cmd", "status", "lookin"
    cls: str | None = None


def parse(topic: str) -> Topic:
    """Parse a Trygg topic; raise ValueError for anything that is not exactly one of ours."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX:
        raise ValueError(f"not a trygg/v1 topic: {topic!r}")
    home = check_home_id(parts[2])
    rest = parts[3:]
    if rest in (["status"], ["lookin"]):
        return Topic(home, rest[0])
    if len(rest) == 2 and rest[0] == "up" and rest[1] in CLASSES:
        return Topic(home, "up", rest[1])
    if len(rest) == 2 and rest[0] == "down" and rest[1] in ("ack", "cmd"):
        return Topic(home, rest[1])
    raise ValueError(f"unknown trygg/v1 topic: {topic!r}")
