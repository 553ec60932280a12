// The public booking page: choose a category, a day and a slot, give name and mobile number,
// confirm with the SMS code, get the booking code and its QR. Also look up, cancel and move a
// booking by its code and the mobile number. Everything from the relay is inserted as text.
import { el, request } from "/assets/shared/common.js";

const $ = (id) => document.getElementById(id);
const API = "/api/v1/public";
const WEEKDAYS = ["周日", "周一", "周二", "周三", "周四", "周五", "周六"];

const state = {
  point: null,
  category: null,
  slots: [],
  day: null,
  slot: null,
  booking: null, // the booking shown, with the mobile number it was found by
  mobile: "",
  rescheduling: false,
};

function show(id, visible) {
  $(id).hidden = !visible;
}

function say(text, ok = false) {
  const m = $("message");
  m.textContent = text || "";
  m.className = ok ? "message ok" : "message";
  m.hidden = !text;
  if (text) m.scrollIntoView({ block: "nearest" });
}

function failure(answer) {
  return (answer.data && answer.data.message) || `请求失败（${answer.status}），请稍后再试`;
}

/** Shanghai date parts of an instant. */
function parts(ms) {
  const f = new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "numeric", day: "numeric",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", weekday: "short",
  });
  const p = {};
  for (const { type, value } of f.formatToParts(new Date(ms))) p[type] = value;
  const wd = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(p.weekday);
  return { key: `${p.year}-${p.month}-${p.day}`, month: Number(p.month), day: Number(p.day), time: `${p.hour}:${p.minute}`, weekday: WEEKDAYS[wd] };
}

async function start() {
  const id = decodeURIComponent(location.pathname.replace(/^\/book\/?/, "").split("/")[0] || "");
  if (!id) return listPoints();
  const answer = await request(`${API}/appointment-points/${encodeURIComponent(id)}`);
  if (!answer.ok) {
    say(failure(answer));
    return listPoints();
  }
  state.point = answer.data.point;
  $("point-name").textContent = state.point.name;
  document.title = `远程办事预约 · ${state.point.name}`;
  const list = $("category-list");
  list.replaceChildren();
  if (answer.data.categories.length === 0) {
    list.append(el("p", { class: "empty", text: "该服务点暂无可预约的事项" }));
  }
  for (const c of answer.data.categories) {
    list.append(el("button", { type: "button", "aria-pressed": "false", "data-category": c.id, text: c.name, onclick: () => chooseCategory(c) }));
  }
  show("step-category", true);
}

async function listPoints() {
  const answer = await request(`${API}/appointment-points`);
  if (!answer.ok) return say(failure(answer));
  const list = $("point-list");
  list.replaceChildren();
  if (answer.data.points.length === 0) list.append(el("li", { class: "empty", text: "暂无接受预约的服务点" }));
  for (const p of answer.data.points) {
    list.append(el("li", {}, el("a", { href: `/book/${encodeURIComponent(p.id)}`, text: p.name })));
  }
  show("points", true);
}

function press(container, current) {
  for (const b of container.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === current));
}

async function chooseCategory(category) {
  say("");
  state.category = category;
  press($("category-list"), [...$("category-list").querySelectorAll("button")].find((b) => b.dataset.category === category.id));
  await loadSlots();
  show("step-slot", true);
  $("slot-title").focus?.();
}

async function loadSlots() {
  const categoryId = state.rescheduling ? state.booking.category_id : state.category.id;
  const pointId = state.rescheduling ? state.booking.point_id : state.point.id;
  const answer = await request(`${API}/appointment-points/${encodeURIComponent(pointId)}/slots?category=${encodeURIComponent(categoryId)}`);
  if (!answer.ok) return say(failure(answer));
  state.slots = answer.data.slots;
  const days = [...new Set(state.slots.map((s) => parts(s.start_ms).key))];
  if (!days.includes(state.day)) state.day = days[0] || null;
  const dayList = $("day-list");
  dayList.replaceChildren();
  for (const d of days) {
    const first = parts(state.slots.find((s) => parts(s.start_ms).key === d).start_ms);
    const b = el("button", { type: "button", "aria-pressed": String(d === state.day), text: `${first.month}月${first.day}日 ${first.weekday}`, onclick: () => { state.day = d; press(dayList, b); drawSlots(); } });
    dayList.append(b);
  }
  drawSlots();
}

function drawSlots() {
  const list = $("slot-list");
  list.replaceChildren();
  const todays = state.slots.filter((s) => parts(s.start_ms).key === state.day);
  if (todays.length === 0) list.append(el("p", { class: "empty", text: "近7天没有可预约的时段" }));
  for (const s of todays) {
    const label = `${parts(s.start_ms).time}-${parts(s.end_ms).time}`;
    const full = s.left === 0;
    const b = el("button", { type: "button", "aria-pressed": "false", disabled: full ? "" : null, "data-start": String(s.start_ms), "aria-label": `${label}，${full ? "已约满" : `剩余${s.left}个`}` },
      label, el("small", { text: full ? "已约满" : `剩余 ${s.left}` }));
    b.addEventListener("click", () => chooseSlot(s, b));
    list.append(b);
  }
}

async function chooseSlot(slot, button) {
  say("");
  state.slot = slot;
  press($("slot-list"), button);
  const p = parts(slot.start_ms);
  const text = `${p.month}月${p.day}日 ${p.weekday} ${p.time}-${parts(slot.end_ms).time}`;
  if (state.rescheduling) {
    const answer = await request(`${API}/appointments/reschedule`, { body: { code: state.booking.code, mobile: state.mobile, slot_start_ms: slot.start_ms } });
    if (!answer.ok) return say(failure(answer));
    state.rescheduling = false;
    showBooking(answer.data, "改约成功");
    return;
  }
  $("chosen").textContent = `${state.category.name} · ${text}`;
  show("step-form", true);
  $("name").focus();
}

let resendTimer = null;

async function sendCode() {
  say("");
  const mobile = $("mobile").value.trim();
  const answer = await request(`${API}/appointments/code`, { body: { mobile } });
  if (!answer.ok) return say(failure(answer));
  say(`验证码已发送至手机，${Math.round(answer.data.valid_secs / 60)}分钟内有效`, true);
  let left = answer.data.resend_after_secs;
  const button = $("send-code");
  button.disabled = true;
  clearInterval(resendTimer);
  const tick = () => {
    if (left <= 0) {
      clearInterval(resendTimer);
      button.disabled = false;
      button.textContent = "重新获取";
      return;
    }
    button.textContent = `${left}秒后重新获取`;
    left -= 1;
  };
  tick();
  resendTimer = setInterval(tick, 1000);
  $("code").focus();
}

async function submit(event) {
  event.preventDefault();
  say("");
  const mobile = $("mobile").value.trim();
  const answer = await request(`${API}/appointments`, {
    body: {
      point_id: state.point.id,
      category_id: state.category.id,
      slot_start_ms: state.slot.start_ms,
      name: $("name").value,
      mobile,
      code: $("code").value.trim(),
    },
  });
  if (!answer.ok) {
    if (answer.data && answer.data.code === "slot_full") await loadSlots();
    return say(failure(answer));
  }
  state.mobile = mobile;
  showBooking(answer.data, "预约成功");
}

function showBooking(b, title) {
  state.booking = b;
  for (const id of ["points", "step-category", "step-slot", "step-form"]) show(id, false);
  $("done-title").textContent = title;
  $("booking-code").textContent = b.code;
  const live = b.state === "booked";
  $("qr").hidden = !live;
  if (live) $("qr").src = `${API}/qr/${encodeURIComponent(b.code)}`;
  const states = { booked: "已预约", cancelled: "已取消", checked_in: "已签到", no_show: "已过期未签到" };
  const details = $("booking-details");
  details.replaceChildren();
  for (const [k, v] of [["服务点", b.point_name], ["事项", b.category_name], ["时间", b.slot_text], ["姓名", b.name_masked], ["手机", b.mobile_masked], ["状态", states[b.state] || b.state]]) {
    details.append(el("dt", { text: k }), el("dd", { text: v }));
  }
  $("cancel").hidden = !live;
  $("reschedule").hidden = !live;
  show("done", true);
  $("done-title").scrollIntoView({ block: "start" });
}

async function cancel() {
  // Asked twice on the page itself (a browser dialog is easy to dismiss by mistake).
  const button = $("cancel");
  if (button.dataset.armed !== "1") {
    button.dataset.armed = "1";
    button.textContent = "确定取消？再点一次";
    return;
  }
  button.dataset.armed = "";
  button.textContent = "取消预约";
  const answer = await request(`${API}/appointments/cancel`, { body: { code: state.booking.code, mobile: state.mobile } });
  if (!answer.ok) return say(failure(answer));
  showBooking(answer.data, "预约已取消");
  say("预约已取消", true);
}

async function reschedule() {
  say("请选择新的时间");
  state.rescheduling = true;
  await loadSlots();
  show("step-slot", true);
  $("step-slot").scrollIntoView({ block: "start" });
}

async function lookup(event) {
  event.preventDefault();
  say("");
  const mobile = $("lookup-mobile").value.trim();
  const answer = await request(`${API}/appointments/lookup`, { body: { code: $("lookup-code").value.trim(), mobile } });
  if (!answer.ok) return say(failure(answer));
  state.mobile = mobile;
  state.rescheduling = false;
  showBooking(answer.data, "我的预约");
}

$("send-code").addEventListener("click", sendCode);
$("book-form").addEventListener("submit", submit);
$("cancel").addEventListener("click", cancel);
$("reschedule").addEventListener("click", reschedule);
$("lookup-form").addEventListener("submit", lookup);
start();
