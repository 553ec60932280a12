// Operating the served kiosk's devices: ID card reader (读身份证), document camera (高拍仪拍照),
// QR scanner (扫码), kiosk prompts, and the identity snapshot (拍摄办事人照片).
//
// Commands go to the relay as {type:"device_command", ticket_id, command}; the kiosk's
// acknowledge, events and completion come back as {type:"device", ticket_id, message}. Cards
// arrive masked; the full card is fetched only by the audited reveal. Images are fetched from
// the case (decrypted by the relay) and shown through blob URLs. Everything from the relay is
// inserted as text; styling is by classes only (strict CSP).

import { fetchJson, fmtClock } from "/assets/shared/common.js";

const DEVICE_BASE = 1_000_000_000; // device request ids never meet the core's request ids
const TIMEOUTS = { read: 60000, capture: 60000, scan: 60000, prompt: 120000, snapshot: 30000, status: 10000 };
const ZOOMS = ["z1", "z2", "z3", "z4"];

let api = null;
let ticket = null;
let nextId = DEVICE_BASE;
const pending = new Map(); // request id -> {kind, label}
let ui = null;
let identity = null; // identity method of the current case, or null
let bypassFinish = false;
let viewer = { rot: 0, zoom: 0, url: null };

const EVENTS = {
  "IdCard.InsertCardEvent": "等待放卡…",
  "IdCard.MediaDetectedEvent": "正在读取…",
  "IdCard.RemoveCardEvent": "请办事人先取走上一张证件",
  "DocumentCamera.PlaceDocumentEvent": "请办事人将材料放在高拍仪下…",
  "Common.CapturedEvent": "已拍照，正在上传…",
  "Screen.PromptShownEvent": "提示已显示在终端上，等待办事人回答…",
};
const ANSWERS = { acknowledged: "办事人已确认知晓", confirmed: "办事人选择：确认", cancelled: "办事人选择：取消" };
const IDENTITY = { id_card: "已核验（身份证）", code_scan: "已核验（扫码）", snapshot: "已留存办事人照片" };
const DEVICE_NAMES = { id_card_reader: "身份证阅读器", document_camera: "高拍仪", qr_scanner: "扫码器", camera: "摄像头", screen: "终端屏幕" };
const STATUS_NAMES = { online: "正常", offline: "离线", no_device: "未连接", hardware_error: "故障", device_busy: "忙", power_off: "关机", user_error: "操作错误", starting: "启动中" };

export function init(a) {
  api = a;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("./devices.css", import.meta.url).href;
  document.head.append(link);
  build();
  // The identity rule: finishing a remote ticket without a card read or a code scan asks for
  // a snapshot of the resident first.
  document.addEventListener("click", (e) => {
    if (!e.target.closest?.("#btn-finish") || bypassFinish) return;
    if (ticket && ticket.channel === "remote" && !identity) {
      e.preventDefault();
      e.stopImmediatePropagation();
      ui.dialog.hidden = false;
      ui.dialogSnap.focus();
    }
  }, true);
}

export function onWelcome(_msg) {
  for (const id of pending.keys()) pending.delete(id);
}

export function onCurrentTicket(t) {
  const show = t && t.channel === "remote" && ["called", "serving"].includes(t.state);
  const changed = (show ? t.id : null) !== (ticket ? ticket.id : null);
  ticket = show ? t : null;
  ui.panel.hidden = !show;
  if (!changed) return;
  identity = null;
  clearResults();
  ui.dialog.hidden = true;
  if (show) {
    status("设备就绪。");
    command("document_camera", "Common.Status", {}, TIMEOUTS.status, "status", "");
    refreshCase();
  }
}

export function onMessage(msg) {
  if (msg.type === "error" && pending.has(msg.request_id)) {
    pending.delete(msg.request_id);
    status(msg.message, "bad");
    return;
  }
  if (msg.type !== "device" || !ticket || msg.ticket_id !== ticket.id) return;
  const m = msg.message;
  if (m.type === "unsolicited") {
    const p = m.payload || {};
    ui.health.textContent = `${DEVICE_NAMES[p.device] || p.device}：${STATUS_NAMES[p.status] || p.status}`;
    return;
  }
  const job = pending.get(m.request_id);
  if (!job) return;
  if (m.type === "acknowledge") {
    if (m.status !== "accepted") { pending.delete(m.request_id); status("终端拒绝了该操作", "bad"); }
    return;
  }
  if (m.type === "event") {
    if (EVENTS[m.name]) status(`${job.label}${EVENTS[m.name]}`);
    return;
  }
  if (m.type !== "completion") return;
  pending.delete(m.request_id);
  busy(job.kind, false);
  if (m.completion_code !== "success") {
    if (job.kind === "status") return;
    const why = m.error_description?.zh || { canceled: "已取消", timeout: "超时", device_busy: "设备正忙" }[m.completion_code] || m.completion_code;
    status(`${job.label}失败：${why}`, "bad");
    return;
  }
  complete(job, m);
}

// ---------------------------------------------------------------------------------------------

function complete(job, m) {
  const p = m.payload;
  switch (job.kind) {
    case "status":
      fillResolutions(p?.resolutions || []);
      break;
    case "read":
      showCard(p?.view);
      status("身份证已读取（已脱敏显示）。", "ok");
      refreshCase();
      break;
    case "capture":
    case "snapshot":
      status(job.kind === "capture" ? `已拍照：${p.width}×${p.height}，${Math.round(p.bytes / 1024)} KB` : "办事人照片已留存。", "ok");
      refreshCase(p.upload_id);
      if (job.kind === "snapshot") ui.dialog.hidden = true;
      break;
    case "scan":
      addScan(p);
      status("已收到扫码结果。", "ok");
      refreshCase();
      if (ui.scanLive.checked && ticket) scan();
      break;
    case "prompt":
      status(ANSWERS[p?.answer] || "办事人已回答", "ok");
      break;
  }
}

function command(device, name, payload, timeout_ms, kind, label) {
  if (!ticket) return;
  const request_id = nextId++;
  pending.set(request_id, { kind, label });
  busy(kind, true);
  try {
    api.send({ type: "device_command", ticket_id: ticket.id, command: { request_id, device, timeout_ms, name, payload } });
  } catch (e) {
    pending.delete(request_id);
    busy(kind, false);
    status(e.message || "未连接到服务器", "bad");
  }
}

function cancelAll() {
  if (!ticket) return;
  const ids = [...pending.keys()];
  if (!ids.length) return;
  api.send({ type: "device_cancel", ticket_id: ticket.id, cancel: { request_ids: ids } });
  status("正在取消…");
}

function readCard() { status("等待放卡…"); command("id_card_reader", "IdCard.Read", {}, TIMEOUTS.read, "read", "读身份证："); }
function capture() {
  const [w, h] = (ui.resolution.value || "").split("x").map(Number);
  const payload = { colour: ui.colour.value };
  if (w && h) payload.resolution = { width: w, height: h };
  status("请办事人将材料放在高拍仪下…");
  command("document_camera", "DocumentCamera.Capture", payload, TIMEOUTS.capture, "capture", "高拍仪拍照：");
}
function scan() { status("等待办事人扫码…"); command("qr_scanner", "Scanner.Read", {}, TIMEOUTS.scan, "scan", "扫码："); }
function snapshot() { status("正在拍摄办事人照片…"); command("camera", "Camera.Snapshot", {}, TIMEOUTS.snapshot, "snapshot", "拍摄办事人照片："); }
function prompt(kind) {
  const text = ui.promptText.value.trim();
  if (!text) { status("请先输入提示内容", "bad"); ui.promptText.focus(); return; }
  command("screen", "Screen.Prompt", { kind, text }, TIMEOUTS.prompt, "prompt", kind === "confirm" ? "确认提问：" : "发送提示：");
  status(kind === "confirm" ? "已发送确认提问，等待办事人回答…" : "已发送提示…");
}

// ---------------------------------------------------------------------------------------------
// results

function showCard(view) {
  ui.card.replaceChildren();
  if (!view) return;
  ui.card.append(api.el("h4", { text: view.card_type + (view.masked ? "（脱敏）" : "（完整信息，已记录查看）") }));
  const dl = api.el("dl", { class: "dev-card-lines" });
  for (const line of view.lines) dl.append(api.el("dt", { text: line.label }), api.el("dd", { text: line.value }));
  ui.card.append(dl);
  if (view.masked && view.case_item_id) {
    const b = api.el("button", { type: "button", class: "quiet", text: "显示完整信息", onclick: () => reveal(view.case_item_id) });
    ui.card.append(b);
  }
}

async function reveal(itemId) {
  if (!ticket) return;
  try {
    const view = await fetchJson(`/api/v1/cases/${encodeURIComponent(ticket.id)}/items/${encodeURIComponent(itemId)}/reveal`, { method: "POST" });
    showCard(view);
  } catch (e) { status(e.message, "bad"); }
}

function addScan(p) {
  const text = p?.text ?? "";
  ui.scans.prepend(api.el("li", { text: `${fmtClock(Date.now())}  ${text}` }));
}

async function refreshCase(showItem) {
  if (!ticket) return;
  const id = ticket.id;
  let c;
  try { c = await fetchJson(`/api/v1/cases/${encodeURIComponent(id)}`); } catch { return; }
  if (!ticket || ticket.id !== id) return;
  identity = c.identity_method;
  ui.identity.textContent = identity ? `身份核验：${IDENTITY[identity] || identity}` : "身份核验：尚未核验（读身份证、扫码或拍摄办事人照片）";
  ui.identity.className = "dev-identity " + (identity ? "ok" : "warn");
  const pages = c.items.filter((i) => i.kind === "document" || i.kind === "snapshot");
  ui.pages.replaceChildren();
  let n = 0;
  for (const item of pages) {
    const label = item.kind === "document" ? `第 ${++n} 页（${item.width}×${item.height}）` : "办事人照片";
    ui.pages.append(api.el("li", {}, api.el("button", { type: "button", class: "quiet", "data-item": item.id, text: label, onclick: () => showImage(item.id) })));
  }
  ui.pdf.disabled = n === 0;
  if (showItem) showImage(showItem);
}

async function showImage(itemId) {
  if (!ticket) return;
  try {
    const r = await fetch(`/api/v1/cases/${encodeURIComponent(ticket.id)}/items/${encodeURIComponent(itemId)}`, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`图片读取失败（${r.status}）`);
    const blob = await r.blob();
    if (viewer.url) URL.revokeObjectURL(viewer.url);
    viewer.url = URL.createObjectURL(blob);
    viewer.rot = 0; viewer.zoom = 0;
    ui.image.src = viewer.url;
    ui.image.dataset.item = itemId;
    ui.viewer.hidden = false;
    applyView();
  } catch (e) { status(e.message, "bad"); }
}

function applyView() {
  ui.image.className = `dev-image rot${viewer.rot} ${ZOOMS[viewer.zoom]}`;
}

async function exportPdf() {
  if (!ticket) return;
  try {
    const r = await fetch(`/api/v1/cases/${encodeURIComponent(ticket.id)}/pdf`, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`导出失败（${r.status}）`);
    const url = URL.createObjectURL(await r.blob());
    const a = api.el("a", { href: url, download: `材料-${ticket.number}.pdf`, class: "sr" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status("已导出 PDF。", "ok");
  } catch (e) { status(e.message, "bad"); }
}

async function finishUnverified() {
  if (!ticket) return;
  try {
    await fetch(`/api/v1/cases/${encodeURIComponent(ticket.id)}/unverified`, { method: "POST", credentials: "same-origin" });
  } catch { /* the finish itself still proceeds */ }
  ui.dialog.hidden = true;
  bypassFinish = true;
  try { document.getElementById("btn-finish").click(); } finally { bypassFinish = false; }
}

function fillResolutions(list) {
  ui.resolution.replaceChildren();
  for (const r of list) ui.resolution.append(api.el("option", { value: `${r.width}x${r.height}`, text: `${r.width}×${r.height}` }));
  if (!list.length) ui.resolution.append(api.el("option", { value: "", text: "默认" }));
}

function clearResults() {
  ui.card.replaceChildren();
  ui.scans.replaceChildren();
  ui.pages.replaceChildren();
  ui.viewer.hidden = true;
  ui.pdf.disabled = true;
  ui.identity.textContent = "";
  if (viewer.url) { URL.revokeObjectURL(viewer.url); viewer.url = null; }
  ui.image.removeAttribute("src");
}

function status(text, kind) {
  ui.status.textContent = text || "";
  ui.status.className = "dev-status" + (kind ? " " + kind : "");
}

function busy(kind, on) {
  const button = { read: ui.read, capture: ui.capture, scan: ui.scan, snapshot: ui.snap }[kind];
  if (button) button.disabled = on;
}

// ---------------------------------------------------------------------------------------------

function build() {
  const el = api.el;
  const b = (id, text, onclick, extra = {}) => el("button", { type: "button", id, onclick, ...extra }, text);
  ui = {};
  ui.read = b("dev-read", "读身份证", readCard, { accesskey: "i", class: "primary" });
  ui.capture = b("dev-capture", "高拍仪拍照", capture, { accesskey: "g" });
  ui.colour = el("select", { id: "dev-colour", "aria-label": "色彩" }, el("option", { value: "colour", text: "彩色" }), el("option", { value: "grey", text: "灰度" }));
  ui.resolution = el("select", { id: "dev-resolution", "aria-label": "分辨率" }, el("option", { value: "", text: "默认" }));
  ui.scan = b("dev-scan", "扫码", scan, { accesskey: "q" });
  ui.scanLive = el("input", { type: "checkbox", id: "dev-scan-live" });
  ui.snap = b("dev-snapshot", "拍摄办事人照片", snapshot, { accesskey: "m" });
  ui.cancel = b("dev-cancel", "取消操作", cancelAll, { class: "quiet" });
  ui.promptText = el("textarea", { id: "dev-prompt-text", rows: "2", maxlength: "500", "aria-label": "提示内容", placeholder: "在终端屏幕上显示的提示或问题" });
  const msgBtn = b("dev-prompt-msg", "发送提示", () => prompt("message"));
  const askBtn = b("dev-prompt-ask", "确认提问", () => prompt("confirm"));
  ui.status = el("p", { id: "dev-status", class: "dev-status", role: "status", "aria-live": "polite" });
  ui.health = el("p", { id: "dev-health", class: "dev-health" });
  ui.identity = el("p", { id: "dev-identity", class: "dev-identity" });
  ui.card = el("div", { id: "dev-card", class: "dev-card" });
  ui.scans = el("ul", { id: "dev-scans", class: "dev-scans plain", "aria-label": "扫码结果" });
  ui.pages = el("ol", { id: "dev-pages", class: "dev-pages", "aria-label": "材料页" });
  ui.pdf = b("dev-pdf", "导出 PDF", exportPdf, { class: "quiet" });
  ui.image = el("img", { id: "dev-image", class: "dev-image", alt: "材料图片" });
  const zoomIn = b("dev-zoom-in", "放大", () => { viewer.zoom = Math.min(viewer.zoom + 1, ZOOMS.length - 1); applyView(); }, { class: "quiet" });
  const zoomOut = b("dev-zoom-out", "缩小", () => { viewer.zoom = Math.max(viewer.zoom - 1, 0); applyView(); }, { class: "quiet" });
  const rotate = b("dev-rotate", "旋转", () => { viewer.rot = (viewer.rot + 90) % 360; applyView(); }, { class: "quiet" });
  ui.viewer = el("div", { id: "dev-viewer", class: "dev-viewer" }, el("div", { class: "dev-viewer-tools", role: "toolbar", "aria-label": "图片" }, zoomIn, zoomOut, rotate), el("div", { class: "dev-frame" }, ui.image));
  ui.viewer.hidden = true;
  ui.dialogSnap = b("dev-dialog-snap", "拍摄办事人照片", snapshot, { class: "primary" });
  ui.dialog = el("div", { id: "dev-identity-dialog", class: "dev-dialog", role: "alertdialog", "aria-labelledby": "dev-dialog-title" },
    el("p", { id: "dev-dialog-title", text: "本次远程办理尚未读取身份证或扫码。按规定请拍摄办事人照片留存后再办结。" }),
    ui.dialogSnap,
    b("dev-dialog-finish", "仍然办结（记录为未核验）", finishUnverified, { class: "quiet" }),
    b("dev-dialog-close", "返回", () => { ui.dialog.hidden = true; }, { class: "quiet" }));
  ui.dialog.hidden = true;
  ui.viewer.addEventListener("keydown", (e) => {
    if (e.key === "+") zoomIn.click(); else if (e.key === "-") zoomOut.click(); else if (e.key === "r") rotate.click();
  });
  ui.panel = el("section", { class: "dev-panel", "aria-label": "延伸点设备" },
    el("h3", { text: "延伸点设备" }),
    el("div", { class: "dev-row", role: "toolbar", "aria-label": "设备操作" }, ui.read, ui.capture, ui.colour, ui.resolution, ui.scan,
      el("label", { class: "dev-check" }, ui.scanLive, "连续扫码"), ui.snap, ui.cancel),
    el("div", { class: "dev-row" }, ui.promptText, msgBtn, askBtn),
    ui.status, ui.health, ui.identity, ui.dialog,
    el("div", { class: "dev-results" },
      el("div", {}, el("h4", { text: "身份证" }), ui.card, el("h4", { text: "扫码结果" }), ui.scans),
      el("div", {}, el("h4", { text: "材料" }), ui.pages, ui.pdf, ui.viewer)));
  ui.panel.hidden = true;
  document.getElementById("device-area").append(ui.panel);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && pending.size && ticket) cancelAll(); });
}
