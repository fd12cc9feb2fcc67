"""The resident card: who lives in a home, how to get in, what to do per alarm, whom to call.

Entered by an administrator (`trygg center resident set HOME --file card.json`), read by night
staff in the console's home screen. Personal and health data: stored sealed to the center key
(atrest.Sealer), like the events; only the home id and the time it was changed are readable.
"""

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from base.errors import TryggError

from .atrest import Sealer
from .db import Database

RESIDENT_CONTEXT = "trygg-center/v1/resident/"
Kind = Annotated[str, Field(min_length=1, max_length=64)]
Note = Annotated[str, Field(max_length=1000)]
LockName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # as the device's config names it
Label = Annotated[str, Field(min_length=1, max_length=60)]


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    relation: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=40, pattern=r"^[0-9+ ()-]*$")


class ResidentCard(BaseModel):
    """What staff need at 3 a.m.: every field plain text, short, and checked."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    address: str = Field(default="", max_length=200)
    entry: Note = ""  # key box, door code, dog, stairs
    care: dict[Kind, Note] = Field(default_factory=dict, max_length=20)  # alarm kind -> what to do for this person
    contacts: list[Contact] = Field(default_factory=list, max_length=10)
    notes: Note = ""
    # The home's locks as its device names them, with what staff call them ("front-door":
    # "Ytterdörren"): the console offers Unlock / Lock for each. None listed: the front door.
    locks: dict[LockName, Label] = Field(default_factory=dict, max_length=8)


class ResidentError(TryggError, ValueError):
    """A card that cannot be taken: one line saying why."""


def read_card(path: Path) -> ResidentCard:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        card = ResidentCard.model_validate(data)
    except OSError as exc:
        raise ResidentError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ResidentError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the card"
        raise ResidentError(f"{path}: {where}: {first['msg']}") from None
    return card


class Residents:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer

    def set(self, home: str, card: ResidentCard, now: float) -> None:
        sealed = self.sealer.seal(home, card.model_dump())
        with self.db.tx() as tx:
            tx.execute("INSERT INTO residents (home, sealed, updated) VALUES (?, ?, ?) ON CONFLICT (home) "
                       "DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated", (home, sealed, now))

    def get(self, home: str) -> dict | None:
        row = self.db.one("SELECT sealed, updated FROM residents WHERE home = ?", (home,))
        if row is None:
            return None
        card = self.sealer.open(home, bytes(row[0]))
        return None if card is None else {**card, "updated": row[1]}
