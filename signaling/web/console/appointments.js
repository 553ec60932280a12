// Today's remote appointments of the clerk's centre (今日预约), under the statistics: per
// slot, the time, category, extension point, masked name and state. Read from
// GET /api/v1/appointments; refreshed on every (re)connection, every minute and on request.
import { el, fetchJson, fmtClock } from "/assets/shared/common.js";

const STATES = { booked: "待签到", checked_in: "已签到", no_show: "未到", cancelled: "已取消" };
let ui = null;
let timer = null;

function build() {
  const stats = document.querySelector("section.stats");
  if (!stats) return;
  const body = el("tbody", { id: "appointments-body" });
  const status = el("p", { id: "appointments-status", class: "hint", role: "status" });
  const refresh = el("button", { type: "button", class: "quiet", text: "刷新", onclick: () => load() });
  const section = el("section", { class: "card appointments", "aria-labelledby": "appointments-title" },
    el("div", { class: "queue-head" }, el("h2", { id: "appointments-title", text: "今日预约" }), refresh),
    el("table", {},
      el("thead", {}, el("tr", {},
        el("th", { scope: "col", text: "时段" }), el("th", { scope: "col", text: "事项" }),
        el("th", { scope: "col", text: "服务点" }), el("th", { scope: "col", text: "姓名" }),
        el("th", { scope: "col", text: "状态" }))),
      body),
    status);
  stats.after(section);
  ui = { body, status };
}

async function load() {
  if (!ui) return;
  try {
    const data = await fetchJson("/api/v1/appointments");
    ui.body.replaceChildren();
    for (const a of data.appointments) {
      const time = `${fmtClock(a.slot_start_ms).slice(0, 5)}-${fmtClock(a.slot_end_ms).slice(0, 5)}`;
      const state = a.late && a.state === "checked_in" ? "迟到签到（普通号）" : (STATES[a.state] || a.state);
      ui.body.append(el("tr", { "data-state": a.state },
        el("td", { text: time }), el("td", { text: a.category_name }), el("td", { text: a.point_name }),
        el("td", { text: a.name_masked }), el("td", { text: state })));
    }
    ui.status.textContent = data.appointments.length ? `共 ${data.appointments.length} 个预约` : "今日暂无预约";
  } catch (e) {
    ui.status.textContent = `预约列表读取失败：${e.message}`;
  }
}

export function init() {
  build();
}

export function onWelcome() {
  load();
  clearInterval(timer);
  timer = setInterval(load, 60000);
}
