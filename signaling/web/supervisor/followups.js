// 差评回访整改: every bad review's follow-up item, open and overdue first; a supervisor
// records the visit (回访时间), what was verified (核实结果), the corrective action (整改措施)
// and the feedback to the resident (反馈), and closes the item.
import { dateTimeInput, fromDateTimeInput } from "/assets/shared/common.js";

export const id = "followups";
export const title = "差评回访";

const LEVELS = {
  very_dissatisfied: "非常不满意", dissatisfied: "不满意", basic: "基本满意", satisfied: "满意", very_satisfied: "非常满意",
};
const REASONS = {
  attitude: "服务态度不好", too_slow: "等候或办理时间太长", unclear: "解释说明不清楚",
  not_resolved: "事情没有办成", audio_video: "视频或声音不清楚", device: "设备不好用", other: "其他原因",
};

let api;
let list;
let editor;
let showAll = false;


function edit(item) {
  const { el } = api;
  const e = item.evaluation;
  const visited = el("input", { type: "datetime-local", id: "fu-visited", value: dateTimeInput(item.visited_ms) });
  const area = (id, value) => { const t = el("textarea", { id, maxlength: "2000" }); t.value = value; return t; };
  const verification = area("fu-verification", item.verification);
  const rectification = area("fu-rectification", item.rectification);
  const feedback = area("fu-feedback", item.feedback);
  const msg = el("p", { class: "message", role: "status" });
  const save = async (close) => {
    msg.textContent = "";
    try {
      await api.send("PUT", `/api/v1/supervisor/followups/${encodeURIComponent(item.evaluation_id)}`, {
        visited_ms: fromDateTimeInput(visited.value),
        verification: verification.value,
        rectification: rectification.value,
        feedback: feedback.value,
        close,
      });
      msg.textContent = close ? "已办结" : "已保存";
      msg.className = "message ok";
      load();
    } catch (err) {
      msg.textContent = err.message;
      msg.className = "message bad";
    }
  };
  editor.replaceChildren(
    el("h3", { text: `${e.ticket_number} · ${e.window_name} · ${e.clerk_name}` }),
    el("p", { text: `评价：${LEVELS[e.level] || "未评价"}；原因：${e.reasons.map((r) => REASONS[r] || r).join("、") || "—"}；截止：${item.due_date}` }),
    el("form", { class: "followup-form", onsubmit: (ev) => ev.preventDefault() },
      el("label", {}, "回访时间 ", visited),
      el("label", {}, "核实结果 ", verification),
      el("label", {}, "整改措施 ", rectification),
      el("label", {}, "反馈 ", feedback),
      el("div", {},
        el("button", { type: "button", id: "fu-save", text: "保存", onclick: () => save(false) }), " ",
        el("button", { type: "button", id: "fu-close", class: "primary", text: "办结", onclick: () => save(true) })),
      msg));
  editor.hidden = false;
}

async function load() {
  const { el, fmtTime } = api;
  try {
    const items = await api.get(`/api/v1/supervisor/followups?state=${showAll ? "all" : "open"}`);
    const rows = items.map((f) => {
      const e = f.evaluation;
      const state = f.state === "closed" ? "已办结" : f.overdue ? "已超期" : "待回访";
      return el("tr", { "data-evaluation": f.evaluation_id, class: f.overdue ? "overdue" : "" },
        el("td", { text: fmtTime(e.evaluated_ms) }),
        el("td", { text: e.ticket_number }),
        el("td", { class: "level-bad", text: LEVELS[e.level] || "未评价" }),
        el("td", { text: e.reasons.map((r) => REASONS[r] || r).join("、") }),
        el("td", { text: e.window_name }),
        el("td", { text: e.clerk_name }),
        el("td", { text: e.extension_point_name }),
        el("td", { text: f.due_date }),
        el("td", { class: "followup-state", text: state }),
        el("td", {}, el("button", { type: "button", text: "处理", onclick: () => edit(f) })));
    });
    const head = el("tr", {}, ...["评价时间", "号码", "评价", "原因", "窗口", "工作人员", "延伸点", "截止日期", "状态", ""].map((h) => el("th", { scope: "col", text: h })));
    list.replaceChildren(items.length
      ? el("table", {}, el("thead", {}, head), el("tbody", { id: "followup-rows" }, ...rows))
      : el("p", { class: "empty", text: showAll ? "没有差评记录" : "没有待回访的差评" }));
  } catch (err) {
    list.replaceChildren(el("p", { class: "message bad", text: err.message }));
  }
}

export function init(a) {
  api = a;
  const { el } = api;
  const all = el("input", { type: "checkbox", id: "followups-all", onchange: (ev) => { showAll = ev.target.checked; load(); } });
  list = el("div", { id: "followup-list" });
  editor = el("div", { id: "followup-editor", class: "card", hidden: "" });
  api.panel.append(
    el("h2", { text: title }),
    el("p", { class: "hint", text: "每条差评须在截止日期（工作日，不含周末和节假日）前完成回访、核实、整改和反馈。超期的排在前面并标红。" }),
    el("label", {}, all, " 显示已办结"),
    list, editor);
}

export function show() { load(); }
