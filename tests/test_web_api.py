"""The web console's server side, in process (Starlette's test client) on a real store and real
keys: sign-in by a key only the browser holds and a passkey that verified the person (a software
authenticator, tests/support/webpasskey.py), registered only with an administrator's one-time
code; every sign-in and refusal in the chained sign-in log; sessions that expire and end when a
member or their passkey is removed, case actions the browser signed (never the server), commands
to a home (unlock and look-in only with the passkey again, over that very command: the step-up;
a home on the bench stands in for the broker and the device), and the checks on every input."""

import base64
import copy
import json
import re
import secrets
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from base.keys import Identity, load_public, write_public
from center import config as cfgmod
from center import keyring
from center.atrest import Sealer, center_keys
from center.commander import Answer, Commander
from center.residents import RESIDENT_CONTEXT, Residents
from center.roundsdesk import RoundsDesk
from center.service import case_desk
from center.staffsign import SignedAction
from center.store import EventStore, Received
from center.web import accesslog
from center.web.accesslog import ACCESS_CONTEXT, AccessLog
from center.web.app import Console, make_app
from center.web.catalog import catalog
from center.web.passkeys import PASSKEY_CONTEXT, PasskeyStore
from center.web.session import PASSKEY_PURPOSE, SIGN_IN_PURPOSE, Sessions
from center.web.signin import SignInDesk
from protocol.ids import new_id
from protocol.messages import CommandMessage, EventMessage, StatusMessage, decode
from tests.support.lab import trygg
from tests.support.webpasskey import UP, UV, SoftPasskey

HEADERS = {"X-Trygg": "1"}
ORIGIN = "http://localhost"  # the console as the test client reaches it: RP id "localhost"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Wall:
    """The test's clock as the commander reads it (a datetime, seconds)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def time(self) -> float:
        return self.clock()


class HomeOnTheBench:
    """The broker and the home's device as the console's commands meet them (commands.connect_home):
    the real Commander prepares each command on the home's published status; a command sent is
    answered done. `sessions` counts every session opened to the broker, `sent` what was sent."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sessions = 0
        self.sent: list[CommandMessage] = []

    def __call__(self, cfg, home: str) -> Commander:
        bench = self
        keyring.enrolled_home(cfg, home)

        class Session(Commander):
            def __enter__(self):
                bench.sessions += 1
                self.status = StatusMessage(home=home, state="online", time=self.clock.now(), heartbeat_s=60,
                                            clock_synced=True, challenge=secrets.token_hex(16))
                return self

            def __exit__(self, *exc) -> None:
                pass

            def send_signed(self, cmd, signed, timeout):
                bench.sent.append(cmd)
                return Answer(cmd, {"outcome": "done", "action": cmd.action, "command": cmd.id},
                              self.clock.time(), self.clock.time(), True)

        return Session(cfg, [], None, load_public(cfg.center.homes_dir / f"{home}.pub"), Wall(self.clock))


@pytest.fixture
def console(lab, tmp_path):
    cfg = cfgmod.load(lab.center_config)
    store = EventStore(cfg.store_url)
    clock = Clock(1_800_000_000.0)
    staff = {name: Identity.generate(name) for name in ("anna", "berit")}
    cfg.center.staff_dir.mkdir(mode=0o700, exist_ok=True)
    for member in staff.values():
        write_public(member.public(), cfg.center.staff_dir / f"{member.name}.pub")
    desk = case_desk(cfg, store)
    keys = center_keys(cfg)
    write_public(Identity.generate("hem-web").public(), cfg.center.homes_dir / "hem-web.pub")
    passkeys = PasskeyStore(store.db, Sealer(keys, PASSKEY_CONTEXT))
    log = AccessLog(store.db, Sealer(keys, ACCESS_CONTEXT), clock)
    signin = SignInDesk(Sessions(b"k" * 32, 3600, clock), passkeys, log,
                        lambda name: keyring.staff_public(cfg, name), clock)
    home = HomeOnTheBench(clock)
    app = make_app(Console(cfg, desk, signin, secure=False, clock=clock,
                           rounds=lambda: RoundsDesk(store, keys, cfg.rounds.retry_after_s),
                           residents=Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)), store=store, connect=home))
    with TestClient(app, base_url=ORIGIN) as client:
        client.passkeys, client.log, client.clock, client.soft, client.home = passkeys, log, clock, {}, home
        yield client, staff, desk, store, clock, cfg
    store.close()


def signed(client, member: Identity, purpose: str = SIGN_IN_PURPOSE) -> dict:
    """What the browser sends first: the console's challenge, signed with its enrolled key."""
    challenge = client.get("/api/challenge").json()["challenge"]
    statement = json.dumps({"challenge": challenge, "name": member.name, "purpose": purpose})
    return {"statement": statement, "signature": base64.b64encode(member.sign.sign(statement.encode())).decode()}


def register(client, member: Identity, code: str, passkey: SoftPasskey | None = None, flags: int = UP | UV,
             origin: str = ORIGIN):
    """Register a passkey as the page does: (the server's last answer, the passkey)."""
    passkey = passkey or SoftPasskey()
    body = {**signed(client, member, PASSKEY_PURPOSE), "code": code}
    options = client.post("/api/passkeys/options", headers=HEADERS, json=body)
    if options.status_code != 200:
        return options, passkey
    credential = passkey.create(options.json()["publicKey"], origin, flags)
    return client.post("/api/passkeys", headers=HEADERS, json={**body, "credential": credential}), passkey


def has_passkey(client, member: Identity) -> SoftPasskey:
    """member's passkey, registered with a fresh code the first time."""
    if member.name not in client.soft:
        code, _ = client.passkeys.issue_code(member.name, client.clock())
        answer, client.soft[member.name] = register(client, member, code)
        assert answer.status_code == 200, answer.text
    return client.soft[member.name]


def try_sign_in(client, member: Identity, passkey: SoftPasskey, origin: str = ORIGIN, **answer):
    """Sign in as the page does: the browser's statement, then the passkey on its challenge."""
    body = signed(client, member)
    options = client.post("/api/sign-in/options", headers=HEADERS, json=body)
    if options.status_code != 200:
        return options
    assertion = passkey.get(options.json()["publicKey"], origin, **answer)
    return client.post("/api/sign-in", headers=HEADERS, json={**body, "passkey": assertion})


def sign_in(client, member: Identity) -> None:
    answer = try_sign_in(client, member, has_passkey(client, member))
    assert answer.status_code == 200, answer.text


def refused(answer, code: str) -> str:
    assert answer.status_code == 401 and answer.json()["code"] == code, answer.text
    return answer.json()["error"]


def open_case(store, desk, at: float) -> str:
    event = EventMessage(id=new_id(), home="hem-web", cls="alarm", kind="fall", time=at, clock_synced=True, body={})
    store.record([Received(event.id, "hem-web", "alarm", "t", b"x", at)],
                 lambda tx, new: desk.on_events(tx, [(event, at)]))
    return desk.listing(open_only=True)[0].id


def action(member: Identity, case_id: str, verb: str, at: float, **args) -> dict:
    signed = SignedAction.make(member, case_id, verb, at, args)
    return {"statement": signed.statement.decode(), "signature": signed.signature_b64}


def test_the_page_is_served_with_its_security_headers_and_nothing_else_without_sign_in(console):
    client, *_ = console
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js" integrity="sha384-' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for path in ("/api/cases", "/api/homes", "/api/me", "/api/live"):
        assert client.get(path).status_code == 401, path
    assert client.post("/api/cases/x/action", headers=HEADERS, json={}).status_code == 401


def test_the_page_pins_every_script_and_its_style_by_hash_and_its_fingerprint_is_the_clis(console, lab):
    """Subresource Integrity: the HTML names each file the page runs by SHA-384, so the browser
    runs nothing else; the HTML's SHA-256 is what `trygg center web --fingerprint` prints."""
    import base64
    import hashlib
    import re

    from center.web import pagecode

    client, *_ = console
    page = client.get("/")
    importmap = json.loads(re.search(r'<script type="importmap">(.*?)</script>', page.text).group(1))
    assert set(importmap["integrity"]) == {f"/static/{m}" for m in pagecode.MODULES}
    for path, pin in importmap["integrity"].items():
        served = client.get(path).content
        assert pin == "sha384-" + base64.b64encode(hashlib.sha384(served).digest()).decode(), path
    style = client.get("/static/style.css").content
    assert f'integrity="sha384-{base64.b64encode(hashlib.sha384(style).digest()).decode()}"' in page.text
    inline = re.search(r'<script type="importmap">(.*?)</script>', page.text).group(1).encode()
    assert f"'sha256-{base64.b64encode(hashlib.sha256(inline).digest()).decode()}'" in page.headers["content-security-policy"]
    printed = trygg("center", "web", "--fingerprint", "--config", lab.center_config).stdout.strip()
    digest = hashlib.sha256(page.content).hexdigest()
    assert printed == " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def test_sign_in_takes_the_enrolled_key_once_and_the_session_ends_on_expiry_or_removal(console):
    client, staff, _desk, _store, clock, cfg = console
    sign_in(client, staff["anna"])
    assert client.get("/api/me").json() == {"name": "anna"}
    clock.now += 3601
    assert client.get("/api/me").status_code == 401  # expired
    sign_in(client, staff["anna"])
    (cfg.center.staff_dir / "anna.pub").unlink()
    refused = client.get("/api/cases")
    assert refused.status_code == 401 and "no longer enrolled" in refused.json()["error"]


def test_a_key_from_another_browser_or_a_replayed_sign_in_is_refused(console):
    client, staff, *_ = console
    passkey = has_passkey(client, staff["anna"])
    impostor = Identity.generate("anna")  # another profile's key, same name: refused before the passkey is asked
    assert "not signed by anna" in refused(try_sign_in(client, impostor, passkey), "browser_key")
    body = signed(client, staff["anna"])
    options = client.post("/api/sign-in/options", headers=HEADERS, json=body).json()["publicKey"]
    good = {**body, "passkey": passkey.get(options, ORIGIN)}
    assert client.post("/api/sign-in", headers=HEADERS, json=good).status_code == 200
    client.cookies.clear()
    assert "already used" in refused(client.post("/api/sign-in", headers=HEADERS, json=good), "challenge")
    made_up = body["statement"].replace(json.loads(body["statement"])["challenge"], "1800000000.00.AAAA")
    bad = {"statement": made_up, "signature": base64.b64encode(staff["anna"].sign.sign(made_up.encode())).decode()}
    answer = client.post("/api/sign-in/options", headers=HEADERS, json=bad)
    assert "not made by this console" in refused(answer, "challenge")


def test_registering_a_passkey_needs_an_unused_unexpired_code_given_for_that_member(console):
    client, staff, _desk, _store, clock, _cfg = console
    anna = staff["anna"]
    assert "not a passkey code for anna" in refused(register(client, anna, "ABCD-EFGH-JKMN")[0], "bad_code")
    berits, _ = client.passkeys.issue_code("berit", clock())
    assert "not a passkey code for anna" in refused(register(client, anna, berits)[0], "bad_code")
    old, _ = client.passkeys.issue_code("anna", clock())
    clock.now += 24 * 3600 + 1
    assert "expired" in refused(register(client, anna, old)[0], "code_expired")
    code, _ = client.passkeys.issue_code("anna", clock())
    impostor = Identity.generate("anna")  # the code alone is not enough: the enrolled browser key signs too
    assert "not signed by anna" in refused(register(client, impostor, code)[0], "browser_key")
    no_person = register(client, anna, code, flags=UP)[0]  # a touch, no PIN or biometric
    assert "verif" in refused(no_person, "passkey")
    phishing = register(client, anna, code, origin="https://trygg-konsol.example")[0]
    assert "origin" in refused(phishing, "passkey")
    assert client.passkeys.of("anna") == []  # nothing registered, and the code still unspent

    answer, passkey = register(client, anna, code.lower().replace("-", " "))  # typed as it was read out
    assert answer.status_code == 200 and answer.json() == {"name": "anna", "passkey": passkey.id64}
    again = register(client, anna, code)[0]
    assert "already used" in refused(again, "code_used")
    [kept] = client.passkeys.of("anna")
    assert (kept.id, kept.staff, kept.rp_id) == (passkey.id64, "anna", "localhost")
    second, _ = client.passkeys.issue_code("anna", clock())
    assert register(client, anna, second)[0].status_code == 200  # a second device: added, nothing replaced
    assert len(client.passkeys.of("anna")) == 2 and client.passkeys.of("berit") == []
    at_rest = b"".join(bytes(row[0]) for row in client.passkeys.db.query("SELECT sealed FROM staff_passkeys"))
    assert b"anna" not in at_rest  # the owner's name is sealed to the center key


def test_sign_in_without_a_passkey_is_refused_with_words_that_say_ask_for_a_code(console):
    client, staff, *_ = console
    answer = try_sign_in(client, staff["anna"], SoftPasskey())
    assert "trygg center passkey-code anna" in refused(answer, "no_passkey")
    sv, en = catalog("sv")["ui"]["refused_no_passkey"], catalog("en")["ui"]["refused_no_passkey"]
    assert "engångskod" in sv and "{name}" in sv and "one-time code" in en
    assert client.get("/api/me").status_code == 401
    [entry] = client.log.entries()
    assert (entry["action"], entry["name"], entry["code"], entry["stage"]) == ("refused", "anna", "no_passkey", "begin")


def test_a_passkey_of_another_member_does_not_sign_in(console):
    client, staff, *_ = console
    berits = has_passkey(client, staff["berit"])
    has_passkey(client, staff["anna"])
    answer = try_sign_in(client, staff["anna"], berits)  # anna's browser key, berit's passkey
    assert "not anna's" in refused(answer, "other_passkey")
    unknown = try_sign_in(client, staff["anna"], SoftPasskey())
    assert "not registered" in refused(unknown, "unknown_passkey")
    assert client.get("/api/me").status_code == 401


def test_sign_in_needs_the_enrolled_browser_and_the_verified_person_and_is_logged(console):
    client, staff, _desk, _store, clock, _cfg = console
    anna = staff["anna"]
    passkey = has_passkey(client, anna)
    # a stolen phone without its PIN: the authenticator answers with presence but no verification
    assert "did not verify the person" in refused(try_sign_in(client, anna, passkey, flags=UP), "no_user_verification")
    phishing = try_sign_in(client, anna, passkey, origin="https://trygg-konsol.example")
    assert "origin" in refused(phishing, "passkey")
    other_rp = try_sign_in(client, anna, passkey, rp_id="trygg-konsol.example")
    assert "RP ID" in refused(other_rp, "passkey")
    assert client.get("/api/me").status_code == 401

    signed_in = try_sign_in(client, anna, passkey)
    assert signed_in.status_code == 200 and signed_in.json() == {"name": "anna"}
    assert client.get("/api/me").json() == {"name": "anna"}
    [kept] = client.passkeys.of("anna")
    assert kept.sign_count == passkey.counter and kept.last_used == clock()
    client.post("/api/sign-out", headers=HEADERS, json={})
    copied = copy.copy(passkey)  # a copy of the passkey, made earlier: its counter is behind the one stored
    copied.counter = 1
    assert "counter went back" in refused(try_sign_in(client, anna, copied), "sign_count")
    assert try_sign_in(client, anna, passkey).status_code == 200

    log = client.log.entries()
    assert [(e["action"], e.get("code")) for e in log][-6:] == [
        ("refused", "no_user_verification"), ("refused", "passkey"), ("refused", "passkey"), ("signed_in", None),
        ("refused", "sign_count"), ("signed_in", None)]
    assert log[-1]["name"] == "anna" and log[-1]["passkey"] == passkey.id64 and log[-1]["client"]
    assert accesslog.verify(client.log.db).ok

    client.passkeys.remove("anna", passkey.id64[:8])  # the phone is lost: its passkey removed, out at once
    gone = client.get("/api/me")
    assert gone.status_code == 401 and "passkey" in gone.json()["error"]


def test_a_flood_of_refusals_is_counted_not_each_written_and_the_chain_shows_an_edit(console):
    client, staff, _desk, store, clock, _cfg = console
    client.log.refusals_per_min = 3
    for _ in range(10):
        try_sign_in(client, staff["anna"], SoftPasskey())
    assert [e["action"] for e in client.log.entries()] == ["refused"] * 3
    clock.now += 60
    try_sign_in(client, staff["anna"], SoftPasskey())
    *_, summary, last = client.log.entries()
    assert summary["action"] == "refusals_suppressed" and summary["suppressed"] == 7 and last["action"] == "refused"
    assert accesslog.verify(store.db).ok
    with store.db.tx() as tx:
        tx.execute("UPDATE sign_in_log SET action = 'signed_in' WHERE seq = 2")
    check = accesslog.verify(store.db)
    assert not check.ok and check.first_bad == 2 and "changed" in check.problem


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                st.sampled_from(["id", "rawId", "type", "response", "clientDataJSON",
                                                 "authenticatorData", "signature", "attestationObject"]),
                                inner, max_size=6), max_leaves=20))
def test_any_passkey_answer_gets_a_clear_refusal_never_a_crash(console, garbage):
    client, staff, *_ = console
    passkey = has_passkey(client, staff["anna"])
    for field in (garbage, {"id": passkey.id64, "rawId": passkey.id64, "type": "public-key", "response": garbage}):
        body = signed(client, staff["anna"])
        answer = client.post("/api/sign-in", headers=HEADERS, json={**body, "passkey": field})
        assert answer.status_code == 401 and answer.json()["error"], answer.text
        code = client.passkeys.issue_code("anna", client.clock())[0]
        body = signed(client, staff["anna"], PASSKEY_PURPOSE)
        answer = client.post("/api/passkeys", headers=HEADERS, json={**body, "code": code, "credential": field})
        assert answer.status_code == 401 and answer.json()["error"], answer.text


def test_passkeys_and_the_sign_in_log_keep_their_promises_on_both_stores(store_url):
    from center.web.passkeys import Passkey

    store = EventStore(store_url)
    try:
        keys = [Identity.generate("center")]
        passkeys = PasskeyStore(store.db, Sealer(keys, PASSKEY_CONTEXT))
        code, expires = passkeys.issue_code("anna", 1000.0, valid_h=1)
        assert expires == 4600.0 and re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}", code)
        assert code.encode() not in b"".join(bytes(r[0]) + r[1].encode() for r in store.db.query(
            "SELECT sealed, digest FROM passkey_codes"))  # kept hashed
        key = Passkey("cred-1", "anna", b"cose", "konsol.example", 7, 0.0, None)
        passkeys.add("anna", code, key, 2000.0)
        with pytest.raises(ValueError, match="already used"):
            passkeys.add("anna", code, Passkey("cred-2", "anna", b"cose", "konsol.example", 0, 0.0, None), 2001.0)
        [kept] = passkeys.of("anna")
        assert (kept.id, kept.public_key, kept.sign_count, passkeys.owner("cred-1")) == ("cred-1", b"cose", 7, "anna")
        assert passkeys.used(kept, 8, 3000.0) and not passkeys.used(kept, 9, 3001.0)  # moved meanwhile: refused
        assert passkeys.get("cred-1").sign_count == 8
        assert passkeys.remove("anna", "cred") == ["cred-1"] and passkeys.owner("cred-1") is None

        clock = Clock(5000.0)
        log = AccessLog(store.db, Sealer(keys, ACCESS_CONTEXT), clock)
        log.append("signed_in", {"name": "anna", "passkey": "cred-1"})
        log.refused({"name": "berit", "code": "no_passkey"})
        assert [(e["action"], e["name"]) for e in log.entries()] == [("signed_in", "anna"), ("refused", "berit")]
        assert accesslog.verify(store.db).ok and accesslog.verify(store.db).entries == 2
        with store.db.tx() as tx:
            tx.execute("DELETE FROM sign_in_log WHERE action = 'signed_in'")
        assert "removed or reordered" in accesslog.verify(store.db).problem
    finally:
        store.close()


def test_passkey_codes_lists_and_removal_from_the_command_line(console, lab):
    client, staff, _desk, _store, clock, _cfg = console
    clock.now = time.time()  # the command line's codes are made on the real clock
    refused_cli = trygg("center", "passkey-code", "cilla", "--config", lab.center_config, check=False)
    assert refused_cli.returncode != 0 and "not enrolled" in refused_cli.stderr
    out = trygg("center", "passkey-code", "anna", "--config", lab.center_config).stdout
    code = re.search(r"code for anna: ([A-Z0-9-]{14})", out).group(1)
    assert "valid once" in out
    assert "no passkey" in trygg("center", "passkeys", "anna", "--config", lab.center_config).stdout
    answer, passkey = register(client, staff["anna"], code)
    assert answer.status_code == 200
    listed = json.loads(trygg("center", "passkeys", "anna", "--json", "--config", lab.center_config).stdout)
    assert [(k["id"], k["rp_id"]) for k in listed] == [(passkey.id64, "localhost")]
    assert try_sign_in(client, staff["anna"], passkey).status_code == 200
    removed = trygg("center", "passkeys", "anna", "--remove", passkey.id64[:10], "--config", lab.center_config)
    assert "removed 1" in removed.stdout
    assert client.get("/api/me").status_code == 401
    log = trygg("center", "sign-ins", "--config", lab.center_config).stdout
    for line in ("code_issued", "passkey_added", "signed_in", "passkey_removed", "chain intact"):
        assert line in log, log


def test_case_actions_are_the_browsers_signed_statements_checked_before_anything_changes(console):
    client, staff, desk, store, clock, _cfg = console
    case_id = open_case(store, desk, clock.now)
    sign_in(client, staff["anna"])
    url = f"/api/cases/{case_id}/action"
    as_berit = client.post(url, headers=HEADERS, json=action(staff["berit"], case_id, "accept", clock.now))
    assert as_berit.status_code == 400 and "signed in here" in as_berit.json()["error"]
    no_header = client.post(url, json=action(staff["anna"], case_id, "accept", clock.now))
    assert no_header.status_code == 400 and "own page" in no_header.json()["error"]
    other_case = client.post("/api/cases/another/action", headers=HEADERS,
                             json=action(staff["anna"], case_id, "accept", clock.now))
    assert "another case" in other_case.json()["error"]
    stale = client.post(url, headers=HEADERS, json=action(staff["anna"], case_id, "accept", clock.now - 3600))
    assert "not fresh" in stale.json()["error"]
    assert desk.get(case_id).state == "open"  # nothing changed so far

    taken = client.post(url, headers=HEADERS, json=action(staff["anna"], case_id, "accept", clock.now))
    assert taken.status_code == 200 and taken.json()["accepted_by"] == "anna"
    replay = client.post(url, headers=HEADERS, json=action(staff["anna"], case_id, "accept", clock.now))
    assert replay.status_code == 400 and "cannot be accepted" in replay.json()["error"]
    bad_outcome = client.post(url, headers=HEADERS,
                              json=action(staff["anna"], case_id, "close", clock.now, outcome="nonsense"))
    assert bad_outcome.status_code == 400 and desk.get(case_id).state == "accepted"
    closed = client.post(url, headers=HEADERS,
                         json=action(staff["anna"], case_id, "close", clock.now, outcome="helped", note="på golvet"))
    assert closed.json()["state"] == "closed" and closed.json()["note"] == "på golvet"
    [listed] = client.get("/api/cases").json()
    assert listed["id"] == case_id and listed["outcome"] == "helped"


def test_garbage_bodies_get_a_clear_answer(console):
    client, staff, *_ = console
    sign_in(client, staff["anna"])
    for body in (b"[]", b"not json", b"{" * 20000):
        answer = client.post("/api/cases/x/action", headers={**HEADERS, "Content-Type": "application/json"},
                             content=body)
        assert answer.status_code == 400 and answer.json()["error"]
    assert client.post("/api/sign-in", headers=HEADERS, json={"statement": "{}", "signature": "!!"}).status_code in (400, 401)


def test_both_languages_have_every_word_of_the_page():
    sv, en = catalog("sv"), catalog("en")
    for part in ("ui", "kinds", "changes", "states", "presence"):
        assert set(sv[part]) == set(en[part]), part
        assert all(text.strip() for text in [*sv[part].values(), *en[part].values()]), part
    page = (catalog.__globals__["UI"].parent / "static" / "app.js").read_text()
    used = set(__import__("re").findall(r"w\.ui\.([a-z_]+)", page))
    assert used <= set(sv["ui"]), sorted(used - set(sv["ui"]))


def test_add_staff_enrolls_a_browser_key_and_refuses_a_bad_name(lab, tmp_path):
    good = tmp_path / "cilla.pub"
    write_public(Identity.generate("cilla").public(), good)
    out = trygg("center", "add-staff", good, "--config", lab.center_config).stdout
    assert "cilla.pub" in out
    bad = tmp_path / "bad.pub"
    write_public(Identity.generate("Cilla Berg").public(), bad)
    refused = trygg("center", "add-staff", bad, "--config", lab.center_config, check=False)
    assert refused.returncode != 0 and "not a staff name" in refused.stderr


def test_the_console_refuses_plain_http_off_loopback(lab):
    refused = trygg("center", "web", "--listen", "0.0.0.0:8999", "--config", lab.center_config, check=False)
    assert refused.returncode != 0 and "refusing plain HTTP" in refused.stderr



def test_rounds_answer_tonights_slots_and_refuse_a_bad_verdict_clearly(console):
    client, staff, *_ = console
    assert client.post("/api/rounds/hem-web/verdict", headers=HEADERS, json={"verdict": "seen"}).status_code == 401
    sign_in(client, staff["anna"])
    assert client.get("/api/rounds").json()["slots"] == []
    bad = client.post("/api/rounds/hem-web/verdict", headers=HEADERS, json={"verdict": "maybe"})
    assert bad.status_code == 400 and "seen or not_seen" in bad.json()["error"]
    unknown = client.post("/api/rounds/hem-nowhere/verdict", headers=HEADERS, json={"verdict": "seen"})
    assert unknown.status_code == 400 and "not enrolled here" in unknown.json()["error"]


CARD = {"name": "Greta Lind", "address": "Storgatan 4, Dorotea", "entry": "Nyckelbox vid dörren, kod 1234",
        "care": {"fall": "Lyft inte ensam; ring 112 vid smärta i höften"},
        "contacts": [{"name": "Per Lind", "relation": "son", "phone": "070-123 45 67"}]}


def test_a_homes_screen_has_its_resident_card_sealed_at_rest_and_tonights_alarms(console, tmp_path, lab):
    client, staff, desk, store, clock, cfg = console
    card = tmp_path / "card.json"
    card.write_text(json.dumps(CARD, ensure_ascii=False))
    assert "Greta Lind" in trygg("center", "resident", "set", "hem-web", "--file", card,
                                 "--config", lab.center_config).stdout
    at_rest = b"".join(p.read_bytes() for p in cfg.center.store.parent.glob(cfg.center.store.name + "*"))
    assert b"Greta" not in at_rest and b"Nyckelbox" not in at_rest  # sealed to the center key
    sign_in(client, staff["anna"])
    case_id = open_case(store, desk, clock.now)
    detail = client.get("/api/homes/hem-web").json()
    assert detail["card"]["entry"] == CARD["entry"] and detail["card"]["contacts"][0]["phone"] == "070-123 45 67"
    assert [c["id"] for c in detail["cases"]] == [case_id]
    assert client.get("/api/homes/hem-nowhere").status_code == 404


@pytest.mark.parametrize("change, message", [
    ({"contacts": [{"name": "Per", "phone": "ring mig"}]}, "contacts.0.phone"),
    ({"name": ""}, "name"),
    ({"shoe_size": 41}, "shoe_size"),
])
def test_a_bad_resident_card_is_one_clear_line_and_nothing_saved(lab, tmp_path, change, message):
    home = tmp_path / "home.pub"
    write_public(Identity.generate("hem-kort").public(), home)
    trygg("center", "add-home", home, "--config", lab.center_config)
    card = tmp_path / "card.json"
    card.write_text(json.dumps({**CARD, **change}))
    refused = trygg("center", "resident", "set", "hem-kort", "--file", card, "--config", lab.center_config, check=False)
    assert refused.returncode != 0 and message in refused.stderr and "Traceback" not in refused.stderr
    missing = trygg("center", "resident", "show", "hem-kort", "--config", lab.center_config, check=False)
    assert missing.returncode != 0 and "no resident card" in missing.stderr
    nowhere = trygg("center", "resident", "set", "hem-annan", "--file", card, "--config", lab.center_config, check=False)
    assert "not enrolled" in nowhere.stderr


def test_a_homes_locks_are_the_cards_or_the_front_door_and_their_state_only_what_the_device_confirmed():
    from center.web.locks import locks_view

    def result(action, at, **body):
        return {"kind": "command_result", "received": at, "body": {"action": action, "outcome": "done", **body}}
    events = [result("unlock", "03:01", lock="front-door", state="unlocked", staff="anna"),
              {"kind": "manual_unlock", "received": "03:02", "body": {"detail": "by hand"}},  # not a signed result
              {**result("lock", "03:03", lock="front-door", state="locked"), "body": {
                  "action": "lock", "outcome": "refused", "lock": "front-door", "state": "locked"}},  # refused: no word
              result("status", "03:04", status={"locks": {"cabinet": "locked"}}, staff="berit")]
    assert locks_view(None, events) == [
        {"lock": "front-door", "label": None, "state": "unlocked", "at": "03:01", "by": "anna"},
        {"lock": "cabinet", "label": None, "state": "locked", "at": "03:04", "by": "berit"}]
    card = {"locks": {"back-door": "Altandörren"}}
    assert [(l["lock"], l["label"], l["state"]) for l in locks_view(card, [])] == [("back-door", "Altandörren", None)]


def test_a_resident_card_names_locks_as_the_device_does():
    from center.residents import ResidentCard

    assert ResidentCard(name="Greta", locks={"front-door": "Ytterdörren"}).locks == {"front-door": "Ytterdörren"}
    for bad in ({"Front Door": "x"}, {"front-door": ""}, {f"l{i}": "x" for i in range(9)}):
        with pytest.raises(ValueError):
            ResidentCard(name="Greta", locks=bad)


def test_with_web_host_set_the_console_answers_to_that_name_only(lab):
    """[web] host is the passkeys' RP id: a request for another name (DNS rebinding, a second
    name for the same machine) is refused before anything is asked or signed."""
    cfg = cfgmod.load(lab.center_config)
    cfg = cfg.model_copy(update={"web": cfg.web.model_copy(update={"host": "konsol.kommun.se"})})
    store = EventStore(cfg.store_url)
    try:
        app = make_app(Console(cfg, case_desk(cfg, store), None, secure=False))
        with TestClient(app, base_url="http://konsol.kommun.se") as good:
            assert good.get("/").status_code == 200
        with TestClient(app, base_url="http://localhost") as other:
            assert other.get("/").status_code == 400 and other.get("/api/challenge").status_code == 400
    finally:
        store.close()
    with pytest.raises(ValueError):
        cfg.web.model_validate({"host": "Konsol Kommun"})


# -- commands to a home: unlock and look-in only with the passkey again (the step-up) ------------------
COMMANDS = "/api/homes/hem-web/command"


def prepare(client, action: str, **args) -> dict:
    answer = client.post(f"{COMMANDS}/prepare", headers=HEADERS, json={"action": action, "args": args})
    assert answer.status_code == 200, answer.text
    return answer.json()


def send(client, member: Identity, prepared: dict, passkey: SoftPasskey | None = None, over: dict | None = None,
         **answer):
    """Send a prepared command as the page does: signed by member's browser key and, with a passkey,
    its answer to the step-up (over another prepared command's step-up, to try carrying one over)."""
    body = {"body": prepared["body"],
            "signature": base64.b64encode(member.sign.sign(base64.b64decode(prepared["to_sign"]))).decode()}
    if passkey is not None:
        body["passkey"] = passkey.get((over or prepared)["step_up"]["publicKey"], ORIGIN, **answer)
    return client.post(f"{COMMANDS}/send", headers=HEADERS, json=body)


def not_sent(client, answer, code: str, sessions_before: int, sent_before: int) -> str:
    """Refused with code, and nothing reached the broker: no session opened, no command sent."""
    assert answer.status_code == 403 and answer.json()["code"] == code and answer.json()["step_up"], answer.text
    assert (client.home.sessions, len(client.home.sent)) == (sessions_before, sent_before)
    return answer.json()["error"]


def command_id(prepared: dict) -> str:
    return decode(base64.b64decode(prepared["body"]), CommandMessage).id


def test_unlock_and_look_in_without_the_passkey_again_never_reach_the_home(console):
    client, staff, *_ = console
    anna = staff["anna"]
    sign_in(client, anna)
    ids = []
    for action, args in (("unlock", {"lock": "front-door"}), ("lookin", {})):
        prepared = prepare(client, action, **args)
        request = prepared["step_up"]["publicKey"]  # what the page hands navigator.credentials.get
        assert request["userVerification"] == "required" and request["rpId"] == "localhost"
        assert [c["id"] for c in request["allowCredentials"]] == [client.soft["anna"].id64]  # hers only
        sessions = client.home.sessions
        answer = send(client, anna, prepared)  # an open session and the browser key, no person
        assert "passkey again" in not_sent(client, answer, "step_up_missing", sessions, 0)
        ids.append(command_id(prepared))
    entries = [e for e in client.log.entries() if e.get("stage") == "step_up"]
    assert [(e["action"], e["code"], e["name"], e["home"], e["command"], e["command_id"]) for e in entries] == [
        ("refused", "step_up_missing", "anna", "hem-web", "unlock", ids[0]),
        ("refused", "step_up_missing", "anna", "hem-web", "lookin", ids[1])]
    ui = catalog("sv")["ui"], catalog("en")["ui"]
    assert "passkey igen" in ui[0]["refused_step_up_missing"] and "passkey again" in ui[1]["refused_step_up_missing"]


def test_a_step_up_opens_that_one_door_once_and_is_in_the_sign_in_log(console):
    client, staff, _desk, _store, clock, _cfg = console
    anna = staff["anna"]
    sign_in(client, anna)
    passkey = client.soft["anna"]
    prepared = prepare(client, "unlock", lock="front-door")
    sessions = client.home.sessions
    first = {"body": prepared["body"],
             "signature": base64.b64encode(anna.sign.sign(base64.b64decode(prepared["to_sign"]))).decode(),
             "passkey": passkey.get(prepared["step_up"]["publicKey"], ORIGIN)}
    done = client.post(f"{COMMANDS}/send", headers=HEADERS, json=first)
    assert done.status_code == 200 and done.json()["outcome"] == "done" and done.json()["action"] == "unlock"
    assert [c.id for c in client.home.sent] == [command_id(prepared)]
    assert client.passkeys.of("anna")[0].sign_count == passkey.counter  # its counter moved on, as at sign-in
    stepped = client.log.entries()[-1]
    assert (stepped["action"], stepped["name"], stepped["passkey"], stepped["home"], stepped["command"]) == (
        "stepped_up", "anna", passkey.id64, "hem-web", "unlock")
    assert stepped["command_id"] == command_id(prepared) and stepped["client"]

    replayed = client.post(f"{COMMANDS}/send", headers=HEADERS, json=first)  # the same request again
    assert "already used" in not_sent(client, replayed, "step_up_used", sessions + 1, 1)

    late = prepare(client, "unlock", lock="front-door")
    clock.now += 61  # the person confirmed, but only after the command's minute
    assert "too old" in not_sent(client, send(client, anna, late, passkey), "step_up_expired", sessions + 2, 1)
    assert accesslog.verify(client.log.db).ok


def test_a_step_up_for_another_command_is_refused(console):
    client, staff, *_ = console
    anna = staff["anna"]
    sign_in(client, anna)
    passkey = client.soft["anna"]
    front, back = prepare(client, "unlock", lock="front-door"), prepare(client, "unlock", lock="back-door")
    sessions = client.home.sessions
    carried = send(client, anna, back, passkey, over=front)  # confirmed the front door, sends the back door
    assert "another command" in not_sent(client, carried, "step_up_other", sessions, 0)
    looked = prepare(client, "lookin")
    sessions = client.home.sessions
    assert not_sent(client, send(client, anna, looked, passkey, over=front), "step_up_other", sessions, 0)
    assert send(client, anna, front, passkey).json()["outcome"] == "done"  # the one it was made for
    assert [c.args for c in client.home.sent] == [{"lock": "front-door"}]


def test_a_step_up_without_the_person_verified_or_with_someone_elses_passkey_is_refused(console):
    client, staff, *_ = console
    anna = staff["anna"]
    berits = has_passkey(client, staff["berit"])
    sign_in(client, anna)
    passkey = client.soft["anna"]
    # the phone in a thief's hand, signed in: the passkey answers with presence, without verification
    prepared = prepare(client, "unlock", lock="front-door")
    sessions = client.home.sessions
    stolen = send(client, anna, prepared, passkey, flags=UP)
    assert "did not verify the person" in not_sent(client, stolen, "no_user_verification", sessions, 0)
    assert "passkey again" not in not_sent(client, send(client, anna, prepared, passkey), "step_up_used", sessions, 0)
    for other, code in ((berits, "other_passkey"), (SoftPasskey(), "unknown_passkey")):
        prepared = prepare(client, "lookin")
        sessions = client.home.sessions
        not_sent(client, send(client, anna, prepared, other), code, sessions, 0)
    phishing = prepare(client, "unlock", lock="front-door")
    sessions = client.home.sessions
    body = {"body": phishing["body"],
            "signature": base64.b64encode(anna.sign.sign(base64.b64decode(phishing["to_sign"]))).decode(),
            "passkey": passkey.get(phishing["step_up"]["publicKey"], "https://trygg-konsol.example")}
    assert "origin" in not_sent(client, client.post(f"{COMMANDS}/send", headers=HEADERS, json=body), "passkey",
                                sessions, 0)
    codes = [e["code"] for e in client.log.entries() if e.get("stage") == "step_up"]
    assert codes == ["no_user_verification", "step_up_used", "other_passkey", "unknown_passkey", "passkey"]
    assert client.home.sent == [] and client.get("/api/me").json() == {"name": "anna"}  # still signed in


def test_lock_status_and_help_coming_need_no_step_up(console):
    client, staff, desk, store, clock, _cfg = console
    anna = staff["anna"]
    sign_in(client, anna)
    case_id = open_case(store, desk, clock.now)
    for action, args in (("lock", {"lock": "front-door"}), ("status", {}), ("help_coming", {"case": case_id})):
        prepared = prepare(client, action, **args)
        assert "step_up" not in prepared
        answer = send(client, anna, prepared)
        assert answer.status_code == 200 and answer.json()["outcome"] == "done", answer.text
    assert [c.action for c in client.home.sent] == ["lock", "status", "help_coming"]
    assert not [e for e in client.log.entries() if e.get("stage") == "step_up" or e["action"] == "stepped_up"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                st.sampled_from(["id", "rawId", "type", "response", "clientDataJSON",
                                                 "authenticatorData", "signature"]),
                                inner, max_size=6), max_leaves=20))
def test_any_step_up_answer_gets_a_clear_refusal_and_sends_nothing(console, garbage):
    client, staff, *_ = console
    anna = staff["anna"]
    if client.get("/api/me").status_code != 200:
        sign_in(client, anna)
    passkey = client.soft["anna"]
    for field in (garbage, {"id": passkey.id64, "rawId": passkey.id64, "type": "public-key", "response": garbage}):
        prepared = prepare(client, "unlock", lock="front-door")
        body = {"body": prepared["body"],
                "signature": base64.b64encode(anna.sign.sign(base64.b64decode(prepared["to_sign"]))).decode(),
                "passkey": field}
        sessions, sent = client.home.sessions, len(client.home.sent)
        answer = client.post(f"{COMMANDS}/send", headers=HEADERS, json=body)
        assert answer.status_code == 403 and answer.json()["error"] and answer.json()["code"], answer.text
        assert (client.home.sessions, len(client.home.sent)) == (sessions, sent)
    assert client.home.sent == []


def test_every_action_of_the_protocol_has_words_in_both_languages():
    """A command's answer among a home's events names its action in words, never an id."""
    from center.web.catalog import catalog
    from protocol.actions import ACTIONS

    for lang in ("sv", "en"):
        ui = catalog(lang)["ui"]
        assert {a for a in ACTIONS if not ui.get(f"action_{a}")} == set(), lang
