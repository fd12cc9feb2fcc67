// The night staff's console in the browser. The staff member's keys are made and kept here
// (WebCrypto, non-extractable, in IndexedDB); sign-in and every case action are signed here, so
// the server can check them but never make one. Sign-in also needs the person: their passkey
// (WebAuthn, with a PIN or biometric), registered once with a code from the administrator; and so
// does each unlock and look-in, again, so an open session alone cannot open a door.
// Preact + htm (npm, pinned; no build step).
import { html, render, useState, useEffect, useRef } from "./vendor/preact-htm.js";
import { openSealed } from "./envelope.js";

// Times as the homes keep them (Swedish time), whatever zone the phone or PC is set to: an agreed
// look-in at 23:00 and "look in by 23:15" must read alike.
const ZONE = "Europe/Stockholm";

// -- keys in this browser ------------------------------------------------------------------------
const DB = "trygg-console";

function idb(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction("keys", mode);
      const req = fn(tx.objectStore("keys"));
      tx.oncomplete = () => resolve(req && req.result);
      tx.onerror = () => reject(tx.error);
    };
  });
}
const loadKeys = () => idb("readonly", (s) => s.get("me"));
const saveKeys = (keys) => idb("readwrite", (s) => s.put(keys, "me"));

const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const fromB64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function makeKeys(name) {
  const sign = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const kem = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const signRaw = await crypto.subtle.exportKey("raw", sign.publicKey);
  const kemRaw = await crypto.subtle.exportKey("raw", kem.publicKey);
  const pub = { format: "trygg-public-key-v1", name, sign: b64(signRaw), kem: "x25519", kem_public: b64(kemRaw) };
  const digest = hex(await crypto.subtle.digest("SHA-256", signRaw)).slice(0, 32);
  const keys = { name, sign, kem, pub, fingerprint: digest.match(/.{4}/g).join(" ") };
  await saveKeys(keys);
  return keys;
}

// The server checks that a statement is canonical JSON (sorted keys, no spaces), as Python's
// json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes it.
function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

async function signed(keys, statement) {
  const text = typeof statement === "string" ? statement : canonical(statement);
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, keys.sign.privateKey, new TextEncoder().encode(text));
  return { statement: text, signature: b64(sig) };
}

// -- the server ------------------------------------------------------------------------------------
async function api(path, body) {
  const init = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.method = "POST";
    init.headers = { "Content-Type": "application/json", "X-Trygg": "1" };
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error(data.error || response.statusText), { status: response.status, code: data.code });
  }
  return data;
}

// -- passkeys (WebAuthn) -----------------------------------------------------------------------------
// The server (py_webauthn) writes options with base64url strings where the browser wants bytes, and
// reads the browser's answer back in the same form.
const fromB64url = (text) => fromB64(text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "="));
const b64url = (buf) => b64(buf).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const descriptors = (list) => (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));

function credentialJSON(cred) {
  const r = cred.response;
  const response = { clientDataJSON: b64url(r.clientDataJSON) };
  if (r.attestationObject) Object.assign(response, { attestationObject: b64url(r.attestationObject), transports: r.getTransports?.() || [] });
  if (r.authenticatorData) Object.assign(response, { authenticatorData: b64url(r.authenticatorData), signature: b64url(r.signature) });
  if (r.userHandle) response.userHandle = b64url(r.userHandle);
  return { id: cred.id, rawId: b64url(cred.rawId), type: cred.type, response,
    authenticatorAttachment: cred.authenticatorAttachment || undefined, clientExtensionResults: cred.getClientExtensionResults() };
}

const passkeysHere = () => typeof window.PublicKeyCredential === "function" && !!navigator.credentials;

// Sign-in: this browser's key signs the server's challenge; the server checks it and asks for the
// passkey on the same challenge; the person confirms on their device; both go back together.
async function signInWithPasskey(keys) {
  const { challenge } = await api("/api/challenge");
  const body = await signed(keys, { challenge, name: keys.name, purpose: "trygg-console-sign-in" });
  const { publicKey } = await api("/api/sign-in/options", body);
  const cred = await navigator.credentials.get({
    publicKey: { ...publicKey, challenge: fromB64url(publicKey.challenge), allowCredentials: descriptors(publicKey.allowCredentials) },
  });
  return (await api("/api/sign-in", { ...body, passkey: credentialJSON(cred) })).name;
}

// Registering a passkey: the administrator's one-time code, this browser's key, and a new passkey
// that verifies the person.
async function registerPasskey(keys, code) {
  const { challenge } = await api("/api/challenge");
  const body = await signed(keys, { challenge, name: keys.name, purpose: "trygg-console-passkey" });
  const { publicKey } = await api("/api/passkeys/options", { ...body, code });
  const cred = await navigator.credentials.create({
    publicKey: { ...publicKey, challenge: fromB64url(publicKey.challenge), user: { ...publicKey.user, id: fromB64url(publicKey.user.id) },
      excludeCredentials: descriptors(publicKey.excludeCredentials) },
  });
  return api("/api/passkeys", { ...body, code, credential: credentialJSON(cred) });
}

// What to tell the person when sign-in or registering did not work: the server's reason in their words.
function problem(w, e, name) {
  const known = e.code && w.ui[`refused_${e.code}`];
  if (known) return known.replace("{name}", name);
  if (e.name === "NotAllowedError" || e.name === "AbortError") return w.ui.passkey_cancelled;
  if (e.name === "InvalidStateError") return w.ui.passkey_exists_here;
  return `${w.ui.error}: ${e.message}`;
}

// The step-up: before unlock and look-in the person confirms again with their passkey, over the
// exact command this browser signs (the server's challenge is that command's hash). Cancelled, or
// a device that cannot verify the person: nothing is sent.
async function confirmPerson(publicKey) {
  try {
    const cred = await navigator.credentials.get({
      publicKey: { ...publicKey, challenge: fromB64url(publicKey.challenge), allowCredentials: descriptors(publicKey.allowCredentials) },
    });
    return credentialJSON(cred);
  } catch (e) {
    if (e.name === "NotAllowedError" || e.name === "AbortError") throw Object.assign(new Error(e.message), { code: "step_up_cancelled" });
    throw e;
  }
}

// A command to a home: the server prepares it (fresh by the home's challenge), this browser signs
// exactly those bytes (and for unlock and look-in the person confirms them with their passkey), the
// server seals and sends it and returns the device's signed verdict.
async function command(keys, home, action, args = {}) {
  const path = `/api/homes/${encodeURIComponent(home)}/command`;
  const prepared = await api(`${path}/prepare`, { action, args });
  const passkey = prepared.step_up ? await confirmPerson(prepared.step_up.publicKey) : undefined;
  const toSign = Uint8Array.from(atob(prepared.to_sign), (c) => c.charCodeAt(0));
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, keys.sign.privateKey, toSign);
  return api(`${path}/send`, { body: prepared.body, signature: b64(sig), passkey });
}

// Why a command was not sent, in the person's words: the step-up cancelled or refused (the server's
// reason by its code), or the server's own message.
function commandProblem(w, e) {
  if (e.code === "step_up_cancelled") return w.ui.step_up_cancelled;
  const known = e.code && w.ui[`refused_${e.code}`];
  if (known) return `${w.ui.not_sent} ${known}`;
  return `${w.ui.error}: ${e.message}`;
}

// A look-in: the device seals the picture to this browser's own key; it is opened only here.
async function lookIn(keys, home) {
  const answer = await command(keys, home, "lookin");
  if (answer.outcome !== "done") return { answer };
  for (const sealed of answer.pictures || []) {
    try {
      const body = await openSealed(fromB64(sealed), answer.topic, keys.kem, fromB64(answer.home_sign));
      const picture = JSON.parse(new TextDecoder().decode(body));
      if (picture.home === home && picture.staff === keys.name && picture.command === answer.command) {
        return { answer, picture };
      }
    } catch (e) { /* another staff member's picture, or not one: skip */ }
  }
  return { answer: { ...answer, outcome: "failed", reason: "no picture for this browser's key" } };
}

function verdictText(w, answer) {
  if (answer.outcome === "done") {
    const time = new Date(answer.answered * 1000).toLocaleTimeString("sv-SE", { timeZone: ZONE });
    return (w.ui[`done_${answer.action}`] || answer.action).replace("{time}", time);
  }
  return `${w.ui[answer.outcome] || answer.outcome}${answer.reason ? `: ${answer.reason}` : ""}`;
}

// -- the alert: a tone until someone takes the alarm, and a vibration on phones -----------------------
const alert = {
  ctx: null, timer: null,
  unlock() { this.ctx = this.ctx || new AudioContext(); this.ctx.resume(); },
  beep() {
    if (!this.ctx) return;
    const osc = this.ctx.createOscillator(), gain = this.ctx.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.25;
    osc.connect(gain).connect(this.ctx.destination);
    osc.start(); osc.stop(this.ctx.currentTime + 0.4);
  },
  set(on) {
    document.body.dataset.alerting = on ? "true" : "false";
    if (on && !this.timer) {
      this.beep(); navigator.vibrate?.([300, 150, 300]);
      this.timer = setInterval(() => this.beep(), 1500);
    } else if (!on && this.timer) { clearInterval(this.timer); this.timer = null; }
  },
};

// -- screens ---------------------------------------------------------------------------------------
const localTime = (iso) => (iso ? new Date(iso).toLocaleTimeString("sv-SE", { timeZone: ZONE }) : "–");

// What staff call a lock: the resident card's label; the front door by the page's own word; with
// one lock only, nothing (the button says "Lås upp" alone).
function lockLabel(w, lock, label, locks) {
  if (Object.keys(locks || {}).length <= 1) return "";
  return label || (lock === "front-door" ? w.ui.front_door : lock);
}

// The home's locks as its device last confirmed them tonight; Unlock / Lock each, and asking the
// home itself (a signed status command) when the state is not known.
function Locks({ w, home, keys, locks, onDone }) {
  const [verdict, setVerdict] = useState(null);
  const [busy, setBusy] = useState(false);
  const send = async (action, args = {}) => {
    setBusy(true); setVerdict(null);
    try {
      const answer = await command(keys, home, action, args);
      setVerdict({ ok: answer.outcome === "done", text: verdictText(w, answer) });
      onDone();
    } catch (e) { setVerdict({ ok: false, text: commandProblem(w, e) }); }
    setBusy(false);
  };
  return html`<div class="locks" data-field="locks">
    ${locks.map((l) => html`<div class="lock" data-lock=${l.lock} data-state=${l.state || "unknown"}>
      <strong>${l.label || (l.lock === "front-door" ? w.ui.front_door : l.lock)}:</strong>${" "}
      ${l.state ? html`${w.ui[`lock_${l.state}`] || l.state} ${localTime(l.at).slice(0, 5)} — ${w.ui.confirmed}`
        : w.ui.lock_unknown}
      <div class="actions">
        <button data-action="unlock" data-lock=${l.lock} disabled=${busy} onClick=${() => send("unlock", { lock: l.lock })}>${w.ui.unlock}</button>
        <button data-action="lock" data-lock=${l.lock} disabled=${busy} onClick=${() => send("lock", { lock: l.lock })}>${w.ui.lock}</button>
      </div></div>`)}
    <button data-action="ask-status" disabled=${busy} onClick=${() => send("status")}>${w.ui.ask_home}</button>
    ${verdict ? html`<p class=${verdict.ok ? "verdict" : "error"} data-field="lock-verdict" role="status">${verdict.text}</p>` : ""}
  </div>`;
}

function CaseCard({ c, w, me, keys, outcomes, onDone }) {
  const [outcome, setOutcome] = useState(Object.keys(outcomes)[0]);
  const [note, setNote] = useState("");
  const [error, setError] = useState("");
  const [verdict, setVerdict] = useState(null);
  const who = c.state === "on_site" ? c.on_site_by : c.accepted_by;
  const send = async (action, args = {}) => {
    const answer = await command(keys, c.home, action, args);
    setVerdict({ ok: answer.outcome === "done", text: verdictText(w, answer) });
  };
  const act = async (action, args = {}) => {
    setError("");
    try {
      const body = await signed(keys, { v: 1, case: c.id, action, by: me, at: Math.floor(Date.now() / 1000), args });
      await api(`/api/cases/${encodeURIComponent(c.id)}/action`, body);
      onDone();
      if (action === "accept") await send("help_coming", { case: c.id });  // the resident is told at once
    } catch (e) { setError(`${w.ui.error}: ${e.message}`); }
  };
  const door = async (action, lock) => {
    setError("");
    try { await send(action, { lock }); onDone(); } catch (e) { setError(commandProblem(w, e)); }
  };
  const kinds = c.kinds.map((k) => w.kinds[k] || k).join(", ");
  return html`<article class="case ${c.state}" data-case=${c.id} data-state=${c.state} data-alarms=${c.alarms.length}>
    <h2>${kinds}</h2>
    <div class="meta">${w.ui.home} ${c.home} · ${w.ui.opened} ${localTime(c.opened)}</div>
    <div>${(w.states[c.state] || c.state).replace("{who}", who || "?")}${c.state === "closed" && c.outcome
      ? html` – <span data-field="outcome">${outcomes[c.outcome] || c.outcome}</span>` : ""}</div>
    ${c.escalations?.length ? html`<div class="flags">${w.ui.escalated} ${c.escalations.filter((e) => e.to === "shift").length}</div>` : ""}
    ${c.overdue && c.state !== "closed" ? html`<div class="flags">${w.ui.overdue}</div>` : ""}
    ${c.help_coming ? html`<div>${w.ui.help_coming_told}: ${c.help_coming.outcome === "done" ? w.ui.confirmed
      : w.ui[c.help_coming.outcome] || c.help_coming.outcome}</div>` : ""}
    <div class="actions">
      ${c.state === "open" ? html`<button class="alarm" data-action="accept" onClick=${() => act("accept")}>${w.ui.take}</button>` : ""}
      ${["open", "accepted"].includes(c.state) ? html`<button data-action="on_site" onClick=${() => act("on_site")}>${w.ui.on_site}</button>` : ""}
      ${["accepted", "on_site"].includes(c.state) && who === me ? html`
        ${Object.entries(c.locks || { "front-door": null }).map(([lock, label]) => html`
          <button data-action="unlock" data-lock=${lock} onClick=${() => door("unlock", lock)}>${w.ui.unlock} ${lockLabel(w, lock, label, c.locks)}</button>
          <button data-action="lock" data-lock=${lock} onClick=${() => door("lock", lock)}>${w.ui.lock} ${lockLabel(w, lock, label, c.locks)}</button>`)}` : ""}
    </div>
    ${verdict ? html`<p class=${verdict.ok ? "verdict" : "error"} data-field="verdict" role="status">${verdict.text}</p>` : ""}
    ${["accepted", "on_site"].includes(c.state) ? html`<div class="actions">
      <div><label>${w.ui.outcome}</label>
        <select data-field="outcome" value=${outcome} onChange=${(e) => setOutcome(e.target.value)}>
          ${Object.entries(outcomes).map(([id, label]) => html`<option value=${id}>${label}</option>`)}
        </select></div>
      <div><label>${w.ui.note}</label><input data-field="note" value=${note} onInput=${(e) => setNote(e.target.value)} /></div>
      <button data-action="close" onClick=${() => act("close", note ? { outcome, note } : { outcome })}>${w.ui.close}</button>
    </div>` : ""}
    ${error ? html`<p class="error" role="alert">${error}</p>` : ""}
  </article>`;
}

function Alarms({ w, me, keys, outcomes, cases, reload }) {
  const open = cases.filter((c) => c.state !== "closed");
  const closed = cases.filter((c) => c.state === "closed");
  return html`<section id="alarms">
    ${open.length === 0 ? html`<p>${w.ui.no_open_cases}</p>` : ""}
    ${[...open, ...closed].map((c) => html`<${CaseCard} key=${c.id} c=${c} w=${w} me=${me} keys=${keys} outcomes=${outcomes} onDone=${reload} />`)}
  </section>`;
}

// One look-in at a time: the button's state and the picture (or why there is none).
function useLookIn(w, keys) {
  const [look, setLook] = useState(null);
  const [busy, setBusy] = useState("");
  const lookAt = async (home) => {
    setBusy(home); setLook(null);
    try { setLook({ home, ...(await lookIn(keys, home)) }); } catch (e) { setLook({ home, error: commandProblem(w, e) }); }
    setBusy("");
  };
  return { look, busy, lookAt, close: () => setLook(null) };
}

function Picture({ w, look, close }) {
  if (!look) return "";
  const p = look.picture;
  const privacy = p ? w.ui[`privacy_${p.privacy}`] || p.privacy : "";
  const caption = p ? w.ui.picture.replace("{home}", p.home).replace("{privacy}", privacy) : "";
  return html`<div class="picture" data-field="lookin">
    ${p ? html`<p>${caption.replace("{time}", localTime(p.time))}</p>
      ${p.frames.map((f) => html`<img alt=${caption.replace("{time}", "")} src=${`data:image/jpeg;base64,${f}`} />`)}`
    : html`<p class="error" role="alert">${look.error || verdictText(w, look.answer)}</p>`}
    <button data-action="close-picture" onClick=${close}>${w.ui.close_picture}</button>
  </div>`;
}

// A command's answer in the home's events, in words: "Svar från hemmet: Lås upp – bekräftat ...".
function answerOf(w, e) {
  if (e.kind !== "command_result" || !e.body) return "";
  const what = w.ui[`action_${e.body.action}`] || e.body.action;
  const how = e.body.outcome === "done" ? w.ui.confirmed : (w.ui[e.body.outcome] || e.body.outcome);
  return `: ${what} – ${how}`;
}

function HomeDetail({ w, home, keys, me, outcomes, back, reload }) {
  const [d, setD] = useState(null);
  const [error, setError] = useState("");
  const load = () => api(`/api/homes/${encodeURIComponent(home)}`).then(setD, (e) => setError(e.message));
  // After a command: now, and once more when the device's signed result has come in as an event.
  const reloadAll = () => { load(); reload(); setTimeout(load, 1500); };
  useEffect(() => { load(); }, [home]);
  if (error) return html`<p class="error" role="alert">${w.ui.error}: ${error}</p>`;
  if (!d) return html`<p>…</p>`;
  const card = d.card;
  return html`<section id="home" data-home=${home}>
    <button data-action="back" onClick=${back}>${w.ui.back}</button>
    <h1>${home} · <span class=${d.presence}>${w.presence[d.presence] || d.presence}</span></h1>
    <h2>${w.ui.resident}</h2>
    ${card ? html`<dl class="card" data-field="card">
      <dt>${card.name}</dt><dd>${w.ui.address}: ${card.address}</dd>
      <dd>${w.ui.entry}: ${card.entry}</dd>
      ${Object.keys(card.care).length ? html`<dt>${w.ui.care}</dt>
        ${Object.entries(card.care).map(([kind, note]) => html`<dd><strong>${w.kinds[kind] || kind}:</strong> ${note}</dd>`)}` : ""}
      ${card.contacts.length ? html`<dt>${w.ui.contacts}</dt>
        ${card.contacts.map((c) => html`<dd>${c.name} (${c.relation}) <a href=${`tel:${c.phone.replace(/[^0-9+]/g, "")}`}>${c.phone}</a></dd>`)}` : ""}
      ${card.notes ? html`<dt>${w.ui.notes}</dt><dd>${card.notes}</dd>` : ""}
    </dl>` : html`<p>${w.ui.no_card}</p>`}
    <h2>${w.ui.locks}</h2>
    <${Locks} w=${w} home=${home} keys=${keys} locks=${d.locks} onDone=${reloadAll} />
    <h2>${w.ui.cases_here}</h2>
    ${d.cases.map((c) => html`<${CaseCard} key=${c.id} c=${c} w=${w} me=${me} keys=${keys} outcomes=${outcomes} onDone=${reloadAll} />`)}
    <h2>${w.ui.tonight}</h2>
    ${d.events.length ? html`<ul class="events" data-field="events">${[...d.events].reverse().map((e) => html`
      <li class=${e.class}>${localTime(e.received).slice(0, 5)} ${w.kinds[e.kind] || e.kind}${answerOf(w, e)}</li>`)}</ul>`
      : html`<p>${w.ui.no_events}</p>`}
  </section>`;
}

function Homes({ w, homes, keys, open }) {
  const { look, busy, lookAt, close } = useLookIn(w, keys);
  return html`<section id="homes">
    <${Picture} w=${w} look=${look} close=${close} />
    <table>
    <thead><tr><th>${w.ui.home}</th><th>${w.ui.presence}</th><th>${w.ui.last_heard}</th><th>${w.ui.open_case}</th>
      <th></th><th>${w.ui.backlog}</th><th>${w.ui.faults}</th><th>${w.ui.cert_days}</th></tr></thead>
    <tbody>${homes.map((h) => html`<tr data-home=${h.home}>
      <td><button class="link" data-action="open-home" onClick=${() => open(h.home)}>${h.home}</button></td>
      <td class=${h.presence}>${w.presence[h.presence] || h.presence}</td>
      <td>${localTime(h.last_heard)}</td><td>${h.open_case ? "●" : ""}</td>
      <td><button data-action="look-in" disabled=${busy === h.home} onClick=${() => lookAt(h.home)}>${w.ui.look_in}</button></td>
      <td>${h.backlog?.total ?? "–"}</td><td>${(h.faults || []).length || ""}</td><td>${h.cert_days_left ?? "–"}</td>
    </tr>`)}</tbody></table></section>`;
}

const OPEN_SLOTS = ["due", "not_seen", "retry_due"];

function Rounds({ w, keys, version, reload }) {
  const { look, busy, lookAt, close } = useLookIn(w, keys);
  const [error, setError] = useState("");
  const [rounds, setRounds] = useState([]);
  useEffect(() => { api("/api/rounds").then((r) => setRounds(r.slots), (e) => setError(e.message)); }, [version]);
  const verdict = async (slot, value) => {
    setError("");
    try {
      await api(`/api/rounds/${encodeURIComponent(slot.home)}/verdict`, { verdict: value, slot: slot.slot });
      close(); reload();
    } catch (e) { setError(`${w.ui.error}: ${e.message}`); }
  };
  return html`<section id="rounds">
    <${Picture} w=${w} look=${look} close=${close} />
    ${error ? html`<p class="error" role="alert">${error}</p>` : ""}
    ${rounds.length === 0 ? html`<p>${w.ui.no_rounds}</p>` : ""}
    <table><thead><tr><th>${w.ui.home}</th><th>${w.ui.slot}</th><th>${w.ui.presence}</th><th></th></tr></thead>
    <tbody>${rounds.map((r) => html`<tr data-slot=${`${r.home} ${r.slot}`} data-state=${r.state}>
      <td>${r.home}</td><td>${r.slot}</td>
      <td class=${r.state === "visit_needed" ? "offline" : ""}>${w.ui[`round_${r.state}`] || r.state}
        ${r.next_at && OPEN_SLOTS.includes(r.state) ? html` (${w.ui.by_time} ${localTime(r.next_at).slice(0, 5)})` : ""}</td>
      <td>${OPEN_SLOTS.includes(r.state) ? html`<div class="actions">
        <button data-action="look-in" disabled=${busy === r.home} onClick=${() => lookAt(r.home)}>${w.ui.look_in}</button>
        <button data-action="seen" onClick=${() => verdict(r, "seen")}>${w.ui.seen}</button>
        <button data-action="not-seen" onClick=${() => verdict(r, "not_seen")}>${w.ui.not_seen}</button>
      </div>` : ""}</td>
    </tr>`)}</tbody></table></section>`;
}

// The page's fingerprint: SHA-256 of the HTML as served, which pins every script and the style
// sheet by hash (Subresource Integrity). IT compares it with `trygg center web --fingerprint`.
async function pageFingerprint() {
  const page = await (await fetch("/", { cache: "no-store" })).arrayBuffer();
  const hex = [...new Uint8Array(await crypto.subtle.digest("SHA-256", page))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return hex.slice(0, 32).match(/.{4}/g).join(" ");
}

function SignIn({ w, keys, setKeys, onSignedIn, onSound }) {
  const [pageCode, setPageCode] = useState("");
  useEffect(() => { pageFingerprint().then(setPageCode, () => setPageCode("?")); }, []);
  const [name, setName] = useState(keys?.name || "");
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const [needCode, setNeedCode] = useState(false);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const create = async () => {
    setError("");
    try { setKeys(await makeKeys(name.trim())); } catch (e) { setError(`${w.ui.error}: ${e.message}`); }
  };
  const attempt = async (work) => {
    setError(""); setNotice("");
    if (!passkeysHere()) { setError(w.ui.passkey_unsupported); return; }
    setBusy(true);
    try { await work(); } catch (e) {
      setError(problem(w, e, keys.name));
      if (["no_passkey", "unknown_passkey", "other_address"].includes(e.code)) setNeedCode(true);
    }
    setBusy(false);
  };
  const signIn = () => attempt(async () => onSignedIn(await signInWithPasskey(keys)));
  const register = () => attempt(async () => {
    await registerPasskey(keys, code.trim());
    setCode(""); setNeedCode(false); setNotice(w.ui.passkey_saved);
  });
  return html`<section id="sign-in">
    ${keys ? html`
      <p>${w.ui.fingerprint}: <strong data-field="fingerprint">${keys.fingerprint}</strong></p>
      <p class="small">${w.ui.page_code}: <span data-field="page-code">${pageCode}</span></p>
      <details><summary>${w.ui.key_made}</summary><pre class="pub" data-field="public-key">${JSON.stringify(keys.pub, null, 1)}</pre></details>
      <p>${w.ui.passkey_intro}</p>
      <button class="primary" data-action="sign-in" disabled=${busy} onClick=${() => { onSound(); signIn(); }}>${w.ui.sign_in} (${keys.name})</button>
      ${notice ? html`<p class="verdict" data-field="notice" role="status">${notice}</p>` : ""}
      ${error ? html`<p class="error" role="alert">${error}</p>` : ""}
      ${needCode ? html`<div class="register" data-field="register">
        <label for="code">${w.ui.code_label}</label>
        <input id="code" data-field="passkey-code" autocomplete="one-time-code" autocapitalize="characters"
          value=${code} onInput=${(e) => setCode(e.target.value)} />
        <div class="actions"><button class="primary" data-action="register-passkey" disabled=${busy || !code.trim()}
          onClick=${register}>${w.ui.register_passkey}</button></div>
      </div>` : html`<button class="link" data-action="have-code" onClick=${() => setNeedCode(true)}>${w.ui.have_code}</button>`}` : html`
      <p>${w.ui.no_key}</p>
      <label for="name">${w.ui.your_name}</label>
      <input id="name" data-field="name" autocomplete="username" value=${name} onInput=${(e) => setName(e.target.value)} />
      <div class="actions"><button class="primary" data-action="make-key" onClick=${create}>${w.ui.make_key}</button></div>
      ${error ? html`<p class="error" role="alert">${error}</p>` : ""}`}
  </section>`;
}

function App() {
  const [lang, setLang] = useState(localStorage.getItem("lang") || "sv");
  const [w, setWords] = useState(null);
  const [keys, setKeys] = useState(undefined);
  const [me, setMe] = useState(null);
  const [tab, setTab] = useState("alarms");
  const [cases, setCases] = useState([]);
  const [homes, setHomes] = useState([]);
  const [version, setVersion] = useState(0);  // bumped on every change: the rounds screen reads again
  const [home, setHome] = useState(null);
  const [sound, setSound] = useState(false);  // a browser plays sound only after a touch on the page
  const [live, setLive] = useState(true);
  const pending = useRef(null);

  useEffect(() => { api(`/api/words?lang=${lang}`).then(setWords); document.documentElement.lang = lang; }, [lang]);
  useEffect(() => { loadKeys().then((k) => setKeys(k || null)); api("/api/me").then((m) => setMe(m.name), () => setMe(null)); }, []);

  const reload = async () => {
    try {
      const [c, h] = await Promise.all([api("/api/cases"), api("/api/homes")]);
      setCases(c); setHomes(h); setVersion((v) => v + 1);
      alert.set(c.some((x) => x.state === "open"));
    } catch (e) { if (e.status === 401) setMe(null); }
  };
  useEffect(() => {
    if (!me) return undefined;
    reload();
    const source = new EventSource("/api/live");
    source.onopen = () => setLive(true);
    source.onerror = () => { setLive(false); api("/api/me").catch((e) => e.status === 401 && setMe(null)); };
    source.onmessage = () => { clearTimeout(pending.current); pending.current = setTimeout(reload, 30); };
    return () => { source.close(); alert.set(false); };
  }, [me]);

  if (!w || keys === undefined) return html`<p>Trygg …</p>`;
  const other = lang === "sv" ? "en" : "sv";
  const switchLang = () => { localStorage.setItem("lang", other); setLang(other); };
  return html`<header>
      <strong>${w.ui.title}</strong>
      ${me ? html`<nav>
        <button aria-pressed=${tab === "alarms"} data-tab="alarms" onClick=${() => setTab("alarms")}>${w.ui.tab_alarms}</button>
        <button aria-pressed=${tab === "homes"} data-tab="homes" onClick=${() => setTab("homes")}>${w.ui.tab_homes}</button>
        <button aria-pressed=${tab === "rounds"} data-tab="rounds" onClick=${() => setTab("rounds")}>${w.ui.tab_rounds}</button>
        <a class="button" href="/report/morning" target="_blank" rel="noopener" data-action="morning-report">${w.ui.morning_report}</a>
      </nav>` : ""}
      <span>${me ? html`${w.ui.signed_in_as} <strong data-field="me">${me}</strong> ` : ""}
        <button data-action="lang" onClick=${switchLang}>${w.ui.lang_other}</button>
        ${me ? html` <button data-action="sign-out" onClick=${() => api("/api/sign-out", {}).then(() => setMe(null))}>${w.ui.sign_out}</button>` : ""}</span>
    </header>
    ${me && !live ? html`<p class="banner" role="alert">${w.ui.live_lost}</p>` : ""}
    ${me && !sound ? html`<button class="alarm wide" data-action="sound-on"
        onClick=${() => { alert.unlock(); setSound(true); }}>${w.ui.sound_on}</button>` : ""}
    ${!me ? html`<${SignIn} w=${w} keys=${keys} setKeys=${setKeys} onSignedIn=${setMe}
        onSound=${() => { alert.unlock(); setSound(true); }} />`
      : tab === "alarms" ? html`<${Alarms} w=${w} me=${me} keys=${keys} outcomes=${w.outcomes} cases=${cases} reload=${reload} />`
      : tab === "homes" && home ? html`<${HomeDetail} key=${`${home}-${cases.length}-${homes.length}`} w=${w} home=${home}
          keys=${keys} me=${me} outcomes=${w.outcomes} back=${() => setHome(null)} reload=${reload} />`
      : tab === "homes" ? html`<${Homes} w=${w} homes=${homes} keys=${keys} open=${setHome} />`
      : html`<${Rounds} w=${w} keys=${keys} version=${version} reload=${reload} />`}`;
}

render(html`<${App} />`, document.getElementById("app"));
