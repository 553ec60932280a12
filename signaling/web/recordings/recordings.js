// Recordings of served remote sessions, for supervisors (值班长). The relay audits every list,
// view and play request; relay data is inserted as text only.

const $ = (id) => document.getElementById(id);
const STATES = { recording: "录制中", complete: "已保存", failed: "失败", purged: "已删除" };
const SLOTS = { kiosk_camera: "居民", kiosk_document: "高拍仪", kiosk_microphone: "居民声音", clerk_camera: "工作人员", clerk_microphone: "工作人员声音" };

function el(tag, text) {
  const e = document.createElement(tag);
  if (text != null) e.textContent = text;
  return e;
}

function fmtTime(ms) {
  return new Date(ms).toLocaleString("zh-CN", { hour12: false });
}

function fmtDuration(ms) {
  if (ms == null) return "—";
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}分${s % 60}秒`;
}

function message(text) { $("rec-message").textContent = text || ""; }

async function load() {
  const params = new URLSearchParams();
  const day = $("rec-day").value;
  if (day) {
    const from = new Date(`${day}T00:00:00`).getTime();
    params.set("from", String(from));
    params.set("to", String(from + 86400000));
  }
  const ticket = $("rec-ticket").value.trim();
  if (ticket) params.set("ticket", ticket);
  message("正在查询…");
  const r = await fetch(`/api/v1/recordings?${params}`, { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/"; return; }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { message(data.message || "查询失败"); return; }
  const body = $("rec-body");
  body.replaceChildren();
  for (const rec of data.recordings) {
    const tr = el("tr");
    tr.append(el("td", fmtTime(rec.started_ms)), el("td", rec.ticket_number), el("td", rec.window_id),
      el("td", fmtDuration(rec.duration_ms)),
      el("td", rec.tracks.map((t) => SLOTS[t.slot] ?? t.slot).join("、")),
      el("td", STATES[rec.state] ?? rec.state));
    const actions = el("td");
    if (rec.playable) {
      const b = el("button", "播放");
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
