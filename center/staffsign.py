"""A staff member's case action, signed with their staff key, so nobody can act in their name.

The statement is canonical JSON (case, action, by, at, args); its Ed25519 signature is checked
against the person's enrolled public key before anything changes, and both are kept in the
case log. `at` must be within MAX_SKEW_S of the center's clock, so an old signed statement
cannot be replayed later (the case's state makes a replay within that window a no-op error).
The CLI signs with the key file in the staff directory; the web console will sign in the
staff member's browser with a key that never leaves it, and send the same statement.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Callable

from base.errors import TryggError
from base.keys import Identity, PublicIdentity
from protocol.names import is_staff_name

MAX_SKEW_S = 300.0
_ARG_KEYS = {"to", "outcome", "note"}


class SignatureRefused(TryggError, ValueError):
    """The statement is not signed by the named, enrolled staff member, or is not fresh."""


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class SignedAction:
    statement: bytes
    signature: bytes

    @property
    def signature_b64(self) -> str:
        return base64.b64encode(self.signature).decode()

    @classmethod
    def make(cls, identity: Identity, case_id: str, action: str, at: float, args: dict | None = None) -> "SignedAction":
        statement = _canonical({"v": 1, "case": case_id, "action": action, "by": identity.name, "at": at,
                                "args": {k: v for k, v in (args or {}).items() if v is not None}})
        return cls(statement, identity.sign.sign(statement))

    @classmethod
    def from_wire(cls, statement: str, signature_b64: str) -> "SignedAction":
        try:
            return cls(statement.encode(), base64.b64decode(signature_b64, validate=True))
        except (binascii.Error, UnicodeError) as exc:
            raise SignatureRefused(f"signature is not base64: {exc}") from None

    def verify(self, staff_key: Callable[[str], PublicIdentity | None], now: float) -> dict:
        """The statement, once its signer, freshness and shape check out; SignatureRefused otherwise."""
        try:
            data = json.loads(self.statement)
        except ValueError:
            raise SignatureRefused("case action is not JSON") from None
        if not isinstance(data, dict) or data.get("v") != 1 or _canonical(data) != self.statement:
            raise SignatureRefused("case action is not a canonical v1 statement")
        by, at, args = data.get("by"), data.get("at"), data.get("args")
        if not isinstance(by, str) or not is_staff_name(by):
            raise SignatureRefused(f"case action names no valid staff member: {by!r}")
        if not isinstance(data.get("case"), str) or not isinstance(data.get("action"), str):
            raise SignatureRefused("case action lacks its case or action")
        if not isinstance(args, dict) or set(args) - _ARG_KEYS or not all(
                isinstance(v, str) and len(v) <= 2000 for v in args.values()):
            raise SignatureRefused(f"case action arguments must be text among {sorted(_ARG_KEYS)}")
        if not isinstance(at, (int, float)) or abs(now - at) > MAX_SKEW_S:
            raise SignatureRefused(f"case action is not fresh (signed at {at!r}; the center's clock differs by more "
                                   f"than {MAX_SKEW_S:.0f} s)")
        public = staff_key(by)
        if public is None:
            raise SignatureRefused(f"{by!r} is not an enrolled staff member (trygg center staff-key {by})")
        try:
            public.sign.verify(self.signature, self.statement)
        except Exception:
            raise SignatureRefused(f"case action is not signed by {by}'s staff key") from None
        return data
