"""Sealing what the center stores about people: signed and encrypted to the center's own key.

Look-in records, case contents and the case log are JSON sealed with the envelope (signed by
the center key, HPKE-sealed to it) and bound to a context naming the row (a case id, a home's
night and slot), so a sealed value cannot be moved to another row. The current key seals; the
next and retired keys still open what was sealed before a key rotation.
"""

import json
import logging

from base.errors import EnvelopeError
from base.keys import Identity, load_private
from protocol import envelope
from protocol.envelope import signer_kid

log = logging.getLogger(__name__)


def center_keys(cfg) -> list[Identity]:
    """The center's identities: the current one first (it seals), then the next and retired
    ones, which still open what was sealed before a key rotation."""
    keys = [load_private(cfg.center.key)]
    if cfg.center.next_key.exists():
        keys.append(load_private(cfg.center.next_key))
    if cfg.center.retired_keys.is_dir():
        keys += [load_private(p) for p in sorted(cfg.center.retired_keys.glob("*.key"))]
    return keys


class Sealer:
    def __init__(self, keys: list[Identity], prefix: str) -> None:
        self._keys = keys
        self._prefix = prefix
        self._signers = {signer_kid(k.sign.public_key()): k.sign.public_key() for k in keys}

    def seal(self, context: str, data: dict) -> bytes:
        me = self._keys[0]
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return envelope.seal(body, self._prefix + context, me.sign, me.kem.public)

    def open(self, context: str, sealed: bytes) -> dict | None:
        """The stored value, or None (logged) when it does not open with the center's keys."""
        try:
            opened = envelope.open_sealed(bytes(sealed), self._prefix + context, [k.kem for k in self._keys],
                                          self._signers.get)
            return json.loads(opened.body)
        except (EnvelopeError, ValueError) as exc:
            log.error("stored %s does not open with the center's keys, skipped: %s", context, exc)
            return None
