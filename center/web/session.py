"""Sign-in to the staff console: proof of the staff key the browser holds, then a session cookie.

The staff member's signing key is made in their browser (WebCrypto Ed25519, non-extractable)
and enrolled at the center like any staff key (`trygg center add-staff FILE`). To sign in the
browser signs a fresh challenge from this server; the signature is checked against the enrolled
key, so nothing secret is typed or shared, and a key from another browser profile is refused.
That proves the browser; the person is proved by a passkey on the same challenge (signin.py),
and only both together get a session. This module owns the challenge (stateless, MACed, answered
once), the check of the browser's signed statement, and the session cookie.

The session is a cookie holding the name, the passkey that signed in and the expiry, MACed with
the console's secret (`web.secret`, 0600, shared by every console instance of the center). Every
request checks the MAC, the expiry, that the member is still enrolled and that the passkey is
still registered: removing a `.pub` or the passkey locks them out at once.
"""

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path

from base.errors import TryggError
from base.keys import create_private
from protocol.names import is_staff_name

CHALLENGE_TTL_S = 120.0
SIGN_IN_PURPOSE = "trygg-console-sign-in"
PASSKEY_PURPOSE = "trygg-console-passkey"  # registering a passkey: the browser key signs that too


class SignInRefused(TryggError, ValueError):
    """The sign-in statement or the session does not check out. `code` names the reason for the
    page (its words are in ui.json as refused_<code>) and for the sign-in log."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


def load_secret(path: Path) -> bytes:
    """The console's MAC key: made once, private to the service user."""
    path = Path(path)
    if not path.exists():
        create_private(path)
        path.write_bytes(secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) < 32 or path.stat().st_mode & 0o077:
        raise TryggError(f"{path}: the console secret must be 32 bytes, readable by the service only (chmod 600)")
    return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(self, secret: bytes, lifetime_s: float, clock=time.time) -> None:
        self._secret = secret
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._used: dict[str, float] = {}  # challenges answered (one sign-in each), until they expire
        self._lock = threading.Lock()

    def _mac(self, purpose: str, data: bytes) -> str:
        return _b64(hmac.new(self._secret, purpose.encode() + b"\0" + data, hashlib.sha256).digest())

    # -- challenges: stateless, answered once -----------------------------------------------------
    def challenge(self) -> str:
        body = f"{int(self._clock())}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac('challenge', body.encode())}"

    def _check_challenge(self, challenge: str, consume: bool) -> None:
        body, _, mac = challenge.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac("challenge", body.encode())):
            raise SignInRefused("the sign-in challenge was not made by this console", "challenge")
        issued = float(body.split(".")[0])
        now = self._clock()
        if not 0 <= now - issued <= CHALLENGE_TTL_S:
            raise SignInRefused("the sign-in challenge has expired: try again", "challenge")
        with self._lock:
            for old in [c for c, at in self._used.items() if now - at > CHALLENGE_TTL_S]:
                del self._used[old]
            if challenge in self._used:
                raise SignInRefused("this sign-in was already used", "challenge")
            if consume:
                self._used[challenge] = issued

    # -- the browser's signed statement -----------------------------------------------------------
    def check_statement(self, statement: str, signature_b64: str, staff_key, purpose: str = SIGN_IN_PURPOSE,
                        consume: bool = True) -> tuple[str, str]:
        """Check a browser's signed answer to a challenge: (name, challenge). consume=False for the
        first step of a ceremony (the passkey comes next, on the same challenge); the last step
        consumes it, so each challenge signs in or registers once."""
        try:
            data = json.loads(statement)
            signature = base64.b64decode(signature_b64, validate=True)
        except ValueError:
            raise SignInRefused("the sign-in is not a JSON statement with a base64 signature", "malformed") from None
        if not isinstance(data, dict) or data.get("purpose") != purpose:
            raise SignInRefused(f"the statement is not a {purpose}", "malformed")
        name, challenge = data.get("name"), data.get("challenge")
        if not isinstance(name, str) or not is_staff_name(name) or not isinstance(challenge, str):
            raise SignInRefused("the sign-in names no valid staff member", "malformed")
        public = staff_key(name)
        if public is None:
            raise SignInRefused(f"{name} is not enrolled at the center", "not_enrolled")
        try:
            public.sign.verify(signature, statement.encode())
        except Exception:
            raise SignInRefused(f"the sign-in is not signed by {name}'s enrolled key", "browser_key") from None
        self._check_challenge(challenge, consume)
        return name, challenge

    def issue(self, name: str, passkey: str) -> str:
        """The session cookie's value for a member signed in with this passkey (its credential id)."""
        body = json.dumps({"n": name, "k": passkey, "exp": int(self._clock() + self.lifetime_s)},
                          separators=(",", ":")).encode()
        return f"{_b64(body)}.{self._mac('session', body)}"

    def who(self, cookie: str | None, staff_key, passkey_of) -> str:
        """The signed-in member's name; SignInRefused when the session is missing, bad, expired or
        revoked (the .pub removed, or the passkey it signed in with: passkey_of(id) -> name | None)."""
        if not cookie:
            raise SignInRefused("not signed in")
        body64, _, mac = cookie.partition(".")
        try:
            body = _unb64(body64)
        except ValueError:
            raise SignInRefused("not signed in") from None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            raise SignInRefused("not signed in")
        data = json.loads(body)
        if data["exp"] < self._clock():
            raise SignInRefused("the session has expired: sign in again")
        if staff_key(data["n"]) is None:
            raise SignInRefused(f"{data['n']} is no longer enrolled")
        if passkey_of(data["k"]) != data["n"]:
            raise SignInRefused("the passkey this session signed in with was removed: sign in again")
        return data["n"]
