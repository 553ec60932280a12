// Helpers shared by the operations console's modules (those of every page are in
// /assets/shared/common.js). Relay data goes in as text only.

import { el, request } from "/assets/shared/common.js";

export const $ = (id) => document.getElementById(id);

export function message(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message" + (kind ? " " + kind : "");
}

/** A JSON request (see common.js `request`); resolves to { ok, status, data }, `data` an object. */
export async function api(path, options = {}) {
  const r = await request(path, options);
  if (r.status === 401) app.onUnauthenticated?.();
  return { ...r, data: r.data ?? {} };
}

/** Shared state; `onUnauthenticated` is set by the page. */
export const app = { me: null, info: null, now: Date.now(), onUnauthenticated: null };

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
