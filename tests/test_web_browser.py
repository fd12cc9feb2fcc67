"""The web console in a real browser (Debian's Chromium, driven by Playwright), against a real
broker, the receiving service and a simulated home: the staff member makes her key in the
browser, is enrolled, registers a passkey with the administrator's one-time code (Chromium's
virtual authenticator, through CDP, stands in for the phone's fingerprint reader), signs in with
both, sees a fall arrive with the alert on, takes it and closes it; another browser profile
cannot act as her; a removed member is out. Screenshots of every screen at phone and PC size go
to build/screenshots/ (look at them). The console is reached as http://localhost:PORT: a
passkey's relying party is a host name, never an IP address."""

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.lab import ENV, TRYGG, edit_toml, stop_process, trygg, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
PC, PHONE = {"width": 1366, "height": 768}, {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def console_url(lab):
    yield from start_console(lab)


@pytest.fixture
def console_url_pg(lab, pg_url):
    """The console, the receiving service and the CLI on a real PostgreSQL store."""
    edit_toml(lab.center_config, {"store": {"url": pg_url}})
    yield from start_console(lab)


def start_console(lab):
    port = free_port()
    log = open(lab.root / "web.log", "w")
    proc = subprocess.Popen([*TRYGG, "center", "web", "--listen", f"127.0.0.1:{port}", "--config",
                             str(lab.center_config)], env=ENV, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return proc.poll() is not None
    wait_for(up, 30, "the console to listen")
    assert proc.poll() is None, (lab.root / "web.log").read_text()
    yield f"http://localhost:{port}"
    stop_process(proc)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


def make_key_and_enroll(lab, page, url: str, name: str, tmp: Path, home=None, role: str = "nurse") -> None:
    page.goto(url)
    page.fill("[data-field=name]", name)
    page.click("[data-action=make-key]")
    pub = json.loads(page.locator("[data-field=public-key]").text_content())
    assert pub["name"] == name and pub["format"] == "trygg-public-key-v1"
    path = tmp / f"{name}.pub"
    path.write_text(json.dumps(pub))
    trygg("center", "add-staff", path, "--config", lab.center_config)
    if home is not None:  # and on the home's device, with a role, as a technician does
        trygg("staff", "add", name, "--key", path, "--role", role, "--config", home.config)


def passkey_device(page, verified: bool = True):
    """A platform authenticator for this page, as on a phone (Chromium's virtual authenticator):
    resident keys, user verification by the device (fingerprint or PIN); its CDP session and id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": verified, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def passkey_code(lab, name: str) -> str:
    """What the administrator runs and reads out to the staff member."""
    return json.loads(trygg("center", "passkey-code", name, "--json", "--config", lab.center_config).stdout)["code"]


def sign_in(lab, page, name: str) -> None:
    """Sign in as a staff member does the first time: the page says to ask for a code, the
    administrator gives one, she registers her passkey with it, then signs in with it."""
    if not getattr(page, "passkey_device", None):
        page.passkey_device = passkey_device(page)
    page.click("[data-action=sign-in]")
    first = shown(page, "[data-field=me], [data-field=passkey-code]")
    if first.get_attribute("data-field") == "passkey-code":
        first.fill(passkey_code(lab, name))
        page.click("[data-action=register-passkey]")
        shown(page, "[data-field=notice]")
        page.click("[data-action=sign-in]")
    shown(page, f"[data-field=me]:has-text('{name}')")


def shown(page, selector: str, timeout_ms: int = 20_000):
    """The element once shown; on a timeout, the failure says what the page showed instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return page.wait_for_selector(selector, timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"{selector} not shown; the page shows:\n{page.inner_text('body')}\n"
                             f"console: {getattr(page, 'console_lines', [])}") from None


def cases(lab) -> list[dict]:
    return json.loads(trygg("center", "cases", "--json", "--config", lab.center_config).stdout)


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size_name, size in (("pc", PC), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{size_name}.png"), full_page=True)
    page.set_viewport_size(PC)


def test_a_fall_reaches_the_browser_is_taken_and_closed_with_the_browsers_own_key(lab, console_url_pg, browser, tmp_path):
    """On PostgreSQL, as a municipality runs it (the other browser tests use SQLite)."""
    console_url = console_url_pg
    home = lab.home("hem-webb", help_coming={"speaker": "none"},
                    buttons={"wrist": {"input": {"pin": 16}, "led": {"pin": 14}}}).start()
    lab.watch()
    context = browser.new_context(viewport=PC)
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    make_key_and_enroll(lab, page, console_url, "berit", tmp_path, home)
    shoot(page, "sign-in")
    sign_in(lab, page, "berit")
    assert page.get_attribute("body", "data-alerting") in (None, "false")

    started = time.monotonic()
    [fall] = home.simulate("alarm", kind="fall")
    card = page.wait_for_selector("article.case[data-state=open]", timeout=10_000)
    shown_s = time.monotonic() - started
    assert shown_s < 3.0, f"the fall took {shown_s:.2f} s to reach the browser"  # bench/web.py: the figure
    assert "Fall" in card.inner_text() and home.id in card.inner_text()
    assert page.get_attribute("body", "data-alerting") == "true"  # the tone plays until someone takes it
    shoot(page, "alarms-open")

    page.click("article.case[data-state=open] [data-action=accept]")
    page.wait_for_selector("article.case[data-state=accepted]")
    assert page.get_attribute("body", "data-alerting") == "false"
    told = shown(page, "[data-field=verdict]:has-text('Brukaren har fått besked')")
    assert "bekräftat av hemmets enhet" in told.inner_text()
    case = wait_for(lambda: next((c for c in cases(lab) if c["help_coming"]), None), 20, "the device's answer in the case")
    assert (case["accepted_by"], case["alarms"], case["help_coming"]["outcome"]) == ("berit", [fall], "done")
    shoot(page, "alarms-accepted")

    page.click("article.case[data-state=accepted] [data-action=unlock]")
    unlocked = shown(page, "[data-field=verdict]:has-text('Dörren är upplåst')")
    assert "bekräftat av hemmets enhet" in unlocked.inner_text()
    page.wait_for_selector("article.case[data-state=on_site]")  # her confirmed unlock: she is there
    assert cases(lab)[0]["on_site_by"] == "berit"
    shoot(page, "alarms-on-site")

    page.select_option("article.case[data-state=on_site] [data-field=outcome]", "helped")
    page.fill("article.case[data-state=on_site] [data-field=note]", "satt på golvet, oskadd")
    page.click("article.case[data-state=on_site] [data-action=close]")
    page.wait_for_selector("article.case[data-state=closed]")
    assert "Hjälpt, ingen skada" in page.inner_text("article.case[data-state=closed] [data-field=outcome]")
    [case] = cases(lab)
    assert (case["state"], case["outcome"], case["note"]) == ("closed", "helped", "satt på golvet, oskadd")

    page.click("[data-tab=homes]")
    row = page.wait_for_selector(f"tr[data-home={home.id}]")
    assert "uppkopplat" in row.inner_text()
    shoot(page, "homes")
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "Greta Lind", "address": "Storgatan 4", "entry": "Nyckelbox, kod 1234",
                                "care": {"fall": "Lyft inte ensam"}, "contacts": [
                                    {"name": "Per Lind", "relation": "son", "phone": "070-123 45 67"}]}))
    trygg("center", "resident", "set", home.id, "--file", card, "--config", lab.center_config)
    page.click(f"tr[data-home={home.id}] [data-action=open-home]")
    screen = shown(page, f"section#home[data-home={home.id}] [data-field=card]")
    assert "Greta Lind" in screen.inner_text() and "Lyft inte ensam" in screen.inner_text()
    assert "Fall" in page.inner_text("[data-field=events]")  # tonight's events, in plain language
    assert "Svar från hemmet: lås upp – bekräftat av hemmets enhet" in page.inner_text("[data-field=events]")
    door = shown(page, "[data-field=locks] .lock[data-lock=front-door][data-state=unlocked]")  # her unlock, tonight
    assert "Ytterdörren" in door.inner_text() and "bekräftat av hemmets enhet" in door.inner_text()
    page.click("[data-field=locks] [data-action=lock][data-lock=front-door]")
    shown(page, "[data-field=lock-verdict]:has-text('Dörren är låst')")
    shown(page, "[data-field=locks] .lock[data-lock=front-door][data-state=locked]")
    page.click("[data-field=locks] [data-action=ask-status]")  # the home itself says how its locks are
    shown(page, "[data-field=lock-verdict]:has-text('Hemmet svarade')")
    shoot(page, "home")
    page.click("[data-action=back]")

    page.click("[data-action=lang]")
    page.wait_for_selector("[data-tab=alarms]:has-text('Alarms')")
    assert "uppkopplat" not in page.inner_text("body") and "online" in page.inner_text("body")
    page.click("[data-tab=alarms]")
    shoot(page, "alarms-english")
    page.click("[data-action=lang]")

    # another browser profile: its own key under her name is not hers
    other = browser.new_context(viewport=PC).new_page()
    other.goto(console_url)
    other.fill("[data-field=name]", "berit")
    other.click("[data-action=make-key]")
    passkey_device(other)
    other.click("[data-action=sign-in]")  # refused on the browser key, before any passkey is asked for
    assert "inte den som är registrerad för berit" in other.wait_for_selector("[role=alert]").inner_text()

    page.reload()  # a page opened again at night: the browser lets it sound only after a touch
    shown(page, "[data-action=sound-on]").click()
    assert page.locator("[data-action=sound-on]").count() == 0

    # removed at the center: out at once, without reloading (the live stream ends, the page asks who it is)
    (lab.root / "center" / "staff" / "berit.pub").unlink()
    shown(page, "[data-action=sign-in]", timeout_ms=15_000)
    context.close()


def test_a_passkey_registered_with_the_administrators_code_signs_in_with_the_browsers_key(
        lab, console_url, browser, tmp_path):
    page = browser.new_context(viewport=PHONE).new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    cdp, device = passkey_device(page)
    make_key_and_enroll(lab, page, console_url, "dora", tmp_path)
    page.click("[data-action=sign-in]")
    told = shown(page, "[role=alert]").inner_text()
    assert "Du har ingen passkey än" in told and "trygg center passkey-code dora" in told  # what to ask for
    shown(page, "[data-field=passkey-code]")
    shoot(page, "passkey-needed")

    page.fill("[data-field=passkey-code]", "AAAA-BBBB-CCCC")
    page.click("[data-action=register-passkey]")
    shown(page, "[role=alert]:has-text('Koden stämmer inte')")
    assert cdp.send("WebAuthn.getCredentials", {"authenticatorId": device})["credentials"] == []

    page.fill("[data-field=passkey-code]", passkey_code(lab, "dora"))
    page.click("[data-action=register-passkey]")
    shown(page, "[data-field=notice]:has-text('Din passkey är sparad')")
    shoot(page, "passkey-saved")
    [on_device] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": device})["credentials"]
    assert on_device["isResidentCredential"] and on_device["rpId"] == "localhost"
    [at_center] = json.loads(trygg("center", "passkeys", "dora", "--json", "--config", lab.center_config).stdout)
    assert at_center["rp_id"] == "localhost" and at_center["id"] == on_device["credentialId"].rstrip("=").replace(
        "+", "-").replace("/", "_")

    page.click("[data-action=sign-in]")
    shown(page, "[data-field=me]:has-text('dora')")
    counter = on_device["signCount"]
    assert cdp.send("WebAuthn.getCredentials", {"authenticatorId": device})["credentials"][0]["signCount"] > counter
    shoot(page, "passkey-signed-in")

    # the phone in someone else's hand: the device cannot verify them, so the browser gives no
    # passkey (the server's own refusal of an answer without verification: test_web_api.py)
    page.click("[data-action=sign-out]")
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": device, "isUserVerified": False})
    page.click("[data-action=sign-in]")
    shown(page, "[role=alert]:has-text('Passkeyn avbröts')")
    assert page.locator("[data-field=me]").count() == 0

    log = trygg("center", "sign-ins", "--config", lab.center_config).stdout
    assert "passkey_added" in log and "signed_in" in log and "[no_passkey]" in log and "chain intact" in log


def test_an_open_session_cannot_unlock_without_the_person_and_the_door_stays_locked(lab, console_url, browser, tmp_path):
    """The step-up: each unlock asks for the passkey again, over that command. A signed-in phone in
    someone else's hand (the device cannot verify them) gets no passkey answer, so the page sends
    nothing and says so; the home itself still says its door is locked."""
    home = lab.home("hem-steg").start()
    lab.watch()
    page = browser.new_context(viewport=PHONE).new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    make_key_and_enroll(lab, page, console_url, "erik", tmp_path, home)
    sign_in(lab, page, "erik")
    cdp, device = page.passkey_device
    page.click("[data-tab=homes]")
    shown(page, f"tr[data-home={home.id}] [data-action=open-home]").click()
    shown(page, "[data-field=locks] .lock[data-lock=front-door]")

    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": device, "isUserVerified": False})
    page.click("[data-field=locks] [data-action=unlock][data-lock=front-door]")
    refusal = shown(page, "[data-field=lock-verdict]:has-text('Inget skickades till hemmet')")
    assert "passkey" in refusal.inner_text() and "upplåst" not in refusal.inner_text()
    shoot(page, "step-up-refused")
    page.click("[data-field=locks] [data-action=ask-status]")  # the device itself: still locked
    shown(page, "[data-field=lock-verdict]:has-text('Hemmet svarade')")
    shown(page, "[data-field=locks] .lock[data-lock=front-door][data-state=locked]")

    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": device, "isUserVerified": True})
    page.click("[data-field=locks] [data-action=unlock][data-lock=front-door]")  # she confirms: it opens
    shown(page, "[data-field=lock-verdict]:has-text('Dörren är upplåst')")
    shown(page, "[data-field=locks] .lock[data-lock=front-door][data-state=unlocked]")
    log = json.loads(trygg("center", "sign-ins", "--json", "--config", lab.center_config).stdout)["entries"]
    assert [(e["name"], e["command"]) for e in log if e["action"] == "stepped_up"] == [("erik", "unlock")]
    assert not [e for e in log if e.get("stage") == "step_up"]  # refused in the browser: no answer reached the server


def test_a_home_that_cannot_say_help_is_coming_is_shown_as_its_devices_refusal(lab, console_url, browser, tmp_path):
    home = lab.home("hem-utan-lampa").start()  # no light, no speaker: the device refuses help_coming
    lab.watch()
    page = browser.new_context(viewport=PC).new_page()
    make_key_and_enroll(lab, page, console_url, "anna", tmp_path, home, role="night-staff")
    sign_in(lab, page, "anna")
    home.simulate("alarm", kind="help")
    shown(page, "article.case[data-state=open] [data-action=accept]").click()
    refusal = shown(page, "[data-field=verdict]:has-text('Hemmets enhet sa nej')")
    assert "bekräftat" not in refusal.inner_text()


def test_an_untaken_alarm_is_shown_escalated_and_a_home_gone_offline_as_offline(lab, console_url, browser, tmp_path):
    from tests.support.lab import edit_toml

    edit_toml(lab.center_config, {"cases": {"accept_within_s": 5, "escalate_times": 1}})
    home = lab.home("hem-tyst").start()
    lab.watch()
    page = browser.new_context(viewport=PHONE).new_page()
    make_key_and_enroll(lab, page, console_url, "cilla", tmp_path)
    sign_in(lab, page, "cilla")
    home.simulate("alarm", kind="help")
    shown(page, "article.case[data-state=open] .flags:has-text('ESKALERAT 1')")
    assert page.get_attribute("body", "data-alerting") == "true"  # still sounding: nobody took it
    shoot(page, "alarms-escalated")
    home.stop()
    page.click("[data-tab=homes]")
    shown(page, f"tr[data-home={home.id}] td.offline:has-text('NEDKOPPLAT')")
    shoot(page, "homes-offline")


OPEN_IN_PAGE = """async ([sealed, topic, signRaw]) => {
  const { openSealed } = await import("/static/envelope.js");
  const keys = await new Promise((resolve, reject) => {
    const open = indexedDB.open("trygg-console", 1);
    open.onsuccess = () => { const get = open.result.transaction("keys").objectStore("keys").get("me");
                             get.onsuccess = () => resolve(get.result); get.onerror = () => reject(get.error); };
    open.onerror = () => reject(open.error);
  });
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  try {
    return new TextDecoder().decode(await openSealed(bytes(sealed), topic, keys.kem, bytes(signRaw)));
  } catch (e) { return "refused: " + e.message; }
}"""


def test_the_browser_opens_what_the_python_side_seals_to_its_key_and_nothing_else(lab, console_url, browser):
    import base64

    from base.keys import Identity, parse_public
    from protocol import envelope, topics

    page = browser.new_context(viewport=PC).new_page()
    page.goto(console_url)
    page.fill("[data-field=name]", "vera")
    page.click("[data-action=make-key]")
    staff = parse_public(json.loads(page.locator("[data-field=public-key]").text_content()), "the browser")
    home = Identity.generate("hem-vektor")
    topic = topics.lookin("hem-vektor")
    body = json.dumps({"t": "lookin", "note": "vektor åäö"}, ensure_ascii=False).encode()
    sealed = envelope.seal(body, topic, home.sign, staff.kem)  # what the device does (cryptography's HPKE)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    sign_raw = b64(home.sign.public_key().public_bytes_raw())
    assert page.evaluate(OPEN_IN_PAGE, [b64(sealed), topic, sign_raw]) == body.decode()
    tampered = bytearray(sealed)
    tampered[40] ^= 1
    assert page.evaluate(OPEN_IN_PAGE, [b64(bytes(tampered)), topic, sign_raw]).startswith("refused")
    other_topic = topics.lookin("hem-annat")
    assert page.evaluate(OPEN_IN_PAGE, [b64(sealed), other_topic, sign_raw]).startswith("refused")
    forger = Identity.generate("hem-vektor")  # sealed to her key, but signed by someone else
    forged = envelope.seal(body, topic, forger.sign, staff.kem)
    assert "not signed by this home" in page.evaluate(OPEN_IN_PAGE, [b64(forged), topic, sign_raw])
    to_other = envelope.seal(body, topic, home.sign, Identity.generate("x").kem.public)
    assert "another key" in page.evaluate(OPEN_IN_PAGE, [b64(to_other), topic, sign_raw])


def test_a_look_in_round_in_the_browser_the_picture_opened_there_and_kept_nowhere_at_the_center(
        lab, console_url, browser, tmp_path):
    import base64
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from agent import config as agentcfg
    from agent.daemon import Daemon
    from tests.test_lookin_e2e import CAMERA, NtpClock

    now = datetime.now(ZoneInfo("Europe/Stockholm")).strftime("%H:%M")  # an agreed look-in due now
    home = lab.home("hem-kamera", lookin={**CAMERA, "times": [now], "tolerance_s": 900})
    page = browser.new_context(viewport=PC).new_page()
    make_key_and_enroll(lab, page, console_url, "anna", tmp_path, home, role="night-staff")
    daemon = Daemon(agentcfg.load(home.config), clock=NtpClock())
    daemon.start()
    try:
        wait_for(lambda: daemon.status()["link"] == "connected", 20, "the home to connect")
        lab.watch()
        sign_in(lab, page, "anna")
        page.click("[data-tab=rounds]")
        slot = f"tr[data-slot='{home.id} {now}']"
        shown(page, f"{slot}[data-state=due]", timeout_ms=30_000)
        shoot(page, "rounds")
        page.click(f"{slot} [data-action=look-in]")
        img = shown(page, "[data-field=lookin] img", timeout_ms=30_000)
        assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", img)
        assert "suddad" in page.inner_text("[data-field=lookin]")  # the device blurred it, and says so
        shoot(page, "lookin")
        jpeg = base64.b64decode(img.get_attribute("src").split(",", 1)[1])
        assert jpeg[:3] == b"\xff\xd8\xff"
        page.click(f"{slot} [data-action=seen]")
        shown(page, f"{slot}[data-state=seen]")
        assert "sedd" in page.inner_text(slot)
        rounds = json.loads(trygg("center", "rounds", "--json", "--config", lab.center_config).stdout)
        [mine] = [s for s in rounds["slots"] if s["home"] == home.id and s["slot"] == now]
        assert (mine["state"], mine["by"]) == ("seen", "anna")
        for path in (lab.root).rglob("*"):  # the store, the logs, the configs: no copy of it anywhere
            if path.is_file() and path.stat().st_size < 50_000_000:
                data = path.read_bytes()
                assert jpeg[100:400] not in data and base64.b64encode(jpeg)[:300] not in data, path
    finally:
        daemon.stop()


def test_the_page_runs_only_the_code_its_html_pins_and_shows_its_fingerprint(lab, console_url, browser, tmp_path):
    """A script altered on the way (a cache, a proxy, a file replaced beside the running console)
    does not run: the HTML pins each file by hash. The key screen shows the page's fingerprint,
    the one `trygg center web --fingerprint` prints from the installed files."""
    page = browser.new_context().new_page()
    make_key_and_enroll(lab, page, console_url, "berit", tmp_path)
    printed = trygg("center", "web", "--fingerprint", "--config", lab.center_config).stdout.strip()
    shown(page, f"[data-field=page-code]:has-text('{printed}')")

    altered = browser.new_context().new_page()
    errors: list[str] = []
    altered.on("console", lambda message: errors.append(message.text))
    altered.route("**/static/envelope.js", lambda route: route.fulfill(
        status=200, content_type="text/javascript", body="export const openSealed = () => 'not the real code';"))
    altered.goto(console_url)
    wait_for(lambda: any("integrity" in e.lower() for e in errors), 10, "the browser to refuse the altered module")
    time.sleep(0.5)
    assert altered.locator("[data-field=name]").count() == 0, "the page ran with an altered module"
    assert "Trygg …" in altered.inner_text("body")
