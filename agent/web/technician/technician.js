// The technician page: PIN → start a self-test → follow it → results with remedies.
// Everything from the agent is inserted as text, never as HTML.

// Elements, Shanghai time (as the centre reads it, whatever the kiosk's own time zone) and
// requests come from the script every page shares.
import { el, fmtTime, request } from "./common.js";

const $ = (id) => document.getElementById(id);

const OUTCOME = {
  pass: ["通过", "pass"],
  warn: ["警告", "warn"],
  fail: ["失败", "fail"],
  skipped: ["未执行", "skipped"],
};

let pin = "";
let names = {};
let following = null;
let namesShown = false;

function bilingual(tag, className, zh, en) {
  const e = el(tag, { class: className || undefined, text: zh });
  if (en) {
    e.append(" ");
    e.append(el("span", { class: "en", text: en }));
  }
  return e;
}

/** `{ status, data }` of a JSON request; status 0 when the agent cannot be reached. */
const api = (method, path, body) => request(path, { method, body });

function show(section) {
  for (const id of ["login", "start", "result"]) $(id).hidden = true;
  for (const id of section) $(id).hidden = false;
  $("logout").hidden = section.includes("login");
}

// --- PIN ---------------------------------------------------------------------------------------

function buildKeypad() {
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok"];
  for (const key of keys) {
    const b = el("button");
    b.type = "button";
    if (key === "clear") {
      b.className = "secondary";
      b.append("清除", el("span", { class: "en", text: " Clear" }));
    } else if (key === "ok") {
      b.append("确认", el("span", { class: "en", text: " OK" }));
    } else {
      b.textContent = key;
    }
    b.addEventListener("click", () => press(key));
    $("keypad").append(b);
  }
}

function press(key) {
  if (key === "clear") pin = "";
  else if (key === "ok") return login();
  else if (pin.length < 12) pin += key;
  $("pin-shown").textContent = "●".repeat(pin.length);
}

async function login() {
  const { status, data } = await api("POST", "/api/technician/login", { pin });
  pin = "";
  $("pin-shown").textContent = "";
  if (status === 204) {
    $("login-message").textContent = "";
    return load();
  }
  $("login-message").textContent = (data && data.message) || `错误 error ${status}`;
}

// --- runs --------------------------------------------------------------------------------------

async function load() {
  const { status, data } = await api("GET", "/api/technician/run");
  if (status === 401) return show(["login"]);
  if (status !== 200) {
    $("login-message").textContent = (data && data.message) || `错误 error ${status}`;
    return show(["login"]);
  }
  render(data);
  if (data.running) follow();
}

async function start() {
  $("start-message").textContent = "";
  const { status, data } = await api("POST", "/api/technician/run", {
    technician: $("technician").value,
    with_card: $("with-card").checked,
    with_code: $("with-code").checked,
  });
  if (status === 401) return show(["login"]);
  if (status !== 202) {
    $("start-message").textContent = (data && data.message) || `错误 error ${status}`;
    return;
  }
  follow();
}

function follow() {
  if (following) return;
  // A run takes under a minute (plus the interactive steps); the page asks twice a second.
  following = setInterval(async () => {
    const { status, data } = await api("GET", "/api/technician/run");
    if (status !== 200) {
      clearInterval(following);
      following = null;
      return status === 401 ? show(["login"]) : undefined;
    }
    render(data);
    if (!data.running) {
      clearInterval(following);
      following = null;
      // The form comes back above the result: keep the result in view.
      $("result-title").scrollIntoView({ block: "start" });
    }
  }, 500);
}

// The configured technicians as buttons: a touch screen has no keyboard (nor a Chinese
// input method) to type a name with.
function showNames(list) {
  if (namesShown || !list || !list.length) return;
  namesShown = true;
  const box = $("names");
  for (const name of list) {
    const b = el("button", { class: "secondary", text: name });
    b.type = "button";
    b.addEventListener("click", () => { $("technician").value = name; });
    box.append(b);
  }
  box.hidden = false;
}

function render(view) {
  names = view.names || names;
  showNames(view.technicians);
  const running = view.running;
  show(running ? ["result"] : ["start", "result"]);
  $("run").disabled = running;
  // The name field is not filled from an earlier run: each technician files under their own.

  const title = $("result-title");
  title.textContent = "";
  if (running) {
    title.append(bilingual("span", "", `正在自检 · ${view.technician}`, "Self-test running"));
  } else if (view.report) {
    const who = view.report.automatic ? "自动巡检" : view.report.technician;
    title.append(bilingual("span", "", `上次自检 · ${who} · ${fmtTime(view.report.started_ms)}`, "Last self-test"));
  }

  const prompt = $("prompt");
  prompt.hidden = !view.prompt;
  prompt.textContent = "";
  if (view.prompt) prompt.append(bilingual("span", "", view.prompt.zh, view.prompt.en));

  const summary = $("summary");
  summary.textContent = "";
  if (running) {
    summary.append(bilingual("span", "", `已完成 ${view.checks.length} 项…`, `${view.checks.length} checks done…`));
  } else if (view.report) {
    const counts = { pass: 0, warn: 0, fail: 0, skipped: 0 };
    for (const c of view.report.checks) counts[c.outcome] += 1;
    const overall = counts.fail ? "fail" : counts.warn ? "warn" : "pass";
    summary.append(bilingual(
      "span", overall,
      `总体结果：${OUTCOME[overall][0]}（通过 ${counts.pass}、警告 ${counts.warn}、失败 ${counts.fail}、未执行 ${counts.skipped}）`,
      `overall: ${OUTCOME[overall][1]}`,
    ));
  }

  const list = $("checks");
  list.textContent = "";
  const checks = view.report ? view.report.checks : view.checks;
  // Failures first, then warnings, so the work to do is at the top.
  const rank = { fail: 0, warn: 1, pass: 2, skipped: 3 };
  const sorted = [...checks].sort((a, b) => rank[a.outcome] - rank[b.outcome]);
  for (const c of sorted) {
    const li = el("li", { class: c.outcome });
    const head = el("div", { class: "head" });
    const name = names[c.id] || [c.id, ""];
    head.append(bilingual("span", "name", name[0], name[1]));
    head.append(bilingual("span", "outcome", OUTCOME[c.outcome][0], OUTCOME[c.outcome][1]));
    li.append(head);
    li.append(bilingual("p", "detail", c.detail.zh, c.detail.en));
    if (c.remedy) li.append(bilingual("p", "remedy", `处理：${c.remedy.zh}`, `Remedy: ${c.remedy.en}`));
    list.append(li);
  }

  const upload = $("upload");
  upload.textContent = "";
  if (view.upload && view.upload.state === "filed") {
    upload.append(bilingual("span", "", `巡检记录已上传（#${view.upload.receipt.id}）`, "inspection record filed"));
  } else if (view.upload && view.upload.state === "failed") {
    // The message is the agent's, Chinese and English already.
    upload.append(el("span", { text: view.upload.message }));
  } else if (view.report && view.running) {
    upload.append(bilingual("span", "", "正在上传巡检记录…", "filing the inspection record…"));
  }
}

// --- wiring ------------------------------------------------------------------------------------

buildKeypad();
$("run").addEventListener("click", start);
$("back").addEventListener("click", () => { window.location.href = "/kiosk"; });
$("logout").addEventListener("click", async () => {
  await api("POST", "/api/technician/logout");
  show(["login"]);
});
load();
