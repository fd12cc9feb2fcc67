"""The web console's server side, in process (Starlette's test client) on a real store and real
keys: sign-in by a key only the browser holds, sessions that expire and end when a member is
removed, case actions the browser signed (never the server), and the checks on every input."""

import base64
import json

import pytest
from starlette.testclient import TestClient

from base.keys import Identity, write_public
from center import config as cfgmod
from center.atrest import Sealer, center_keys
from center.residents import RESIDENT_CONTEXT, Residents
from center.roundsdesk import RoundsDesk
from center.service import case_desk
from center.staffsign import SignedAction
from center.store import EventStore, Received
from center.web.app import Console, make_app
from center.web.catalog import catalog
from center.web.session import SIGN_IN_PURPOSE, Sessions
from protocol.ids import new_id
from protocol.messages import EventMessage
from tests.support.lab import trygg

HEADERS = {"X-Trygg": "1"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


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
    app = make_app(Console(cfg, desk, Sessions(b"k" * 32, 3600, clock), secure=False, clock=clock,
                           rounds=lambda: RoundsDesk(store, keys, cfg.rounds.retry_after_s),
                           residents=Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)), store=store))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, staff, desk, store, clock, cfg
    store.close()


def sign_in(client, member: Identity) -> None:
    challenge = client.get("/api/challenge").json()["challenge"]
    statement = json.dumps({"challenge": challenge, "name": member.name, "purpose": SIGN_IN_PURPOSE})
    answer = client.post("/api/sign-in", headers=HEADERS, json={
        "statement": statement, "signature": base64.b64encode(member.sign.sign(statement.encode())).decode()})
    assert answer.status_code == 200, answer.text


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
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for path in ("/api/cases", "/api/homes", "/api/me", "/api/live"):
        assert client.get(path).status_code == 401, path
    assert client.post("/api/cases/x/action", headers=HEADERS, json={}).status_code == 401


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
    impostor = Identity.generate("anna")  # another profile's key, same name
    challenge = client.get("/api/challenge").json()["challenge"]
    statement = json.dumps({"challenge": challenge, "name": "anna", "purpose": SIGN_IN_PURPOSE})
    forged = {"statement": statement, "signature": base64.b64encode(impostor.sign.sign(statement.encode())).decode()}
    answer = client.post("/api/sign-in", headers=HEADERS, json=forged)
    assert answer.status_code == 401 and "not signed by anna" in answer.json()["error"]
    good = {"statement": statement, "signature": base64.b64encode(staff["anna"].sign.sign(statement.encode())).decode()}
    assert client.post("/api/sign-in", headers=HEADERS, json=good).status_code == 200
    client.cookies.clear()
    again = client.post("/api/sign-in", headers=HEADERS, json=good)
    assert again.status_code == 401 and "already used" in again.json()["error"]
    made_up = statement.replace(challenge, "1800000000.00.AAAA")
    bad = {"statement": made_up, "signature": base64.b64encode(staff["anna"].sign.sign(made_up.encode())).decode()}
    assert "not made by this console" in client.post("/api/sign-in", headers=HEADERS, json=bad).json()["error"]


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
