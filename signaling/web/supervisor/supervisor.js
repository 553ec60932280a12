// The supervisors' page (值班长). A small core — login, the supervisor role, tabs — and one
// module per section. To add a section, import its module and add it to SECTIONS; a module
// exports { id, title, init(api), show() } and gets api = { get, send, el, fmtTime, panel }.
// Everything from the relay is inserted as text (textContent), never as HTML.

import { el, fetchJson, fmtTime } from "/assets/shared/common.js";
import * as stats from "./stats.js";
import * as followups from "./followups.js";
import * as deadletters from "./deadletters.js";

const SECTIONS = [stats, followups, deadletters];

const $ = (id) => document.getElementById(id);

const api = {
  get: (path) => fetchJson(path),
  send: (method, path, body) => fetchJson(path, { method, body }),
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
    const r = await fetchJson("/api/v1/login", { body: { username: $("login-user").value, password: $("login-pass").value } });
    if (r.second_factor_required || r.must_enroll_second_factor || r.must_change_password) {
      // Two-step verification and password changes are done on the console's login page,
      // which comes back here afterwards.
      location.href = "/?next=/supervisor";
      return;
    }
    start(r.clerk);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

fetchJson("/api/v1/me").then(start).catch(() => show("login-view"));
