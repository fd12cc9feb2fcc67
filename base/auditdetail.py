"""An audit entry's detail sealed to the center: what binds it, and how the center opens it.

The device seals each entry's full detail to the center key at rest (agent/audit.py) and forwards
it inside the signed `audit` event; the receiving side opens it here. Shared by both sides so
the binding (home, seq, kind) is written once.
"""

import base64
import json

from .keys import open_at_rest


def seal_context(seq: int, kind: str) -> str:
    """What an entry's sealed detail is bound to (after the home id): it opens for no other entry."""
    return f"audit/{seq}/{kind}"


def open_detail(body: dict, home: str, opening: list) -> dict:
    """The center's side: the full detail of a forwarded `audit` event body, opened with one of
    the center's private HPKE keys (KeyFileError when it does not open)."""
    detail = dict(body.get("detail") or {})
    sealed = body.get("sealed")
    if not sealed:
        return detail
    context = f"{home}/{seal_context(int(body['seq']), str(body['kind']))}"
    return {**detail, **json.loads(open_at_rest(opening, base64.b64decode(sealed), context))}
