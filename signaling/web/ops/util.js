// Helpers shared by the operations console's modules. Relay data goes in as text only.

export const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

export function fmtTime(ms) {
  if (ms == null) return "—";
  return new Date(ms).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
}


export function message(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message" + (kind ? " " + kind : "");
}

/** fetch() a JSON API; resolves to { ok, status, data }. */
export async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.body !== undefined) {
    init.method = options.method || "POST";
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(options.body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: { message: "无法连接服务器，请检查网络 / cannot reach the relay" } };
  }
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) app.onUnauthenticated?.();
  return { ok: r.ok, status: r.status, data };
}

/** Shared state; `onUnauthenticated` is set by the page. */
export const app = { me: null, info: null, now: Date.now(), onUnauthenticated: null };

/** A date for <input type="date">, in Shanghai time. */
export function dateInput(ms) {
  const d = new Date(ms + 8 * 3600 * 1000);
  return d.toISOString().slice(0, 10);
}

export function changesList(changes) {
  const ul = el("ul", { class: "changes" });
  for (const c of changes) {
    if (c.field === "hours") {
      // The structured hours as JSON help nobody; their text form is listed beside them.
      ul.append(el("li", {}, el("span", { class: "label", text: `${c.label}：` }), "已调整"));
      continue;
    }
    ul.append(el("li", {}, el("span", { class: "label", text: `${c.label}：` }),
      el("del", { text: c.before || "（空）" }), " → ", el("ins", { text: c.after || "（空）" })));
  }
  return ul;
}
