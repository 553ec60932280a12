// The supervisors' page (值班长). A small core — login, the supervisor role, tabs — and one
// module per section. To add a section, import its module and add it to SECTIONS; a module
// exports { id, title, init(api), show() } and gets api = { get, send, el, fmtTime, panel }.
// Everything from the relay is inserted as text (textContent), never as HTML.

import * as stats from "./stats.js";
import * as followups from "./followups.js";
import * as deadletters from "./deadletters.js";

const SECTIONS = [stats, followups, deadletters];

const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function request(method, path, body) {
  const r = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await r.json(); } catch (_) { /* empty body */ }
  if (!r.ok) {
    const e = new Error((data && data.message) || `HTTP ${r.status}`);
    e.status = r.status;
    throw e;
  }
  return data;
}

/** Shanghai wall-clock time of a Unix ms instant, "2026-11-23 10:05". */
export function fmtTime(ms) {
  if (ms == null) return "—";
  const d = new Date(ms + 8 * 3600 * 1000);
  return d.toISOString().slice(0, 16).replace("T", " ");
}

const api = {
  get: (path) => request("GET", path),
  send: (method, path, body) => request(method, path, body),
  el,
  fmtTime,
};

function show(view) {
  for (const v of ["login-view", "denied-view", "app-view"]) $(v).hidden = v !== view;
}

function select(id) {
  for (const s of SECTIONS) {
    const tab = $(`tab-${s.id}`);
    tab.setAttribute("aria-selected", String(s.id === id));
    $(`section-${s.id}`).hidden = s.id !== id;
  }
  const s = SECTIONS.find((x) => x.id === id);
  if (s) s.show();
  location.hash = id;
}

function start(me) {
  $("who").textContent = me.display_name;
  if (!me.roles.includes("supervisor")) { show("denied-view"); return; }
  show("app-view");
  const tabs = $("section-tabs");
  const box = $("sections");
  for (const s of SECTIONS) {
    tabs.append(el("button", { id: `tab-${s.id}`, type: "button", role: "tab", text: s.title, onclick: () => select(s.id) }));
    const panel = el("section", { id: `section-${s.id}`, class: "card", hidden: "" });
    box.append(panel);
    s.init({ ...api, panel });
  }
  const wanted = location.hash.slice(1);
  select(SECTIONS.some((s) => s.id === wanted) ? wanted : SECTIONS[0].id);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await request("POST", "/api/v1/login", { username: $("login-user").value, password: $("login-pass").value });
    start(r.clerk);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

request("GET", "/api/v1/me").then(start).catch(() => show("login-view"));
