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
from dataclasses import dataclass

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict, parse_authentication_credential_json, parse_authenticator_data
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


class SignInDesk:
    def __init__(self, sessions: Sessions, passkeys: PasskeyStore, log: AccessLog, staff_key, clock) -> None:
        self.sessions = sessions
        self.passkeys = passkeys
        self.log = log
        self.staff_key = staff_key  # name -> the enrolled public key, or None
        self.clock = clock

    def who(self, cookie: str | None) -> str:
        return self.sessions.who(cookie, self.staff_key, self.passkeys.owner)

    def _refused(self, exc: SignInRefused, stage: str, statement: str, client: str, **more) -> SignInRefused:
        self.log.refused({"stage": stage, "name": _claimed(statement), "code": exc.code, "reason": str(exc),
                          "client": client, **more})
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
            raise self._refused(exc, "begin", statement, client) from None
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
            key = self._check_assertion(name, challenge, assertion, rp)
        except SignInRefused as exc:
            raise self._refused(exc, "sign_in", statement, client, passkey=key.id if key else None) from None
        self.log.append("signed_in", {"name": name, "passkey": key.id, "client": client})
        return name, self.sessions.issue(name, key.id)

    def _check_assertion(self, name: str, challenge: str, assertion, rp: RelyingParty) -> Passkey:
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
                credential=assertion, expected_challenge=challenge.encode(), expected_rp_id=rp.id,
                expected_origin=rp.origin, credential_public_key=key.public_key,
                credential_current_sign_count=key.sign_count, require_user_verification=True)
        except MALFORMED as exc:
            raise SignInRefused(f"the passkey's answer does not check out: {exc}", "passkey") from None
        if not self.passkeys.used(key, verified.new_sign_count, self.clock()):
            raise SignInRefused("the passkey was used twice at once: it may have been copied; tell the administrator",
                                "sign_count")
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
            raise self._refused(exc, "passkey_begin", statement, client) from None
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
            raise self._refused(exc, "passkey", statement, client) from None
        self.log.append("passkey_added", {"name": name, "passkey": key.id, "aaguid": key.aaguid, "client": client})
        return key
