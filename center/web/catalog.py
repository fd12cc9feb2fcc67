"""The console's words, Swedish by default: the CLI's catalogue (center/wording.py: alarm kinds,
case changes and states, presence) plus the page's own strings (ui.json), served to the page in
one piece so no string is written twice."""

import json
from functools import lru_cache
from pathlib import Path

from ..wording import CHANGES, KINDS, LANGS, PRESENCE, STATES

UI = Path(__file__).parent / "ui.json"


def language_of(given: str | None) -> str:
    return given if given in LANGS else "sv"


@lru_cache(maxsize=None)
def _ui() -> dict[str, dict[str, str]]:
    return json.loads(UI.read_text(encoding="utf-8"))


def catalog(lang: str) -> dict:
    return {"lang": lang, "ui": _ui()[lang], "kinds": KINDS[lang], "changes": CHANGES[lang], "states": STATES[lang],
            "presence": PRESENCE[lang]}
