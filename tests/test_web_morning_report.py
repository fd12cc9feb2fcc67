"""The morning report read in the console: GET /report/morning, its own page under a strict CSP.

On generated weeks of homes with planted changes (tests/support/reportyear.py: real envelopes
sealed to the center key, real SQLite store): refused without a session (a Swedish page, 401);
for signed-in staff the report with links to the night before and after, one home's view and the
PDF; a CSP of its own that allows exactly the page's <style> elements by hash and nothing else
(no script, no image, no inline style attribute); bad ?date= and ?home= are one Swedish line, 400.
In Chromium (Playwright): a nurse signs in, opens the report from the console's button, sees a
flagged home first with its flag line, and the page breaks no rule of its CSP; the screenshot goes
to build/screenshots/console-morning-report.png.
"""

import base64
import hashlib
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from center import config as cfgmod
from tests.support.reportyear import generate, make_center
from tests.test_web_browser import (
    PC,
    SHOTS,
    browser,  # noqa: F401 - fixture (Debian's Chromium)
    make_key_and_enroll,
    shown,
    sign_in,
    start_console,
)

ZONE = ZoneInfo("Europe/Stockholm")
PLANTED_WORDS = {"bed_exits": "uppstigningar ur sängen", "activity": "rörelse på natten",
                 "doors": "dörren öppnad på natten", "doses": "missade doser", "quiet": "ingen rörelse"}


def _today() -> datetime:
    return datetime.now(ZONE)


@pytest.fixture(scope="module")
def center(tmp_path_factory, pki):
    root = tmp_path_factory.mktemp("morningpage")
    morning = _today().date()
    truth = generate(make_center(root, pki), homes=8, days=36, morning=morning, seed=11, planted_share=0.5)
    return truth, cfgmod.load(truth.config)


@pytest.fixture
def client(center):
    from starlette.testclient import TestClient

    from base.keys import Identity, write_public
    from center import keyring
    from center.atrest import Sealer, center_keys
    from center.residents import RESIDENT_CONTEXT, Residents
    from center.service import case_desk
    from center.store import EventStore
    from center.web.accesslog import ACCESS_CONTEXT, AccessLog
    from center.web.app import Console, make_app
    from center.web.passkeys import PASSKEY_CONTEXT, PasskeyStore
    from center.web.session import Sessions
    from center.web.signin import SignInDesk
    from tests.test_web_api import ORIGIN, Clock

    _truth, cfg = center
    store = EventStore(cfg.store_url)
    keys = center_keys(cfg)
    clock = Clock(time.time())
    nurse = Identity.generate("karin")
    cfg.center.staff_dir.mkdir(mode=0o700, exist_ok=True)
    write_public(nurse.public(), cfg.center.staff_dir / "karin.pub", force=True)
    passkeys = PasskeyStore(store.db, Sealer(keys, PASSKEY_CONTEXT))
    signin = SignInDesk(Sessions(b"k" * 32, 3600, clock), passkeys, AccessLog(store.db, Sealer(keys, ACCESS_CONTEXT), clock),
                        lambda name: keyring.staff_public(cfg, name), clock)
    app = make_app(Console(cfg, case_desk(cfg, store, keys), signin, secure=False, clock=clock,
                           residents=Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)), store=store))
    try:
        with TestClient(app, base_url=ORIGIN) as c:
            c.passkeys, c.log, c.clock, c.soft, c.nurse = passkeys, None, clock, {}, nurse
            yield c
    finally:
        store.close()


def _signed_in(client):
    from tests.test_web_api import sign_in as api_sign_in

    api_sign_in(client, client.nurse)
    return client


def _policy(answer) -> dict[str, list[str]]:
    [header] = answer.headers.get_list("content-security-policy")  # one policy: the console's is not added too
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in header.split(";")) if d}


def test_without_a_session_the_report_page_is_refused_in_swedish(client):
    answer = client.get("/report/morning")
    assert answer.status_code == 401 and "Logga in i konsolen" in answer.text
    assert "Morgonrapport " not in answer.text and "hem-r0" not in answer.text
    assert _policy(answer)["script-src"] == ["'none'"]
    client.cookies.set("trygg_session", "forged")
    assert client.get("/report/morning").status_code == 401


def test_the_page_is_the_report_under_a_csp_of_its_own_hashes(client, center):
    truth, _cfg = center
    answer = _signed_in(client).get("/report/morning")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    page = answer.text
    policy = _policy(answer)
    assert policy["default-src"] == ["'none'"] and policy["script-src"] == ["'none'"]
    assert policy["img-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"] and "connect-src" not in policy and "font-src" not in policy
    styles = re.findall(r"<style[^>]*>(.*?)</style>", page, re.DOTALL)
    assert 2 <= len(styles) <= 4, len(styles)  # the report's own and one per chart kind, not one per chart
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'" for css in styles}
    assert set(policy["style-src"]) == hashes
    assert "unsafe" not in answer.headers["content-security-policy"]
    assert " style=" not in page and "<script" not in page and "<svg" in page
    today = _today().date()
    assert "Morgonrapport" in page and f"{today.day} " in page
    assert 'href="/report/morning?date=' + (today - timedelta(days=1)).isoformat() in page  # the night before
    assert "next-night" not in page  # no night after today's
    assert f'href="/api/report/morning?date={today.isoformat()}&amp;format=pdf"' in page and "Skriv ut (PDF)" in page
    named = [t for t in truth.homes.values() if t.name]
    assert all(t.name in page for t in named)


def test_one_home_and_an_earlier_night(client, center):
    truth, _cfg = center
    home = next(t for t in truth.homes.values() if t.planted and t.name)
    earlier = (_today().date() - timedelta(days=2)).isoformat()
    answer = _signed_in(client).get(f"/report/morning?date={earlier}&home={home.home}")
    assert answer.status_code == 200
    page = answer.text
    assert home.name in page and sum(1 for t in truth.homes.values() if t.name and t.name in page) == 1
    assert "Alla hem" in page and f'href="/report/morning?date={earlier}"' in page
    later = (_today().date() - timedelta(days=1)).isoformat()
    assert f'href="/report/morning?date={later}&amp;home={home.home}"' in page
    assert "format=pdf" in page and f"home={home.home}" in page


@pytest.mark.parametrize(("query", "says"), [
    ("date=2026-02-30", "inget datum som finns"),
    ("date=1.12.2026", "ÅÅÅÅ-MM-DD"),
    ("date=２０２６-１２-０１", "ÅÅÅÅ-MM-DD"),
    ("date=2999-01-01", "har inte kommit än"),
    ("home=hem-none", "finns inte här"),
    ("home=../center", "inget hem-id"),
    ("home=<b>x</b>", "inget hem-id"),
])
def test_a_bad_date_or_home_is_one_swedish_line(client, query, says):
    answer = _signed_in(client).get(f"/report/morning?{query}")
    assert answer.status_code == 400, answer.text
    [line] = re.findall(r'<p role="alert">(.*?)</p>', answer.text)
    assert says in line and "Traceback" not in answer.text and "<b>" not in answer.text
    assert _policy(answer)["default-src"] == ["'none'"]


def test_the_console_page_keeps_its_own_policy(client):
    policy = _policy(client.get("/"))
    assert policy["default-src"] == ["'self'"] and policy["style-src"] == ["'self'"]


def test_a_nurse_opens_the_report_from_the_console_and_sees_the_flagged_home_first(lab, browser, tmp_path):  # noqa: F811
    """Chromium: sign in, the console's "Morgonrapport" opens the report in its own tab; the first
    home is one with a planted change, shown by name with its flag line; no CSP violation."""
    truth = generate(lab.center_config, homes=6, days=36, morning=_today().date(), seed=4, planted_share=0.6)
    gen = start_console(lab)
    url = next(gen)
    try:
        context = browser.new_context(viewport=PC, locale="sv-SE")
        page = context.new_page()
        page.console_lines = []
        page.on("console", lambda m: page.console_lines.append(m.text))
        make_key_and_enroll(lab, page, url, "karin", tmp_path)
        sign_in(lab, page, "karin")
        with context.expect_page() as opened:
            page.click("[data-action=morning-report]")
        report = opened.value
        report_lines: list[str] = []
        report.on("console", lambda m: report_lines.append(m.text))
        report.wait_for_load_state()
        report.reload()  # console messages (a CSP refusal) of a load we listen to from its start
        report.wait_for_load_state()
        first = shown(report, "section.home")
        heading = first.query_selector("h2").inner_text()
        flags = [li.inner_text() for li in first.query_selector_all("ul.flags li")]
        planted = {t.name or t.home: t for t in truth.homes.values() if t.planted}
        name = next((n for n in planted if heading.startswith(n)), None)
        assert name is not None, (heading, sorted(planted))
        assert any(PLANTED_WORDS[planted[name].planted] in f for f in flags), (name, planted[name].planted, flags)
        assert not any(re.search(r"[0-9]\.[0-9]", f) for f in flags), flags  # a decimal comma, as Swedish is written
        assert report.locator("[data-action=pdf]").inner_text() == "Skriv ut (PDF)"
        # the page's style applied (a refused <style> would leave the flags unstyled and black)
        color = report.eval_on_selector("ul.flags li", "e => getComputedStyle(e).color")
        assert color == "rgb(142, 27, 16)", color
        assert not [m for m in report_lines if "Content Security Policy" in m], report_lines
        SHOTS.mkdir(parents=True, exist_ok=True)
        report.screenshot(path=str(SHOTS / "console-morning-report.png"))
        report.screenshot(path=str(SHOTS / "console-morning-report-full.png"), full_page=True)
        report.click("[data-action=previous-night]")
        report.wait_for_load_state()
        assert "date=" in report.url and shown(report, "h1").inner_text().startswith("Morgonrapport")
        context.close()
    finally:
        gen.close()
