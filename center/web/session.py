"""Sign-in to the staff console: proof of the staff key the browser holds, then a session cookie.

The staff member's signing key is made in their browser (WebCrypto Ed25519, non-extractable)
and enrolled at the center like any staff key (`trygg center add-staff FILE`). To sign in the
browser signs a fresh challenge from this server; the signature is checked against the enrolled
key, so nothing secret is typed or shared, and a key from another browser profile is refused.
The session is a cookie holding the name and expiry, MACed with the console's secret
(`web.secret`, 0600, shared by every console instance of the center). Every request checks the
MAC, the expiry, and that the member is still enrolled: removing a `.pub` locks them out at once.
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


class SignInRefused(TryggError, ValueError):
    """The sign-in statement or the session does not check out."""


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

    def _check_challenge(self, challenge: str) -> None:
        body, _, mac = challenge.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac("challenge", body.encode())):
            raise SignInRefused("the sign-in challenge was not made by this console")
        issued = float(body.split(".")[0])
        now = self._clock()
        if not 0 <= now - issued <= CHALLENGE_TTL_S:
            raise SignInRefused("the sign-in challenge has expired: try again")
        with self._lock:
            for old in [c for c, at in self._used.items() if now - at > CHALLENGE_TTL_S]:
                del self._used[old]
            if challenge in self._used:
                raise SignInRefused("this sign-in was already used")
            self._used[challenge] = issued

    # -- sign-in ----------------------------------------------------------------------------------
    def sign_in(self, statement: str, signature_b64: str, staff_key) -> str:
        """Check a browser's signed answer to a challenge; the session cookie's value."""
        try:
            data = json.loads(statement)
            signature = base64.b64decode(signature_b64, validate=True)
        except ValueError:
            raise SignInRefused("the sign-in is not a JSON statement with a base64 signature") from None
        if not isinstance(data, dict) or data.get("purpose") != SIGN_IN_PURPOSE:
            raise SignInRefused("the statement is not a console sign-in")
        name, challenge = data.get("name"), data.get("challenge")
        if not isinstance(name, str) or not is_staff_name(name) or not isinstance(challenge, str):
            raise SignInRefused("the sign-in names no valid staff member")
        public = staff_key(name)
        if public is None:
            raise SignInRefused(f"{name} is not enrolled at the center")
        try:
            public.sign.verify(signature, statement.encode())
        except Exception:
            raise SignInRefused(f"the sign-in is not signed by {name}'s enrolled key") from None
        self._check_challenge(challenge)
        return self.issue(name)

    def issue(self, name: str) -> str:
        body = json.dumps({"n": name, "exp": int(self._clock() + self.lifetime_s)}, separators=(",", ":")).encode()
        return f"{_b64(body)}.{self._mac('session', body)}"

    def who(self, cookie: str | None, staff_key) -> str:
        """The signed-in member's name; SignInRefused when the session is missing, bad, expired or revoked."""
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
        return data["n"]
