// 远程受理柜台维护: the list of remote counters, the application/change form with the
// structured service-hours editor, the activation/closure/reissue steps, a counter's trail,
// and the one-time display of a newly issued device credential. The relay validates every
// field and answers with messages per field, shown beside the field.

import { el, fmtTime } from "/assets/shared/common.js";
import { $, message, api, app, changesList } from "./util.js";

const WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
const FIELDS = {
  district: "f-district", street: "f-street", institution: "f-institution", address: "f-address",
  hours_text: "f-hours-text", phone: "f-phone", device_id: "f-device-id", device_url: "f-device-url",
  remarks: "f-remarks",
};
const LABELS = {
  district: "区", street: "街镇", institution: "设备摆放机构名称", address: "设备摆放地址",
  hours_text: "服务时间", phone: "摆放点位联系电话", device_id: "远程设备 ID",
  device_url: "远程设备 URL", remarks: "备注",
};

let counters = [];
let editing = null; // the counter being changed, or null for a new application
let stepping = null; // { counter, action }

export function init() {
  const districts = $("f-district");
  districts.replaceChildren(el("option", { value: "", text: "（请选择）" }));
  for (const d of app.info.divisions.district) districts.append(el("option", { value: d.name, text: d.name }));
  districts.addEventListener("change", () => fillStreets(""));
  $("new-counter").addEventListener("click", () => openForm(null));
  $("counter-cancel").addEventListener("click", closeForm);
  $("counter-form").addEventListener("submit", submitForm);
  $("add-weekly").addEventListener("click", () => addWeekly({ weekdays: [], periods: [] }, true));
  $("add-exception").addEventListener("click", () => addException({ date: "", periods: [], note: "" }, true));
  $("step-form").addEventListener("submit", submitStep);
  $("step-cancel").addEventListener("click", () => { $("step-form").hidden = true; });
  $("credential-close").addEventListener("click", () => {
    $("credential-text").value = "";
    $("credential-box").hidden = true;
  });
  $("detail-close").addEventListener("click", () => { $("counter-detail").hidden = true; });
}

function fillStreets(selected) {
  const district = app.info.divisions.district.find((d) => d.name === $("f-district").value);
  const streets = $("f-street");
  streets.replaceChildren(el("option", { value: "", text: district && !district.streets.length ? "（本区街镇名录未配置）" : "（请选择）" }));
  for (const s of district ? district.streets : []) streets.append(el("option", { value: s, text: s }));
  streets.value = selected;
}

// ---------------------------------------------------------------------------------------------
// the list

export async function refresh() {
  const r = await api("/api/v1/registry/counters");
  if (!r.ok) return message(r.data.message || "加载登记失败", "error");
  counters = r.data.counters;
  const body = $("counter-table").tBodies[0];
  body.replaceChildren();
  for (const c of counters) {
    const buttons = el("div");
    const actions = el("td", { class: "row-actions" }, buttons);
    const button = (text, fn, cls) => buttons.append(el("button", { type: "button", class: cls, text, onclick: fn }));
    button("查看", () => showDetail(c.id));
    if (app.info.can_write) {
      if (c.state === "applied") {
        button("修改申请", () => openForm(c), "write-only");
        button("开通", () => openStep(c, "activate"), "write-only primary");
        button("撤回申请", () => openStep(c, "close"), "write-only");
      } else if (c.state === "active") {
        button("变更", () => openForm(c), "write-only");
        button("重新签发凭据", () => openStep(c, "reissue"), "write-only");
        button("关闭点位", () => openStep(c, "close"), "write-only danger");
      }
    }
    body.append(el("tr", { "data-counter": c.id, "data-state": c.state },
      el("td", { text: c.state_zh }),
      el("td", { text: c.fields.district }),
      el("td", { text: c.fields.street }),
      el("th", { scope: "row", text: c.fields.institution }),
      el("td", { text: c.fields.device_id }),
      actions));
  }
  $("counter-empty").hidden = counters.length > 0;
}

// ---------------------------------------------------------------------------------------------
// service hours editor

function periodsText(periods) {
  return periods.map((p) => `${p.open}-${p.close}`).join(" ");
}

/** "09:00-11:30 13:30-17:00" → periods, or null when it cannot be read. */
function parsePeriods(text) {
  const parts = text.split(/[\s,，、;；]+/).filter(Boolean);
  const periods = [];
  for (const part of parts) {
    const m = /^(\d{1,2}):(\d{2})\s*[-–—~～至]\s*(\d{1,2}):(\d{2})$/.exec(part);
    if (!m) return null;
    const t = (h, mi) => `${h.padStart(2, "0")}:${mi}`;
    periods.push({ open: t(m[1], m[2]), close: t(m[3], m[4]) });
  }
  return periods;
}

function addWeekly(w, focus) {
  const row = el("div", { class: "hours-row weekly" });
  const days = el("span", { class: "days", role: "group", "aria-label": "星期" });
  WEEKDAYS.forEach((name, i) => {
    const box = el("input", { type: "checkbox", value: String(i + 1) });
    box.checked = w.weekdays.includes(i + 1);
    days.append(el("label", { class: "day" }, box, name));
  });
  const periods = el("input", { class: "periods", "aria-label": "时段", placeholder: "09:00-17:00" });
  periods.value = periodsText(w.periods);
  const remove = el("button", { type: "button", text: "删除", "aria-label": "删除这组时段", onclick: () => row.remove() });
  row.append(days, el("label", {}, "时段 ", periods), remove);
  $("weekly-list").append(row);
  if (focus) row.querySelector("input").focus();
}

function addException(e, focus) {
  const row = el("div", { class: "hours-row exception" });
  const date = el("input", { type: "date", class: "date", "aria-label": "日期" });
  date.value = e.date;
  const periods = el("input", { class: "periods", "aria-label": "时段（留空表示全天不开放）", placeholder: "留空：全天不开放" });
  periods.value = periodsText(e.periods);
  const note = el("input", { class: "note", "aria-label": "说明", placeholder: "如：国庆节、调休上班" });
  note.value = e.note || "";
  const remove = el("button", { type: "button", text: "删除", "aria-label": "删除这个特殊日期", onclick: () => row.remove() });
  row.append(el("label", {}, "日期 ", date), el("label", {}, "时段 ", periods), el("label", {}, "说明 ", note), remove);
  $("exception-list").append(row);
  if (focus) date.focus();
}

/** The editor's content as ServiceHours, or an error message. */
function readHours() {
  const weekly = [];
  for (const row of $("weekly-list").children) {
    const weekdays = [...row.querySelectorAll("input[type=checkbox]")].filter((b) => b.checked).map((b) => Number(b.value));
    const periods = parsePeriods(row.querySelector(".periods").value);
    if (!periods) return { error: "时段格式应为“09:00-17:00”，多个时段用空格分隔" };
    weekly.push({ weekdays, periods });
  }
  const exceptions = [];
  for (const row of $("exception-list").children) {
    const date = row.querySelector(".date").value;
    const periods = parsePeriods(row.querySelector(".periods").value);
    if (!date) return { error: "请为每个特殊日期选择日期" };
    if (!periods) return { error: "特殊日期的时段格式应为“09:00-12:00”，留空表示全天不开放" };
    exceptions.push({ date, periods, note: row.querySelector(".note").value.trim() });
  }
  return { hours: { weekly, exceptions } };
}

// ---------------------------------------------------------------------------------------------
// application and change form

function clearErrors() {
  for (const p of document.querySelectorAll("#counter-form .field-error")) p.textContent = "";
  for (const id of Object.values(FIELDS)) $(id).removeAttribute("aria-invalid");
  $("form-error").textContent = "";
}

function showErrors(fields) {
  let first = null;
  for (const f of fields) {
    const p = $(`err-${f.field}`);
    if (p) p.textContent = f.message;
    const input = $(FIELDS[f.field] || "");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  }
  if (first) first.focus();
}

function openForm(counter) {
  editing = counter;
  clearErrors();
  $("counter-detail").hidden = true;
  $("step-form").hidden = true;
  const f = counter ? counter.fields : null;
  $("counter-form-title").textContent = !counter ? "新增接入申请" : counter.state === "applied" ? "修改接入申请" : "变更备案";
  $("f-district").value = f ? f.district : app.info.centre?.district || "";
  fillStreets(f ? f.street : app.info.centre?.street || "");
  $("f-institution").value = f ? f.institution : "";
  $("f-address").value = f ? f.address : "";
  $("f-hours-text").value = f ? f.hours_text : "";
  $("f-phone").value = f ? f.phone : "";
  $("f-device-id").value = f ? f.device_id : "";
  $("f-device-url").value = f ? f.device_url : "";
  $("f-remarks").value = f ? f.remarks : "";
  $("f-reason").value = "";
  $("reason-field").hidden = !counter;
  $("f-reason").previousElementSibling.textContent = counter && counter.state === "active" ? "变更原因（必填）" : "修改说明（选填）";
  $("weekly-list").replaceChildren();
  $("exception-list").replaceChildren();
  const hours = f ? f.hours : { weekly: [{ weekdays: [1, 2, 3, 4, 5], periods: [{ open: "09:00", close: "17:00" }] }], exceptions: [] };
  for (const w of hours.weekly) addWeekly(w, false);
  for (const e of hours.exceptions) addException(e, false);
  $("counter-form").hidden = false;
  $("f-district").focus();
}

function closeForm() {
  $("counter-form").hidden = true;
  editing = null;
}

async function submitForm(ev) {
  ev.preventDefault();
  clearErrors();
  const hours = readHours();
  if (hours.error) {
    $("err-hours").textContent = hours.error;
    $("weekly-list").querySelector("input")?.focus();
    return;
  }
  const body = {
    district: $("f-district").value, street: $("f-street").value,
    institution: $("f-institution").value, address: $("f-address").value,
    hours_text: $("f-hours-text").value, hours: hours.hours, phone: $("f-phone").value,
    device_id: $("f-device-id").value, device_url: $("f-device-url").value, remarks: $("f-remarks").value,
  };
  let r;
  if (editing) {
    r = await api(`/api/v1/registry/counters/${encodeURIComponent(editing.id)}/change`, {
      body: { ...body, version: editing.version, reason: $("f-reason").value },
    });
  } else {
    r = await api("/api/v1/registry/counters", { body });
  }
  if (!r.ok) {
    if (r.data.fields) showErrors(r.data.fields);
    if (r.data.code !== "bad_message" || !r.data.fields) {
      $("form-error").textContent = r.data.message || "提交失败";
      if (/原因/.test(r.data.message || "")) $("err-reason").textContent = r.data.message;
    } else {
      $("form-error").textContent = `有 ${r.data.fields.length} 项需要修改：${r.data.fields.map((f) => LABELS[f.field] || f.field).join("、")}`;
    }
    return;
  }
  const changed = editing !== null;
  closeForm();
  message(changed ? "已保存" : "已提交接入申请", "ok");
  showCredential(r.data.credential);
  refresh();
}

// ---------------------------------------------------------------------------------------------
// activation, closure, credential reissue

const STEPS = {
  activate: { title: "开通", hint: "市运管中心审核通过后开通。开通时签发设备凭据，只显示一次。", label: "开通说明（选填，如审核批复）", path: "activate" },
  close: { title: "关闭点位", hint: "关闭后该点位从公开名单中移除，终端不能再连接。", label: "关闭原因（必填）", path: "close" },
  reissue: { title: "重新签发设备凭据", hint: "旧凭据立即失效，终端需写入新凭据后才能连接。", label: "原因（必填）", path: "reissue" },
};

function openStep(counter, action) {
  const step = STEPS[action];
  stepping = { counter, action };
  $("counter-form").hidden = true;
  $("step-title").textContent = `${counter.state === "applied" && action === "close" ? "撤回申请" : step.title}：${counter.fields.institution}`;
  $("step-hint").textContent = counter.state === "applied" && action === "close" ? "撤回尚未开通的申请。" : step.hint;
  $("step-reason-label").textContent = step.label;
  $("step-reason").value = "";
  $("step-error").textContent = "";
  $("step-form").hidden = false;
  $("step-reason").focus();
}

async function submitStep(ev) {
  ev.preventDefault();
  if (!stepping) return;
  const { counter, action } = stepping;
  const r = await api(`/api/v1/registry/counters/${encodeURIComponent(counter.id)}/${STEPS[action].path}`, {
    body: { version: counter.version, reason: $("step-reason").value },
  });
  if (!r.ok) {
    $("step-error").textContent = r.data.message || "操作失败";
    $("step-reason").focus();
    return;
  }
  $("step-form").hidden = true;
  stepping = null;
  message(`${STEPS[action].title}：已完成`, "ok");
  showCredential(r.data.credential);
  refresh();
}

function showCredential(credential) {
  if (!credential) return;
  $("credential-text").value = credential;
  $("credential-box").hidden = false;
  $("credential-text").focus();
  $("credential-text").select();
}

// ---------------------------------------------------------------------------------------------
// detail and trail

async function showDetail(id) {
  const r = await api(`/api/v1/registry/counters/${encodeURIComponent(id)}`);
  if (!r.ok) return message(r.data.message || "加载失败", "error");
  const c = r.data.counter;
  $("detail-title").textContent = `${c.fields.institution}（${c.state_zh}）`;
  const dl = $("detail-fields");
  dl.replaceChildren();
  const add = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v || "—" }));
  for (const [field, label] of Object.entries(LABELS)) add(label, c.fields[field]);
  add("申请时间", fmtTime(c.applied_ms));
  add("开通时间", c.activated_ms ? fmtTime(c.activated_ms) : "");
  add("关闭时间", c.closed_ms ? fmtTime(c.closed_ms) : "");
  add("关闭原因", c.close_reason);
  $("detail-events").replaceChildren(...r.data.events.map((e) => el("li", {},
    el("strong", { text: `${fmtTime(e.at_ms)} ${e.actor_name} ${e.action_zh}` }),
    e.reason ? el("span", { text: `（原因：${e.reason}）` }) : "",
    changesList(e.changes))));
  $("counter-form").hidden = true;
  $("step-form").hidden = true;
  $("counter-detail").hidden = false;
  $("detail-close").focus();
}
