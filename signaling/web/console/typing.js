// Typing to the resident (写给办事人): a short message (at most 200 characters — a word the
// resident did not catch, an address, a document's title) shown large on the kiosk screen
// until the next one or until the resident puts it away. The relay keeps each one in the
// ticket's case; the console lists what it sent for the ticket in hand.
//
// {type:"type_to_resident", ticket_id, text} → {type:"typed_message_sent", message} or an
// error with a reason (not serving, too long, too fast, kiosk offline) shown as it comes.

import { fmtClock } from "/assets/shared/common.js";

const MAX_CHARS = 200;

let api = null;
let ticket = null;
let ui = null;
let sending = false;

export function init(a) {
  api = a;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("./typing.css", import.meta.url).href;
  document.head.append(link);
  build();
}

export function onCurrentTicket(t) {
  const show = t && t.channel === "remote" && ["called", "serving"].includes(t.state);
  const changed = (show ? t.id : null) !== (ticket ? ticket.id : null);
  ticket = show ? t : null;
  ui.panel.hidden = !show;
  if (!changed) return;
  ui.sent.replaceChildren();
  ui.text.value = "";
  status("");
  count();
}

// Characters as the relay counts them (code points, so 中文 counts one per character).
const chars = (s) => [...s.trim()].length;

function count() {
  const n = chars(ui.text.value);
  ui.count.textContent = `${n} / ${MAX_CHARS}`;
  ui.count.classList.toggle("over", n > MAX_CHARS);
  ui.send.disabled = sending || n === 0 || n > MAX_CHARS || !ticket;
}

function status(text, kind) {
  ui.status.textContent = text;
  ui.status.className = "typing-status" + (kind ? " " + kind : "");
}

async function send() {
  const text = ui.text.value.trim();
  if (!ticket || sending || !text) return;
  if (chars(text) > MAX_CHARS) { status(`消息太长，最多 ${MAX_CHARS} 个字`, "bad"); return; }
  sending = true;
  count();
  status("正在发送…");
  try {
    const r = await api.request({ type: "type_to_resident", ticket_id: ticket.id, text });
    const m = r.message;
    ui.sent.prepend(api.el("li", {},
      api.el("span", { class: "typing-time", text: fmtClock(m.sent_ms) }),
      api.el("span", { class: "typing-text", text: m.text })));
    while (ui.sent.children.length > 10) ui.sent.lastChild.remove();
    ui.text.value = "";
    status("已显示在办事人的屏幕上。", "ok");
  } catch (e) {
    status(`没有发出：${e.message}`, "bad");
  } finally {
    sending = false;
    count();
  }
}

function build() {
  const el = api.el;
  ui = {};
  ui.text = el("textarea", {
    id: "typing-text", rows: "2", "aria-label": "写给办事人的话",
    placeholder: "例如：没听清的字、地址、材料名称（最多 200 字，回车发送，Shift+回车换行）",
  });
  ui.text.addEventListener("input", count);
  ui.text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  ui.count = el("span", { id: "typing-count", class: "typing-count", "aria-live": "polite" });
  ui.send = el("button", { type: "button", id: "typing-send", class: "primary", onclick: send }, "发送到屏幕");
  ui.status = el("p", { id: "typing-status", class: "typing-status", role: "status", "aria-live": "polite" });
  ui.sent = el("ol", { id: "typing-sent", class: "typing-sent plain", "aria-label": "已发送的消息" });
  ui.panel = el("section", { id: "typing-panel", class: "typing-panel", "aria-labelledby": "typing-title" },
    el("h3", { id: "typing-title", text: "写给办事人（显示在终端屏幕上）" }),
    el("div", { class: "typing-row" }, ui.text, el("div", { class: "typing-tools" }, ui.send, ui.count)),
    ui.status, ui.sent);
  ui.panel.hidden = true;
  const area = document.getElementById("device-area");
  area.parentNode.insertBefore(ui.panel, area);
  count();
}
