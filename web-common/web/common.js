// Helpers every web page shares, the relay's (console, supervisor, operations, recordings) and
// the agent's (kiosk, technician): building elements, Shanghai time, durations and JSON
// requests. One copy, so every page shows a time or a duration the same way.
//
// The relay serves this file at /assets/shared/common.js, the agent beside each of its pages
// (/kiosk/assets/common.js, /technician/assets/common.js); the bytes are the same file.
// Everything from a server is inserted as text (textContent), never as HTML.

/**
 * A new element. `props`: `class`, `text` (its text content), `on<event>` (a listener), any
 * other key an attribute; null and undefined values are left out. Children are nodes or text.
 */
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

// The centre works in Shanghai time, whatever the time zone of the browser's machine.
const SHANGHAI = new Intl.DateTimeFormat("en-CA", {
  timeZone: "Asia/Shanghai",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

function shanghaiParts(ms) {
  const p = {};
  for (const { type, value } of SHANGHAI.formatToParts(new Date(ms))) p[type] = value;
  return p;
}

/** Shanghai wall-clock time of a Unix ms instant, "2026-11-23 10:05:09"; "—" for none. */
export function fmtTime(ms) {
  if (ms == null) return "—";
  const p = shanghaiParts(ms);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** The Shanghai time of day of an instant, "10:05:09". */
export function fmtClock(ms) {
  if (ms == null) return "—";
  const p = shanghaiParts(ms);
  return `${p.hour}:${p.minute}:${p.second}`;
}

/** The Shanghai date of an instant, "2026-11-23", as `<input type="date">` wants it. */
export function dateInput(ms) {
  if (ms == null) return "";
  const p = shanghaiParts(ms);
  return `${p.year}-${p.month}-${p.day}`;
}

/** The Shanghai time of an instant as `<input type="datetime-local">` wants it. */
export function dateTimeInput(ms) {
  if (ms == null) return "";
  const p = shanghaiParts(ms);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/** The instant of an `<input type="date">` value read as Shanghai midnight; null when empty. */
export function fromDateInput(value) {
  return value ? Date.parse(`${value}T00:00:00+08:00`) : null;
}

/** The instant of an `<input type="datetime-local">` value read as Shanghai time. */
export function fromDateTimeInput(value) {
  return value ? Date.parse(`${value}:00+08:00`) : null;
}

/** A duration given in milliseconds: "45秒", "3分5秒", "2时10分"; "—" for none. */
export function fmtDuration(ms) {
  if (ms == null) return "—";
  const seconds = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m >= 60 ? `${Math.floor(m / 60)}时${m % 60}分` : m > 0 ? `${m}分${s}秒` : `${s}秒`;
}

/** An answer that was not 2xx, or no answer at all (`status` 0). */
export class HttpError extends Error {
  constructor(status, message, data) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.data = data;
  }
}

const DEFAULT_TIMEOUT_MS = 15000;

/**
 * A JSON request: `body` (sent as JSON when given), `method` (POST with a body, else GET),
 * `timeoutMs`. Resolves to `{ ok, status, data }` and never rejects: when the server cannot be
 * reached or does not answer in time, `status` is 0 and `data.message` says which.
 */
export async function request(path, { method, body, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const init = {
    method: method || (body !== undefined ? "POST" : "GET"),
    credentials: "same-origin",
    headers: {},
    signal: AbortSignal.timeout(timeoutMs),
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    const message = e && e.name === "TimeoutError"
      ? `服务器 ${Math.round(timeoutMs / 1000)} 秒未响应，请重试 / no answer within ${Math.round(timeoutMs / 1000)} s`
      : "无法连接服务器，请检查网络 / cannot reach the server";
    return { ok: false, status: 0, data: { message } };
  }
  const data = await r.json().catch(() => null);
  return { ok: r.ok, status: r.status, data };
}

/** `request`, resolving to the answer's JSON (null when it has none), rejecting with an `HttpError`. */
export async function fetchJson(path, options = {}) {
  const { ok, status, data } = await request(path, options);
  if (!ok) {
    const message = (data && data.message) || `请求失败（HTTP ${status}）`;
    throw new HttpError(status, message, data);
  }
  return data;
}
