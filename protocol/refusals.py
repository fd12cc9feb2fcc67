"""The stable codes of every refusal the protocol names, and what each means (docs/protocol.md §6.4,
§4.4, §5, §13.4, §13.6, §13.7, §14.1).

A refusal has a code and a text. The code is the contract: it never changes once published, the
test vectors compare codes, and another implementation must reach the same code for the same
input. The text is for people and may say more (which field, what was expected, what was
given); nobody should parse it. Codes are lower-case words joined by `_`; a command's verdict
code names the check that failed and, after a dot, the cause inside it (`not_fresh.expired`,
`malformed.duplicate_key`, `lookin.used_up`). Pure data: no I/O.
"""

# A body (the JSON inside an envelope, or a status) that does not decode: messages.decode.
DECODE: dict[str, str] = {
    "too_large": "the body is longer than the limit for its kind (65 536 bytes; a look-in picture 1 048 576)",
    "bad_utf8": "the body is not UTF-8",
    "bad_json": "the body is not exactly one JSON value (syntax error, a byte order mark, trailing data)",
    "too_deep": "arrays and objects nested deeper than 32 levels",
    "duplicate_key": "an object names the same key twice (at any depth, also inside free-form `body`)",
    "non_finite": "NaN, Infinity or -Infinity, or a number too large for a 64-bit float (1e999)",
    "int_range": "an integer outside -2^53 ... 2^53 (anywhere: not every JSON parser reads it exactly)",
    "lone_surrogate": "a \\u escape of a UTF-16 surrogate that is not part of a pair (no character)",
    "unknown_field": "a field the message does not have (also `cls` for `class`: one spelling per field)",
    "missing_field": "a field the message must carry is missing (every field the encoder writes: also `v`, "
                     "`t`, an event's `body`, a command's `args`)",
    "wrong_type": "a value of another JSON type than declared: `true` or `1.0` for an integer, a number for "
                  "a string, `null` for any field (an absent optional field is left out, never null), an "
                  "array where an object belongs (also the whole body)",
    "bad_value": "the right JSON type but not an allowed value: pattern, range, length, a literal such as "
                 "`v` or `t`, the time format, base64",
    "online_only": "an offline status carrying a field only an online status has",
}

# After a body decoded: it does not belong where it arrived (receiver, device, center).
PLACE: dict[str, str] = {
    "wrong_home": "the body's `home` is not the home of the topic it arrived on",
    "wrong_class": "an event's `class` is not the class of the topic it arrived on",
    "wrong_topic": "a topic that is not one of the protocol's, or not one this side takes",
}

# An envelope or signed message that does not open or verify: envelope.py, padding.py, fleet.py.
ENVELOPE: dict[str, str] = {
    "not_bytes": "the payload is not bytes or the topic is not UTF-8",
    "too_short": "shorter than a header and one byte (envelope), or than key id and signature (signed message)",
    "too_large": "an envelope over 1 048 576 bytes, or a message too large for the largest envelope (sealing)",
    "bad_version": "a version byte other than 0x02 (or 0x01, read only); a fleet report in version 1",
    "bad_size": "a version-2 envelope whose length is not one of the padded sizes for its topic",
    "unknown_recipient": "sealed to a suite and key id the opener does not hold",
    "does_not_open": "HPKE does not open it: tampered, truncated, another topic or header",
    "bad_padding": "opened, but the length overruns the plaintext or a padding byte is not zero",
    "unknown_signer": "signed by a key id the verifier does not accept for this topic",
    "bad_signature": "the Ed25519 signature does not verify for this topic and body",
}

# A command that is not fresh (§13.4): the cause after `not_fresh.`.
FRESHNESS: dict[str, str] = {
    "order": "`expires` is not after `issued`",
    "lifetime": "`expires - issued` is longer than the device's max_lifetime_s",
    "challenge": "the challenge given is neither the current one nor the previous one within its grace",
    "unsynced": "the device clock is not synchronized and the command echoes no challenge",
    "future": "issued more than clock_skew_s after the device's synchronized clock",
    "expired": "expired more than clock_skew_s before the device's synchronized clock",
}

# A command the device's rules do not allow (§13.7): the cause after `not_allowed.`.
POLICY: dict[str, str] = {
    "unknown_action": "an action the device does not know",
    "role": "the member's role does not list the action",
    "argument": "an argument the action does not take",
    "lock": "no such lock in this home (or `lock` missing or not a string)",
    "never": "the lock's rule for the role is never (or the role is not listed)",
    "no_alarm": "the rule is alarm and no alarm from this home is open",
    "no_visit": "the rule is visit and the device's local time is outside every visit window",
    "unsynced": "the rule is visit and the device clock is not synchronized",
    "no_alarm_or_visit": "the rule is alarm_or_visit and neither holds (or the clock cannot tell a visit)",
}

# An allowed command that the action itself refuses or fails (§13.8, §14.1): `<action>.<cause>`.
ACTION: dict[str, dict[str, str]] = {
    "unlock": {"jammed": "refused: the lock reports itself jammed and is not driven",
               "failed": "failed: the lock did not move or its driver failed"},
    "lock": {"jammed": "refused: the lock reports itself jammed and is not driven",
             "failed": "failed: the lock did not move or its driver failed"},
    "ping": {},
    "status": {},
    "switch_center_key": {"failed": "failed: no next center key is installed, or it is another key"},
    "lookin": {"no_camera": "refused: no camera in this home",
               "role": "refused: the resident's grant does not name the member's role",
               "unsynced": "refused: the clock is not synchronized and the grant is not for every hour",
               "outside_hours": "refused: outside the granted windows or agreed times",
               "used_up": "refused: tonight's granted look-ins are used",
               "link_down": "refused: the link to the broker is down (a look-in is never queued)",
               "camera": "failed: the camera gave no picture, or none small enough for one message",
               "not_delivered": "failed: the picture was not delivered to the broker"},
    "lookin_grant": {"invalid": "refused: the change is not a valid grant (argument types, values, roles)"},
    "help_coming": {"bad_argument": "refused: an argument's value is not what the action takes",
                    "nothing_to_tell": "refused: the home has neither a button light nor a speaker",
                    "failed": "failed: a light or the speaker failed"},
}

# The checks of §13.6 in order, and what comes after them: a verdict's code is one of these,
# followed for the four marked with a family by `.<code of that family>`.
COMMAND: dict[str, str] = {
    "oversized": "the envelope is over 8 192 bytes (before any cryptography)",
    "wrong_topic": "it did not arrive on this home's command topic",
    "envelope": "the envelope does not open or verify: `envelope.<ENVELOPE code>`",
    "malformed": "the body does not decode as a command: `malformed.<DECODE code>`",
    "wrong_home": "the command names another home",
    "replayed": "the id was received before (no result is sent)",
    "revoked": "the signing member is revoked",
    "not_fresh": "the command is not fresh: `not_fresh.<FRESHNESS code>`",
    "not_allowed": "role or lock rules refuse it: `not_allowed.<POLICY code>`",
    "unsupported": "failed: the device has no handler for this action (no camera: no lookin)",
    "error": "failed: the action raised an unexpected error",
}
COMMAND_FAMILIES = {"envelope": ENVELOPE, "malformed": DECODE, "not_fresh": FRESHNESS, "not_allowed": POLICY}


def command_codes() -> set[str]:
    """Every code a command's verdict can carry ("" is done's)."""
    codes = {""}
    for check in COMMAND:
        family = COMMAND_FAMILIES.get(check)
        codes |= {f"{check}.{cause}" for cause in family} if family else {check}
    for action, causes in ACTION.items():
        codes |= {f"{action}.{cause}" for cause in causes}
    return codes


# Codes as the parts of the protocol raise them (a family's own codes) and as verdicts carry them.
_KNOWN = (set(DECODE) | set(PLACE) | set(ENVELOPE) | set(FRESHNESS) | set(POLICY)
          | {cause for causes in ACTION.values() for cause in causes} | command_codes())


class Refusal(str):
    """A reason text that carries its stable code. A `str`, so that code which only shows or
    compares reasons keeps working; `code` is what a program should look at."""

    code: str

    def __new__(cls, code: str, text: str) -> "Refusal":
        if code not in _KNOWN:
            raise ValueError(f"{code!r} is not a refusal code of the protocol (protocol/refusals.py)")
        self = super().__new__(cls, text)
        self.code = code
        return self

    def __reduce__(self):  # pickling and copying keep the code
        return (Refusal, (self.code, str(self)))
