// Operations console (远程受理柜台运维台): kiosk health at a glance, the registry of remote
// counters with its forms, who changed what, inspection records, and the city's forms as
// downloads. Plain fetch() against the relay's JSON API; all relay data is inserted as text
// (textContent), never as HTML.

import * as registry from "./registry.js";
import { dateInput, el, fmtTime } from "/assets/shared/common.js";
import { $, message, api, app, changesList } from "./util.js";

// ---------------------------------------------------------------------------------------------
// login and tabs

function show(view) {
  for (const v of ["login-view", "denied-view", "app-view"]) $(v).hidden = v !== view;
}

app.onUnauthenticated = () => showLogin();

function showLogin() {
  show("login-view");
  $("logout").hidden = true;
  $("login-user").focus();
}

const OPS_ROLES = ["registry_operator", "supervisor", "technician"];

async function start() {
  const me = await api("/api/v1/me");
  if (!me.ok) return showLogin();
  app.me = me.data;
  $("clerk-name").textContent = app.me.display_name;
  $("logout").hidden = false;
  if (!app.me.roles.some((r) => OPS_ROLES.includes(r))) return show("denied-view");
  const info = await api("/api/v1/registry/divisions");
  if (!info.ok) return message(info.data.message || "加载失败", "error");
  app.info = info.data;
  const scope = app.info.scope.district
    ? `${app.info.scope.district}（全区）`
    : app.info.centre ? app.info.centre.name : "";
  $("scope-name").textContent = scope;
  document.body.classList.toggle("can-write", !!app.info.can_write);
  $("tab-history").hidden = !app.info.can_audit;
  $("tab-exports").hidden = !app.info.can_audit;
  show("app-view");
  registry.init();
  initExports();
  selectTab("tab-health");
  refreshHealth();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const r = await api("/api/v1/login", { body: { username: $("login-user").value, password: $("login-pass").value } });
  if (!r.ok) {
    $("login-error").textContent = r.data.message || "登录失败";
    return;
  }
  $("login-pass").value = "";
  if (r.data.second_factor_required || r.data.must_enroll_second_factor || r.data.must_change_password) {
    // Two-step verification and password changes are done on the console's login page,
    // which comes back here afterwards.
    location.href = "/?next=/ops";
    return;
  }
  start();
});

$("logout").addEventListener("click", async () => {
  await api("/api/v1/logout", { method: "POST", body: {} });
  location.reload();
});

const TABS = ["tab-health", "tab-registry", "tab-history", "tab-inspections", "tab-exports"];
const LOADERS = {
  "tab-health": () => refreshHealth(),
  "tab-registry": () => registry.refresh(),
  "tab-history": () => loadHistory(),
  "tab-inspections": () => loadInspections(),
  "tab-exports": () => updateExportLinks(),
};

function selectTab(id) {
  for (const t of TABS) {
    const selected = t === id;
    $(t).setAttribute("aria-selected", String(selected));
    $(t).tabIndex = selected ? 0 : -1;
    $($(t).getAttribute("aria-controls")).hidden = !selected;
  }
  message("");
  LOADERS[id]?.();
}

for (const t of TABS) {
  $(t).addEventListener("click", () => selectTab(t));
  // Arrow keys move between tabs (WAI-ARIA tabs pattern).
  $(t).addEventListener("keydown", (ev) => {
    const visible = TABS.filter((x) => !$(x).hidden);
    const i = visible.indexOf(t);
    let next = null;
    if (ev.key === "ArrowRight") next = visible[(i + 1) % visible.length];
    if (ev.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
    if (ev.key === "Home") next = visible[0];
    if (ev.key === "End") next = visible[visible.length - 1];
    if (next) {
      ev.preventDefault();
      selectTab(next);
      $(next).focus();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// health

function fmtAgo(ms, now) {
  if (ms == null) return "从未连接";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}秒前`;
  if (s < 3600) return `${Math.floor(s / 60)}分钟前`;
  if (s < 86400) return `${Math.floor(s / 3600)}小时前`;
  return fmtTime(ms);
}

const STATUS_ZH = {
  online: "正常", offline: "离线", power_off: "断电", no_device: "未连接", hardware_error: "硬件故障",
  user_error: "操作错误", device_busy: "忙", starting: "启动中",
};
const OUTCOME_ZH = { pass: "通过", warn: "警告", fail: "失败", skipped: "未执行" };

let healthTimer = null;

export async function refreshHealth() {
  clearTimeout(healthTimer);
  healthTimer = setTimeout(() => {
    if (!$("panel-health").hidden) refreshHealth();
  }, 10000);
  const r = await api("/api/v1/ops/health");
  if (!r.ok) return message(r.data.message || "加载设备状态失败", "error");
  const v = r.data;
  app.now = v.now_ms;
  const s = v.summary;
  $("health-summary").textContent = `共 ${s.points} 个延伸点：在线 ${s.online}，离线 ${s.offline}，有设备故障 ${s.failing}`;
  const body = $("health-table").tBodies[0];
  body.replaceChildren();
  for (const p of v.points) {
    const kiosks = p.kiosks.length ? p.kiosks : [null];
    kiosks.forEach((k, i) => {
      const tr = el("tr", {
        "data-point": p.id,
        "data-device": k ? k.device_id : "",
        "data-online": String(!!(k && k.online)),
        class: k && k.online ? (k.failing.length ? "warn" : "") : "bad",
      });
      if (i === 0) {
        const name = el("th", { scope: "row", rowspan: String(kiosks.length) }, el("span", { text: p.name }));
        if (p.registry_state === null) name.append(el("small", { text: "（未纳入登记）" }));
        tr.append(name);
      }
      tr.append(el("td", { text: k ? k.device_id : "（无终端）" }));
      tr.append(el("td", { class: "online", text: k ? (k.online ? "在线" : "离线") : "—" }));
      tr.append(el("td", { text: k ? fmtAgo(k.last_seen_ms, v.now_ms) : "—" }));
      if (i === 0) {
        const open = p.open_now === null ? "" : p.open_now ? "（服务中）" : "（非服务时间）";
        tr.append(el("td", { rowspan: String(kiosks.length), text: `${p.service_hours}${open}` }));
      }
      const failing = k ? k.devices.filter((d) => d.failing) : [];
      tr.append(el("td", {
        text: failing.length
          ? failing.map((d) => `${d.kind_zh}：${STATUS_ZH[d.status] || d.status}`).join("；")
          : k && k.devices.length ? "无" : "未上报",
      }));
      if (i === 0) {
        const ins = p.last_inspection;
        tr.append(el("td", {
          rowspan: String(kiosks.length),
          text: ins
            ? `${fmtTime(ins.received_ms)} ${ins.automatic ? "自动巡检" : ins.technician} ${OUTCOME_ZH[ins.overall]}`
              + (ins.problems.length ? `（${ins.problems.join("、")}）` : "")
            : "无",
        }));
        tr.append(el("td", { rowspan: String(kiosks.length), text: p.alerts.map((a) => a.message_zh).join("；") || "无" }));
      }
      body.append(tr);
    });
  }
  $("health-empty").hidden = v.points.length > 0;
  const alerts = await api("/api/v1/ops/alerts?days=7");
  if (alerts.ok) {
    $("alert-list").replaceChildren(...alerts.data.alerts.map((a) =>
      el("li", { text: `${fmtTime(a.at_ms)} ${a.state === "firing" ? "【告警】" : "【已恢复】"}${a.message_zh}` })));
    if (!alerts.data.alerts.length) $("alert-list").append(el("li", { text: "近7天无告警。" }));
  }
}

$("health-refresh").addEventListener("click", () => refreshHealth());

// ---------------------------------------------------------------------------------------------
// history (who changed what)


async function loadHistory() {
  if (!$("history-from").value) $("history-from").value = dateInput(Date.now() - 30 * 86400000);
  if (!$("history-to").value) $("history-to").value = dateInput(Date.now());
  const q = new URLSearchParams({ from: $("history-from").value, to: $("history-to").value, limit: "500" });
  const r = await api(`/api/v1/registry/history?${q}`);
  if (!r.ok) return message(r.data.message || "加载变更记录失败", "error");
  const body = $("history-table").tBodies[0];
  body.replaceChildren(...r.data.events.map(eventRow));
  $("history-empty").hidden = r.data.events.length > 0;
}


function eventRow(e) {
  return el("tr", { "data-event": String(e.id) },
    el("td", { text: fmtTime(e.at_ms) }),
    el("td", { text: e.actor_name }),
    el("td", { text: e.action_zh }),
    el("td", { text: e.institution }),
    el("td", {}, changesList(e.changes)),
    el("td", { text: e.reason || "—" }));
}

$("history-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  loadHistory();
});

// ---------------------------------------------------------------------------------------------
// inspections

async function loadInspections() {
  const r = await api("/api/v1/ops/inspections?limit=100");
  if (!r.ok) return message(r.data.message || "加载巡检记录失败", "error");
  const body = $("inspection-table").tBodies[0];
  body.replaceChildren();
  const names = r.data.check_names || {};
  for (const i of r.data.inspections) {
    const checks = el("details", {}, el("summary", { text: `${i.report.checks.length} 项` }));
    const list = el("ul", { class: "checks" });
    for (const c of i.report.checks) {
      const li = el("li", { class: c.outcome }, el("strong", { text: `${OUTCOME_ZH[c.outcome]} ` }),
        el("span", { text: `${(names[c.id] && names[c.id].zh) || c.id}：${c.detail.zh || ""}` }));
      if (c.remedy && c.remedy.zh) li.append(el("div", { class: "remedy", text: `处理：${c.remedy.zh}` }));
      list.append(li);
    }
    checks.append(list);
    body.append(el("tr", { class: i.overall === "fail" ? "bad" : i.overall === "warn" ? "warn" : "" },
      el("td", { text: fmtTime(i.received_ms) }),
      el("td", { text: i.extension_point_id }),
      el("td", { text: i.device_id }),
      el("td", { text: i.automatic ? "自动巡检" : i.technician }),
      el("td", { text: OUTCOME_ZH[i.overall] }),
      el("td", {}, checks)));
  }
  $("inspection-empty").hidden = r.data.inspections.length > 0;
}

// ---------------------------------------------------------------------------------------------
// exports

function initExports() {
  const select = $("export-district");
  select.replaceChildren();
  const districts = app.info.scope.district
    ? [app.info.scope.district]
    : app.info.divisions.district.map((d) => d.name);
  for (const d of districts) select.append(el("option", { value: d, text: d }));
  if (app.info.centre && districts.includes(app.info.centre.district)) select.value = app.info.centre.district;
  const now = Date.now();
  $("export-from").value = dateInput(now - 30 * 86400000);
  $("export-to").value = dateInput(now);
  for (const id of ["export-form-kind", "export-district", "export-from", "export-to"]) {
    $(id).addEventListener("change", updateExportLinks);
  }
  $("export-form").addEventListener("submit", (ev) => ev.preventDefault());
}

function updateExportLinks() {
  const q = (format) => new URLSearchParams({
    format, district: $("export-district").value, from: $("export-from").value, to: $("export-to").value,
  });
  const kind = $("export-form-kind").value;
  $("export-xlsx").href = `/api/v1/registry/exports/${kind}?${q("xlsx")}`;
  $("export-csv").href = `/api/v1/registry/exports/${kind}?${q("csv")}`;
}

start();
