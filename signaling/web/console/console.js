// Clerk console of the remote virtual window (远程虚拟窗口工作台).
//
// It talks to the relay over one WebSocket (/ws/clerk): a snapshot of the centre's queue
// arrives first, then incremental updates with increasing versions; queue operations are
// requests that the relay answers by request id. All text from the relay is inserted with
// textContent, never as HTML.

import { el, fmtClock, fmtDuration } from "/assets/shared/common.js";
import * as media from "./media.js";
import * as devices from "./devices.js";
import * as appointments from "./appointments.js";

const $ = (id) => document.getElementById(id);

// Feature modules share the connection through these hooks (all optional):
//   init(api)                 once, with { request, send, app, el, message }
//   onWelcome(msg)            after each (re)connection
//   onMessage(msg)            every relay message the core does not consume itself
//   onCurrentTicket(ticket)   the ticket in hand at this window changed (or null)
const modules = [media, devices, appointments];
const hook = (name, arg) => {
  for (const m of modules) {
    try { m[name]?.(arg); } catch (e) { console.error(`${name} failed`, e); }
  }
};

const STATE_NAMES = {
  waiting: "等候中", called: "已叫号", serving: "办理中", parked: "已挂起",
  served: "已办结", no_show: "过号", cancelled: "已取消",
};
const MODE_NAMES = { on_site: "综合窗口（现场号）", remote: "远程虚拟窗口（远程号）", combined: "综合窗口兼远程" };
const PROTOCOL_VERSION = 1;
const REQUEST_TIMEOUT_MS = 10000;

const app = {
  clerk: null, centre: null, windows: new Map(), categories: new Map(),
  tickets: new Map(), version: 0, windowId: null, stats: null,
  ws: null, nextRequest: 1, pending: new Map(), reconnectDelay: 1000, clockOffset: 0,
  wantedWindow: sessionStorage.getItem("rvw.window"),
};

// ---------------------------------------------------------------------------------------------
// views

function show(view) {
  for (const v of ["login-view", "password-view", "window-view", "desk-view"]) $(v).hidden = v !== view;
}

function setLink(state) {
  const el = $("link-state");
  const names = { on: "已连接", wait: "连接中…", off: "未连接" };
  el.textContent = names[state];
  el.className = "pill pill-" + state;
}

function message(text, kind) {
  const el = $("op-message");
  el.textContent = text || "";
  el.className = "message" + (kind ? " " + kind : "");
}

const secondsToMs = (s) => (s == null ? null : s * 1000);

function serverNow() { return Date.now() + app.clockOffset; }

// ---------------------------------------------------------------------------------------------
// login

async function checkLogin() {
  const r = await fetch("/api/v1/me", { credentials: "same-origin" });
  if (r.ok) {
    app.clerk = await r.json();
    connect();
  } else {
    show("login-view");
    $("login-user").focus();
  }
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const body = JSON.stringify({ username: $("login-user").value, password: $("login-pass").value });
  let r;
  try {
    r = await fetch("/api/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body, credentials: "same-origin" });
  } catch {
    $("login-error").textContent = "无法连接服务器，请检查网络";
    return;
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("login-error").textContent = data.message || "登录失败";
    return;
  }
  $("login-pass").value = "";
  if (data.must_change_password) {
    // A password someone else set: this login may only change it.
    $("password-error").textContent = "";
    show("password-view");
    $("password-current").focus();
    return;
  }
  app.clerk = data.clerk;
  connect();
});

$("password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const fresh = $("password-new").value;
  if (fresh !== $("password-again").value) {
    $("password-error").textContent = "两次输入的新密码不一致";
    return;
  }
  const body = JSON.stringify({ current_password: $("password-current").value, new_password: fresh });
  let r;
  try {
    r = await fetch("/api/v1/password", { method: "POST", headers: { "content-type": "application/json" }, body, credentials: "same-origin" });
  } catch {
    $("password-error").textContent = "无法连接服务器，请检查网络";
    return;
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("password-error").textContent = data.message || "修改失败";
    return;
  }
  for (const id of ["password-current", "password-new", "password-again"]) $(id).value = "";
  $("login-error").textContent = "密码已修改，请用新密码登录";
  show("login-view");
  $("login-user").focus();
});

$("logout").addEventListener("click", async () => {
  await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  sessionStorage.removeItem("rvw.window");
  location.reload();
});

// ---------------------------------------------------------------------------------------------
// connection

function connect() {
  setLink("wait");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/clerk`);
  app.ws = ws;
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "hello", protocol_versions: [PROTOCOL_VERSION] })));
  ws.addEventListener("message", (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onMessage(msg);
  });
  ws.addEventListener("close", (ev) => {
    setLink("off");
    for (const [, p] of app.pending) p.reject(new Error("连接已断开"));
    app.pending.clear();
    if (ev.code === 4001) {
      // The relay ended this login (logout elsewhere, password change, account disabled,
      // timeout): say so and ask for a new login instead of reconnecting.
      app.centre = null;
      $("login-error").textContent = ev.reason || "登录已结束，请重新登录";
      show("login-view");
      return;
    }
    if (ev.code === 1008 && !app.centre) {
      // Refused before welcome: the login is no longer valid.
      show("login-view");
      return;
    }
    setTimeout(connect, app.reconnectDelay);
    app.reconnectDelay = Math.min(app.reconnectDelay * 2, 15000);
  });
}

function request(payload) {
  return new Promise((resolve, reject) => {
    if (!app.ws || app.ws.readyState !== WebSocket.OPEN) {
      reject(new Error("未连接到服务器，正在重连"));
      return;
    }
    const request_id = app.nextRequest++;
    const timer = setTimeout(() => {
      app.pending.delete(request_id);
      reject(new Error("服务器未响应，请重试"));
    }, REQUEST_TIMEOUT_MS);
    app.pending.set(request_id, {
      resolve: (m) => { clearTimeout(timer); resolve(m); },
      reject: (e) => { clearTimeout(timer); reject(e); },
    });
    app.ws.send(JSON.stringify({ ...payload, request_id }));
  });
}

function onMessage(msg) {
  if (msg.request_id != null && app.pending.has(msg.request_id)) {
    const p = app.pending.get(msg.request_id);
    app.pending.delete(msg.request_id);
    if (msg.type === "error") p.reject(new Error(msg.message));
    else p.resolve(msg);
    if (msg.type !== "snapshot") return;
  }
  switch (msg.type) {
    case "welcome":
      app.reconnectDelay = 1000;
      app.centre = msg.centre;
      app.clerk = msg.clerk;
      app.clockOffset = msg.server_time_ms - Date.now();
      app.categories = new Map(msg.categories.map((c) => [c.id, c]));
      setWindows(msg.windows);
      $("centre-name").textContent = msg.centre.name;
      $("clerk-name").textContent = msg.clerk.display_name;
      $("logout").hidden = false;
      setLink("on");
      hook("onWelcome", msg);
      afterWelcome();
      break;
    case "snapshot":
      app.version = msg.version;
      app.tickets = new Map(msg.tickets.map((t) => [t.id, t]));
      setWindows(msg.windows);
      app.stats = msg.stats;
      render();
      break;
    case "update":
      if (msg.version !== app.version + 1) {
        request({ type: "snapshot" }).catch(() => {});
        return;
      }
      app.version = msg.version;
      for (const t of msg.tickets) {
        if (["served", "no_show", "cancelled"].includes(t.state)) app.tickets.delete(t.id);
        else app.tickets.set(t.id, t);
      }
      if (msg.windows.length) setWindows(msg.windows);
      app.stats = msg.stats;
      render();
      break;
    case "error":
      message(msg.message, "bad");
      break;
    default:
      hook("onMessage", msg);
  }
}

function setWindows(list) {
  app.windows = new Map(list.map((w) => [w.id, w]));
  const mine = list.find((w) => w.clerk_id === app.clerk?.id);
  app.windowId = mine ? mine.id : null;
}

async function afterWelcome() {
  if (app.windowId) { show("desk-view"); render(); return; }
  if (app.wantedWindow && app.windows.has(app.wantedWindow)) {
    try { await openWindow(app.wantedWindow); return; } catch { /* choose again */ }
  }
  renderWindowChoice();
}

// ---------------------------------------------------------------------------------------------
// windows

function renderWindowChoice() {
  show("window-view");
  const list = $("window-list");
  list.replaceChildren();
  for (const w of app.windows.values()) {
    const taken = w.clerk_id && w.clerk_id !== app.clerk.id && w.clerk_connected;
    const label = taken ? `使用中：${w.clerk_name}` : MODE_NAMES[w.mode];
    const b = el("button", { type: "button", role: "listitem", onclick: () => openWindow(w.id).catch((e) => { $("window-error").textContent = e.message; }) },
      el("strong", { text: w.name }), el("span", { class: "mode", text: label }));
    if (taken) b.disabled = true;
    list.append(b);
  }
  list.querySelector("button:not(:disabled)")?.focus();
}

async function openWindow(id) {
  const r = await request({ type: "open_window", window_id: id });
  app.windows.set(r.window.id, r.window);
  app.windowId = r.window.id;
  sessionStorage.setItem("rvw.window", id);
  show("desk-view");
  render();
  $("btn-next").focus();
}

$("leave-window").addEventListener("click", async () => {
  try {
    await request({ type: "close_window" });
    sessionStorage.removeItem("rvw.window");
    app.windowId = null;
    renderWindowChoice();
  } catch (e) { message(e.message, "bad"); }
});

// ---------------------------------------------------------------------------------------------
// queue operations

async function op(payload, done) {
  message("");
  try {
    const r = await request({ type: "queue", op: payload });
    if (r.ticket) {
      if (["served", "no_show", "cancelled"].includes(r.ticket.state)) app.tickets.delete(r.ticket.id);
      else app.tickets.set(r.ticket.id, r.ticket);
    }
    render();
    if (done) message(done(r.ticket), "ok");
  } catch (e) {
    message(e.message, "bad");
  }
}

function current() {
  const w = app.windows.get(app.windowId);
  return w && w.current_ticket_id ? app.tickets.get(w.current_ticket_id) : null;
}

const withCurrent = (f) => () => { const t = current(); if (t) f(t); };

$("btn-next").addEventListener("click", () => op({ op: "call_next" }, (t) => `已叫号 ${t.number}`));
$("btn-recall").addEventListener("click", withCurrent((t) => op({ op: "recall", ticket_id: t.id }, (r) => r.state === "no_show" ? `${r.number} 多次重呼未到，已按过号处理` : `已重呼 ${r.number}（第 ${r.recalls} 次）`)));
$("btn-start").addEventListener("click", withCurrent((t) => op({ op: "start", ticket_id: t.id }, (r) => `开始办理 ${r.number}`)));
$("btn-finish").addEventListener("click", withCurrent((t) => op({ op: "finish", ticket_id: t.id }, (r) => `${r.number} 已办结`)));
$("btn-noshow").addEventListener("click", withCurrent((t) => op({ op: "no_show", ticket_id: t.id }, (r) => `${r.number} 已过号`)));
$("btn-park").addEventListener("click", withCurrent((t) => op({ op: "park", ticket_id: t.id }, (r) => `${r.number} 已挂起`)));
$("btn-transfer").addEventListener("click", withCurrent(() => {
  const cat = $("transfer-category");
  cat.replaceChildren(el("option", { value: "", text: "（不变）" }));
  for (const c of app.categories.values()) cat.append(el("option", { value: c.id, text: c.name }));
  const win = $("transfer-window");
  win.replaceChildren(el("option", { value: "", text: "（任意窗口）" }));
  for (const w of app.windows.values()) if (w.id !== app.windowId) win.append(el("option", { value: w.id, text: w.name }));
  $("transfer-form").hidden = false;
  cat.focus();
}));
$("transfer-cancel").addEventListener("click", () => { $("transfer-form").hidden = true; });
$("transfer-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = current();
  if (!t) return;
  const category_id = $("transfer-category").value || null;
  const window_id = $("transfer-window").value || null;
  if (!category_id && !window_id) { message("请选择要转到的事项或窗口", "bad"); return; }
  $("transfer-form").hidden = true;
  op({ op: "transfer", ticket_id: t.id, category_id, window_id }, (r) => `${r.number} 已转移`);
});

// 暂停服务: the window calls nothing; residents waiting for it see the pause sign.
const PAUSE_NAMES = { away: "暂离", meeting: "会议", training: "培训" };
$("pause-window").addEventListener("click", () => { $("pause-form").hidden = false; $("pause-reason").focus(); });
$("pause-cancel").addEventListener("click", () => { $("pause-form").hidden = true; });
$("pause-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  $("pause-form").hidden = true;
  const reason = $("pause-reason").value;
  op({ op: "pause_window", reason, minutes: Number($("pause-minutes").value) }, () => `窗口已暂停服务（${PAUSE_NAMES[reason]}）`);
});
$("resume-window").addEventListener("click", () => op({ op: "resume_window" }, () => "窗口已恢复服务"));

function renderPause(w) {
  const p = w && w.pause;
  $("pause-banner").hidden = !p;
  $("pause-window").hidden = !!p;
  if (p) $("pause-text").textContent = `暂停服务中（${PAUSE_NAMES[p.reason] ?? p.reason}），预计 ${fmtClock(p.until_ms).slice(0, 5)} 恢复`;
  $("btn-next").disabled = $("btn-next").disabled || !!p;
}

$("only-mine").addEventListener("change", () => render());

// ---------------------------------------------------------------------------------------------
// rendering

function mayTake(w, t) {
  if (!w) return false;
  const modeOk = w.mode === "combined" || (w.mode === "remote") === (t.channel === "remote");
  if (!modeOk) return false;
  return t.target_window_id ? t.target_window_id === w.id : w.category_ids.includes(t.category_id);
}

function channelTag(t) {
  return el("span", { class: "tag " + (t.channel === "remote" ? "remote" : "onsite"), text: t.channel === "remote" ? "远程" : "现场" });
}

function render() {
  if (!app.windowId) return;
  const w = app.windows.get(app.windowId);
  $("window-name").textContent = w ? `${w.name} · ${MODE_NAMES[w.mode]}` : "";
  renderCurrent();
  renderPause(w);
  renderQueue(w);
  renderParked();
  renderStats();
}

let lastCurrent = undefined;

function renderCurrent() {
  const t = current();
  const key = t ? `${t.id}:${t.state}` : null;
  if (key !== lastCurrent) {
    lastCurrent = key;
    hook("onCurrentTicket", t ?? null);
  }
  $("current-empty").hidden = !!t;
  $("current-ticket").hidden = !t;
  $("btn-next").disabled = !!t;
  for (const id of ["btn-recall", "btn-noshow"]) $(id).disabled = !t || t.state !== "called";
  $("btn-start").disabled = !t || t.state !== "called";
  $("btn-finish").disabled = !t || t.state !== "serving";
  $("btn-park").disabled = !t;
  $("btn-transfer").disabled = !t;
  if (!t) { $("transfer-form").hidden = true; return; }
  $("cur-number").textContent = t.number;
  $("cur-channel").replaceChildren(channelTag(t));
  $("cur-category").textContent = app.categories.get(t.category_id)?.name ?? t.category_id;
  $("cur-state").textContent = STATE_NAMES[t.state] ?? t.state;
  $("cur-recalls").textContent = String(t.recalls);
  $("cur-wait").textContent = fmtDuration((t.called_ms ?? serverNow()) - t.created_ms);
}

function renderQueue(w) {
  const onlyMine = $("only-mine").checked;
  const waiting = [...app.tickets.values()].filter((t) => t.state === "waiting");
  const remote = waiting.filter((t) => t.channel === "remote").length;
  $("queue-counts").textContent = `等候 ${waiting.length} 人（现场 ${waiting.length - remote}，远程 ${remote}）`;
  const rows = [...app.tickets.values()]
    .filter((t) => !onlyMine || t.state !== "waiting" || mayTake(w, t))
    .sort((a, b) => (a.state === "waiting") - (b.state === "waiting") || a.created_ms - b.created_ms);
  const body = $("queue-body");
  body.replaceChildren();
  const inHand = !!current();
  for (const t of rows) {
    const waited = (t.called_ms ?? serverNow()) - t.created_ms;
    const num = el("td", { class: "num", text: t.number });
    if (t.appointment) num.append(el("span", { class: "tag appt", text: "预约" }));
    const actions = el("td");
    if (t.state === "waiting") {
      const call = el("button", { type: "button", text: "叫号", onclick: () => op({ op: "call", ticket_id: t.id }, (r) => `已叫号 ${r.number}`) });
      call.disabled = inHand || !mayTake(w, t);
      const cancel = el("button", { type: "button", class: "quiet", text: "取消", onclick: () => { if (confirm(`确认取消 ${t.number}？`)) op({ op: "cancel", ticket_id: t.id }, (r) => `${r.number} 已取消`); } });
      actions.append(call, cancel);
    }
    const winName = t.window_id ? app.windows.get(t.window_id)?.name ?? "" : t.target_window_id ? `→ ${app.windows.get(t.target_window_id)?.name ?? ""}` : "";
    body.append(el("tr", { "data-ticket": t.id, "data-number": t.number },
      num, el("td", {}, channelTag(t)),
      el("td", { text: app.categories.get(t.category_id)?.name ?? t.category_id }),
      el("td", { text: STATE_NAMES[t.state] ?? t.state }),
      el("td", { text: fmtDuration(waited) }),
      el("td", { text: winName }),
      actions));
  }
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "hint", text: "当前没有等候的号" })));
}

function renderParked() {
  const list = $("parked-list");
  list.replaceChildren();
  const parked = [...app.tickets.values()].filter((t) => t.state === "parked" && t.window_id === app.windowId);
  for (const t of parked) {
    list.append(el("li", {},
      el("span", { class: "num", text: t.number }), channelTag(t),
      el("button", { type: "button", text: "恢复办理", onclick: () => op({ op: "resume", ticket_id: t.id }, (r) => `已恢复 ${r.number}`) }),
      el("button", { type: "button", class: "quiet", text: "回到队列", onclick: () => op({ op: "return_to_queue", ticket_id: t.id }, (r) => `${r.number} 已回到队列`) })));
  }
  if (!parked.length) list.append(el("li", { class: "hint", text: "无" }));
}

function renderStats() {
  const body = $("stats-body");
  body.replaceChildren();
  for (const s of app.stats?.windows ?? []) {
    body.append(el("tr", {}, el("td", { text: s.name }), el("td", { text: String(s.served) }),
      el("td", { text: fmtDuration(secondsToMs(s.avg_wait_seconds)) }), el("td", { text: fmtDuration(secondsToMs(s.avg_service_seconds)) })));
  }
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: "4", class: "hint", text: "今日尚无办结" })));
}

// Waiting times move on their own.
setInterval(() => { if (app.windowId) { renderQueue(app.windows.get(app.windowId)); renderCurrent(); } }, 5000);

hook("init", { request, send: (m) => app.ws?.readyState === WebSocket.OPEN && app.ws.send(JSON.stringify(m)), app, el, message });
checkLogin();
