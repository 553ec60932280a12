// Recordings of served remote sessions, for supervisors (值班长). The relay audits every list,
// view and play request; relay data is inserted as text only.

import { el, fmtDuration, fmtTime, fromDateInput, request } from "/assets/shared/common.js";

const $ = (id) => document.getElementById(id);
const STATES = { recording: "录制中", complete: "已保存", failed: "失败", purged: "已删除" };
const SLOTS = { kiosk_camera: "居民", kiosk_document: "高拍仪", kiosk_microphone: "居民声音", clerk_camera: "工作人员", clerk_microphone: "工作人员声音" };

function message(text) { $("rec-message").textContent = text || ""; }

async function load() {
  const params = new URLSearchParams();
  const day = $("rec-day").value;
  if (day) {
    const from = fromDateInput(day);
    params.set("from", String(from));
    params.set("to", String(from + 86400000));
  }
  const ticket = $("rec-ticket").value.trim();
  if (ticket) params.set("ticket", ticket);
  message("正在查询…");
  const r = await request(`/api/v1/recordings?${params}`);
  if (r.status === 401) { location.href = "/"; return; }
  const data = r.data ?? {};
  if (!r.ok) { message(data.message || "查询失败"); return; }
  const body = $("rec-body");
  body.replaceChildren();
  for (const rec of data.recordings) {
    const tr = el("tr");
    tr.append(el("td", { text: fmtTime(rec.started_ms) }), el("td", { text: rec.ticket_number }),
      el("td", { text: rec.window_id }),
      el("td", { text: fmtDuration(rec.duration_ms) }),
      el("td", { text: rec.tracks.map((t) => SLOTS[t.slot] ?? t.slot).join("、") }),
      el("td", { text: STATES[rec.state] ?? rec.state }));
    const actions = el("td");
    if (rec.playable) {
      const b = el("button", { text: "播放" });
      b.type = "button";
      b.addEventListener("click", () => play(rec));
      actions.append(b);
    }
    tr.append(actions);
    body.append(tr);
  }
  message(data.recordings.length ? `共 ${data.recordings.length} 条` : "没有符合条件的录像");
}

function play(rec) {
  $("rec-player").hidden = false;
  $("rec-title").textContent = `${rec.ticket_number} · ${fmtTime(rec.started_ms)}`;
  $("rec-facts").textContent = `SHA-256 ${rec.sha256 ?? "—"} · ${rec.encrypted ? "加密存储" : "未加密"}${rec.torn_tail ? " · 录制中断" : ""}`;
  const v = $("rec-video");
  v.src = `/api/v1/recordings/${encodeURIComponent(rec.id)}/media`;
  v.play().catch(() => {});
}

$("rec-filter").addEventListener("submit", (ev) => { ev.preventDefault(); load().catch((e) => message(e.message)); });
load().catch((e) => message(e.message));
