// 满意度统计: rated share, distribution and good-review rate per window, clerk and point.
const LEVELS = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"];

export const id = "stats";
export const title = "满意度统计";

let api;
let body;

const pct = (x) => (x == null ? "—" : `${(x * 100).toFixed(1)}%`);

function table(caption, rows) {
  const { el } = api;
  const head = el("tr", {}, ...["名称", "评价记录", "已评价", "参评率", ...LEVELS, "好评率"].map((h) => el("th", { scope: "col", text: h })));
  const lines = rows.map((r) => el("tr", { "data-id": r.id },
    el("td", { text: r.name }),
    el("td", { text: String(r.evaluations) }),
    el("td", { text: String(r.rated) }),
    el("td", { text: pct(r.rated_share) }),
    ...r.distribution.map((n) => el("td", { class: "dist", text: String(n) })),
    el("td", { text: pct(r.good_rate) })));
  return el("table", { class: "figures" }, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, ...lines));
}

async function load(from, to) {
  const q = new URLSearchParams();
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  body.replaceChildren(api.el("p", { text: "正在加载…" }));
  try {
    const s = await api.get(`/api/v1/supervisor/evaluations/stats?${q}`);
    const t = s.total;
    body.replaceChildren(
      api.el("p", { class: "total-line", id: "stats-total", text: `${s.from} 至 ${s.to}：评价记录 ${t.evaluations} 条，已评价 ${t.rated} 条（参评率 ${pct(t.rated_share)}），好评率 ${pct(t.good_rate)}，差评 ${t.bad} 条` }),
      table("按窗口", s.by_window),
      table("按工作人员", s.by_clerk),
      table("按延伸点", s.by_extension_point),
    );
  } catch (e) {
    body.replaceChildren(api.el("p", { class: "message bad", text: e.message }));
  }
}

export function init(a) {
  api = a;
  const { el } = api;
  const from = el("input", { type: "date", id: "stats-from" });
  const to = el("input", { type: "date", id: "stats-to" });
  const form = el("form", { class: "sup-filter", onsubmit: (ev) => { ev.preventDefault(); load(from.value, to.value); } },
    el("label", {}, "开始日期 ", from), el("label", {}, "结束日期 ", to),
    el("button", { type: "submit", class: "primary", text: "统计" }));
  body = el("div", { id: "stats-body" });
  api.panel.append(el("h2", { text: title }), el("p", { class: "hint", text: "好评：非常满意、满意、基本满意；差评：不满意、非常不满意。参评率 = 已评价 ÷ 评价记录（含未评价）。" }), form, body);
}

export function show() { load(document.getElementById("stats-from").value, document.getElementById("stats-to").value); }
