// 推送失败: evaluations the 好差评 system did not accept after every retry. A supervisor
// sees why and may send one again once the cause is fixed.
export const id = "deadletters";
export const title = "推送失败";

let api;
let list;

async function load() {
  const { el, fmtTime } = api;
  try {
    const items = await api.get("/api/v1/supervisor/dead-letters");
    const rows = items.map((e) => el("tr", { "data-evaluation": e.id },
      el("td", { text: fmtTime(e.evaluated_ms) }),
      el("td", { text: e.ticket_number }),
      el("td", { text: e.window_name }),
      el("td", { text: String(e.forwarding.attempts) }),
      el("td", { text: e.forwarding.error || "" }),
      el("td", {}, el("button", { type: "button", text: "重新推送", onclick: async (ev) => {
        ev.target.disabled = true;
        try { await api.send("POST", `/api/v1/supervisor/dead-letters/${encodeURIComponent(e.id)}/retry`); } catch (_) { /* shown by reload */ }
        load();
      } }))));
    const head = el("tr", {}, ...["评价时间", "号码", "窗口", "尝试次数", "最后错误", ""].map((h) => el("th", { scope: "col", text: h })));
    list.replaceChildren(items.length
      ? el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))
      : el("p", { class: "empty", text: "没有推送失败的评价" }));
  } catch (err) {
    list.replaceChildren(el("p", { class: "message bad", text: err.message }));
  }
}

export function init(a) {
  api = a;
  list = api.el("div", { id: "deadletter-list" });
  api.panel.append(api.el("h2", { text: title }), api.el("p", { class: "hint", text: "重试用尽仍未被好差评系统接收的评价。排除原因后可重新推送（同一评价编号，不会重复计入）。" }), list);
}

export function show() { load(); }
