"""The console's two ceremonies: registering a passkey, and signing in. Both need the browser's
enrolled key (session.py) and a passkey with user verification (WebAuthn, py_webauthn), on one
challenge, for one staff name; every sign-in and every refusal goes to the sign-in log.

Sign-in, in this order (`sign_in_options`, then `sign_in`):
1. the statement {challenge, name, purpose} is signed by name's enrolled browser key and the
   challenge is this console's, fresh and unused (only then does the page ask for the passkey,
   so another browser profile is refused before anyone touches a fingerprint reader);
2. name has a passkey made for this host (else: ask the administrator for a code);
3. the assertion: a passkey registered here, name's, made for this host; the authenticator
   verified the person (UV flag: PIN or biometric, not just a touch) and its counter moved on
   from the one stored; then py_webauthn checks the client data (type, the same challenge, this
   origin), the RP id hash and the signature;
4. the counter is stored (refused if another sign-in moved it meanwhile), a session is issued.
The challenge is spent at the last step whatever the outcome, so each challenge tries once.

The step-up (`step_up_options`, then `step_up`): before the weightiest commands (unlock, look-in;
commands.py says which) the signed-in member confirms with their passkey again, over a challenge
that is the SHA-256 of the very command body their browser signs. The answer must be one of the
member's passkeys, for this host, with user verification, its counter moving on, checked as at
sign-in (`_check_assertion`); it must arrive while the command is fresh, and each command's
step-up is accepted once. So an open session on an unlocked phone, with no PIN or biometric, cannot
open a door or look in, and a step-up cannot be carried over to another command.

Registration (`passkey_options`, then `register`): the statement with the "passkey" purpose, a
one-time code from `trygg center passkey-code NAME` for that name (passkeys.py), then the new
credential with user verification (attestation "none": which authenticator it is does not
matter here, that it needs the person does); the code is spent as the passkey is stored.

The relying party is the console's host as the browser reached it (RP id) and its origin; a
passkey remembers the host it was made for and is refused on any other. A phishing page on
another host cannot get an assertion for this one from the browser, and cannot pass the origin.
"""

import base64
import hashlib
import json
import threading
from dataclasses import dataclass

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from protocol.names import is_staff_name

from .accesslog import AccessLog
from .passkeys import CodeRefused, Passkey, PasskeyStore, b64url
from .session import PASSKEY_PURPOSE, SIGN_IN_PURPOSE, Sessions, SignInRefused

RP_NAME = "Trygg"
ALGORITHMS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA,
              COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]
CEREMONY_TIMEOUT_MS = 110_000  # within the challenge's two minutes
STEP_UP_TIMEOUT_MS = 50_000  # within the command's own lifetime (a minute)
STEP_UP_CONTEXT = b"trygg-console-step-up\0"  # never the same bytes as another ceremony's challenge
# What py_webauthn may raise on hostile JSON besides its own errors (its parsers index and read
# attributes without checking first): a refusal, never a crash.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the console's host name, as the browser reached it
    origin: str  # scheme://host[:port]


def user_handle(name: str) -> bytes:
    """WebAuthn's user.id for a member: the same on every registration (an authenticator holds one
    passkey per member here), and no name in it."""
    return hashlib.sha256(b"trygg-console-user\0" + name.encode()).digest()[:16]


def _claimed(statement: str) -> str | None:
    """The name a statement gives, for the log only (nothing is decided on it)."""
    try:
        name = json.loads(statement).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and is_staff_name(name) else None


def _id_bytes(key_id: str) -> bytes:
    return base64.urlsafe_b64decode(key_id + "=" * (-len(key_id) % 4))


def step_up_challenge(command_body: bytes) -> bytes:
    """The step-up's WebAuthn challenge: the command itself (its fresh id, the home's challenge,
    the action and its arguments), so the passkey's answer confirms this command and no other."""
    return hashlib.sha256(STEP_UP_CONTEXT + command_body).digest()


def _challenge_of(assertion) -> bytes | None:
    """The challenge a passkey's answer says it signed (its client data), or None if malformed
    (then `_check_assertion` says what is wrong). Only to name the refusal: the signature over it
    is checked by py_webauthn."""
    try:
        credential = parse_authentication_credential_json(assertion)
        return parse_client_data_json(credential.response.client_data_json).challenge
    except MALFORMED:
        return None


class SignInDesk:
    def __init__(self, sessions: Sessions, passkeys: PasskeyStore, log: AccessLog, staff_key, clock) -> None:
        self.sessions = sessions
        self.passkeys = passkeys
        self.log = log
        self.staff_key = staff_key  # name -> the enrolled public key, or None
        self.clock = clock
        self._stepped: dict[bytes, float] = {}  # step-up challenges answered (once each), until they expire
        self._lock = threading.Lock()

    def who(self, cookie: str | None) -> str:
        return self.sessions.who(cookie, self.staff_key, self.passkeys.owner)

    def _refused(self, exc: SignInRefused, stage: str, name: str | None, client: str, **more) -> SignInRefused:
        self.log.refused({"stage": stage, "name": name, "code": exc.code, "reason": str(exc), "client": client, **more})
        return exc

    # -- sign-in ---------------------------------------------------------------------------------------
    def _mine_here(self, name: str, rp: RelyingParty) -> list[Passkey]:
        keys = self.passkeys.of(name)
        if not keys:
            raise SignInRefused(f"{name} has no passkey yet: ask the administrator for a one-time code "
                                f"(trygg center passkey-code {name}) and register one", "no_passkey")
        here = [k for k in keys if k.rp_id == rp.id]
        if not here:
            raise SignInRefused(f"{name}'s passkeys were made for another address than {rp.id}: "
                                "ask the administrator for a code and register one here", "other_address")
        return here

    def sign_in_options(self, statement: str, signature: str, rp: RelyingParty, client: str) -> dict:
        """Steps 1-2: the browser key checked, the passkey request for name (challenge not spent)."""
        try:
            name, challenge = self.sessions.check_statement(statement, signature, self.staff_key, SIGN_IN_PURPOSE,
                                                            consume=False)
            keys = self._mine_here(name, rp)
        except SignInRefused as exc:
            raise self._refused(exc, "begin", _claimed(statement), client) from None
        options = generate_authentication_options(
            rp_id=rp.id, challenge=challenge.encode(), timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=_id_bytes(k.id)) for k in keys],
            user_verification=UserVerificationRequirement.REQUIRED)
        return options_to_json_dict(options)

    def sign_in(self, statement: str, signature: str, assertion, rp: RelyingParty, client: str) -> tuple[str, str]:
        """Steps 1-4: (name, the session cookie's value); SignInRefused (logged) otherwise."""
        key = None
        try:
            name, challenge = self.sessions.check_statement(statement, signature, self.staff_key, SIGN_IN_PURPOSE)
            key = self._check_assertion(name, challenge.encode(), assertion, rp)
        except SignInRefused as exc:
            raise self._refused(exc, "sign_in", _claimed(statement), client, passkey=key.id if key else None) from None
        self.log.append("signed_in", {"name": name, "passkey": key.id, "client": client})
        return name, self.sessions.issue(name, key.id)

    def _check_assertion(self, name: str, challenge: bytes, assertion, rp: RelyingParty) -> Passkey:
        key_id = assertion.get("id") if isinstance(assertion, dict) else None
        key = self.passkeys.get(key_id) if isinstance(key_id, str) and key_id else None
        if key is None:
            raise SignInRefused("this passkey is not registered at the center (removed, or never registered)",
                                "unknown_passkey")
        if key.staff != name:
            raise SignInRefused(f"this passkey is not {name}'s", "other_passkey")
        if key.rp_id != rp.id:
            raise SignInRefused(f"this passkey was made for {key.rp_id}, not {rp.id}", "other_address")
        try:
            flags_and_count = parse_authenticator_data(
                parse_authentication_credential_json(assertion).response.authenticator_data)
        except MALFORMED as exc:
            raise SignInRefused(f"the passkey's answer is malformed: {exc}", "malformed") from None
        if not flags_and_count.flags.uv:
            raise SignInRefused("the passkey did not verify the person (PIN or biometric): sign in again with it",
                                "no_user_verification")
        count = flags_and_count.sign_count
        if (count or key.sign_count) and count <= key.sign_count:
            raise SignInRefused(f"the passkey's counter went back ({count} after {key.sign_count}): it may have been "
                                "copied; tell the administrator", "sign_count")
        try:
            verified = verify_authentication_response(
                credential=assertion, expected_challenge=challenge, expected_rp_id=rp.id,
                expected_origin=rp.origin, credential_public_key=key.public_key,
                credential_current_sign_count=key.sign_count, require_user_verification=True)
        except MALFORMED as exc:
            raise SignInRefused(f"the passkey's answer does not check out: {exc}", "passkey") from None
        if not self.passkeys.used(key, verified.new_sign_count, self.clock()):
            raise SignInRefused("the passkey was used twice at once: it may have been copied; tell the administrator",
                                "sign_count")
        return key

    # -- the step-up before unlock and look-in -------------------------------------------------------------
    def step_up_options(self, name: str, command_body: bytes, rp: RelyingParty, client: str) -> dict:
        """The passkey request that confirms this command: name's passkeys for this host, user verification."""
        try:
            keys = self._mine_here(name, rp)
        except SignInRefused as exc:
            raise self._refused(exc, "step_up_begin", name, client) from None
        options = generate_authentication_options(
            rp_id=rp.id, challenge=step_up_challenge(command_body), timeout=STEP_UP_TIMEOUT_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=_id_bytes(k.id)) for k in keys],
            user_verification=UserVerificationRequirement.REQUIRED)
        return options_to_json_dict(options)

    def step_up(self, name: str, command_body: bytes, assertion, rp: RelyingParty, client: str,
                fresh: tuple[float, float], about: dict) -> Passkey:
        """Check that the signed-in name confirmed this command with their passkey just now: the
        passkey that answered (SignInRefused, logged, otherwise). In this order: an answer came;
        it answers this command's challenge; in time (fresh: (from, until) on this desk's clock,
        the command's own); not used before; then the passkey as at sign-in. An answer for this
        command in time is spent whatever the outcome: one try, the page prepares a new command.
        about says which command, for the log."""
        challenge = step_up_challenge(command_body)
        claimed = assertion.get("id") if isinstance(assertion, dict) else None
        try:
            if not isinstance(assertion, dict):
                raise SignInRefused("unlock and look-in need your passkey again (PIN or biometric) with the command: "
                                    "reload the page and try again", "step_up_missing")
            said = _challenge_of(assertion)
            if said is not None and said != challenge:
                raise SignInRefused("this passkey answer confirms another command, not this one", "step_up_other")
            now = self.clock()
            if not fresh[0] <= now <= fresh[1]:
                raise SignInRefused("the command and its passkey answer are too old: try again", "step_up_expired")
            with self._lock:
                for old in [c for c, until in self._stepped.items() if until < now]:
                    del self._stepped[old]
                if challenge in self._stepped:
                    raise SignInRefused("this passkey answer was already used for its command", "step_up_used")
                self._stepped[challenge] = fresh[1]
            key = self._check_assertion(name, challenge, assertion, rp)
        except SignInRefused as exc:
            raise self._refused(exc, "step_up", name, client, passkey=claimed[:128] if isinstance(claimed, str) else None,
                                **about) from None
        self.log.append("stepped_up", {"name": name, "passkey": key.id, "client": client, **about})
        return key

    # -- registering a passkey ----------------------------------------------------------------------------
    def _code(self, name: str, code) -> None:
        try:
            self.passkeys.check_code(name, str(code or ""), self.clock())
        except CodeRefused as exc:
            raise SignInRefused(str(exc), exc.code) from None

    def passkey_options(self, statement: str, signature: str, code, rp: RelyingParty, client: str) -> dict:
        """The browser key and the code checked (neither spent): the request to make a passkey."""
        try:
            name, challenge = self.sessions.check_statement(statement, signature, self.staff_key, PASSKEY_PURPOSE,
                                                            consume=False)
            self._code(name, code)
        except SignInRefused as exc:
            raise self._refused(exc, "passkey_begin", _claimed(statement), client) from None
        options = generate_registration_options(
            rp_id=rp.id, rp_name=RP_NAME, user_name=name, user_id=user_handle(name), user_display_name=name,
            challenge=challenge.encode(), timeout=CEREMONY_TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=_id_bytes(k.id)) for k in self.passkeys.of(name)],
            supported_pub_key_algs=ALGORITHMS)
        return options_to_json_dict(options)

    def register(self, statement: str, signature: str, code, credential, rp: RelyingParty, client: str) -> Passkey:
        """A new passkey for the statement's name, stored and the code spent; SignInRefused (logged) otherwise."""
        try:
            name, challenge = self.sessions.check_statement(statement, signature, self.staff_key, PASSKEY_PURPOSE)
            self._code(name, code)
            if not isinstance(credential, dict):
                raise SignInRefused("the new passkey is not a WebAuthn credential object", "malformed")
            try:
                verified = verify_registration_response(
                    credential=credential, expected_challenge=challenge.encode(), expected_rp_id=rp.id,
                    expected_origin=rp.origin, require_user_verification=True, supported_pub_key_algs=ALGORITHMS)
            except MALFORMED as exc:
                raise SignInRefused(f"the new passkey does not check out: {exc}", "passkey") from None
            now = self.clock()
            key = Passkey(b64url(verified.credential_id), name, verified.credential_public_key, rp.id,
                          verified.sign_count, now, None, verified.aaguid)
            try:
                self.passkeys.add(name, str(code), key, now)
            except CodeRefused as exc:
                raise SignInRefused(str(exc), exc.code) from None
        except SignInRefused as exc:
            raise self._refused(exc, "passkey", _claimed(statement), client) from None
        self.log.append("passkey_added", {"name": name, "passkey": key.id, "aaguid": key.aaguid, "client": client})
        return key
