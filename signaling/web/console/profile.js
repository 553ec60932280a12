// 我的资料: what residents see of the clerk on the kiosk while they are served (综合窗口工作人员
// 信息公开: 岗位、照片、工号). A clerk sets their own post, staff number and photo; a supervisor
// may set them for a clerk of the centre (chosen among the clerks at the centre's windows, or
// by their staff record id). The relay decides who may change whom; this page only asks.
//
// PUT /api/v1/staff/{id}/card {post, staff_number}; PUT /api/v1/staff/{id}/photo with the
// image as the body; GET …/profile and …/photo to show what is stored. A photo that is not
// JPEG or PNG, or larger than 64 KB, is refused here with the reason before it is sent, and
// the relay's own refusal (it looks at the bytes, not the name) is shown as it comes.

import { el, fetchJson } from "/assets/shared/common.js";

const MAX_PHOTO_BYTES = 64 * 1024;
const PHOTO_TYPES = ["image/jpeg", "image/png"];

let api = null;
let ui = null;
let previewUrl = null;

export function init(a) {
  api = a;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("./profile.css", import.meta.url).href;
  document.head.append(link);
  build();
}

export function onWelcome() {
  ui.open.hidden = false;
  if (!ui.panel.hidden) fillClerks();
}

const isSupervisor = () => (api.app.clerk?.roles || []).includes("supervisor");

function status(node, text, kind) {
  node.textContent = text || "";
  node.className = "profile-status" + (kind ? " " + kind : "");
}

// The clerks this person may choose: themself, and for a supervisor the clerks signed in at
// the centre's windows now.
function fillClerks() {
  const me = api.app.clerk;
  if (!me) return;
  const seen = new Map([[me.id, `本人（${me.display_name}）`]]);
  if (isSupervisor()) {
    for (const w of api.app.windows.values()) {
      if (w.clerk_id && !seen.has(w.clerk_id)) seen.set(w.clerk_id, `${w.clerk_name || w.clerk_id}（${w.name}）`);
    }
  }
  const current = ui.who.value;
  ui.who.replaceChildren(...[...seen].map(([id, label]) => el("option", { value: id, text: label })));
  if (seen.has(current)) ui.who.value = current;
  ui.whoRow.hidden = !isSupervisor();
}

const target = () => (ui.other.value.trim() || ui.who.value);
const base = () => `/api/v1/staff/${encodeURIComponent(target())}`;

async function load() {
  status(ui.cardStatus, "");
  status(ui.photoStatus, "");
  ui.file.value = "";
  try {
    const p = await fetchJson(`${base()}/profile`);
    ui.name.textContent = p.name;
    ui.post.value = p.post;
    ui.number.value = p.staff_number;
    await showStoredPhoto(p.has_photo);
  } catch (e) {
    ui.name.textContent = "";
    status(ui.cardStatus, e.status === 404 ? "找不到这位工作人员（只能设置本中心的工作人员）" : e.message, "bad");
  }
}

function setPreview(url) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = url;
  ui.preview.hidden = !url;
  if (url) ui.preview.src = url; else ui.preview.removeAttribute("src");
}

async function showStoredPhoto(has) {
  if (!has) { setPreview(null); ui.previewNote.textContent = "尚未上传照片"; return; }
  try {
    const r = await fetch(`${base()}/photo`, { credentials: "same-origin", signal: AbortSignal.timeout(15000) });
    if (!r.ok) throw new Error(String(r.status));
    setPreview(URL.createObjectURL(await r.blob()));
    ui.previewNote.textContent = "当前照片";
  } catch (_) {
    setPreview(null);
    ui.previewNote.textContent = "照片暂时无法显示";
  }
}

async function saveCard(ev) {
  ev.preventDefault();
  status(ui.cardStatus, "正在保存…");
  try {
    const p = await fetchJson(`${base()}/card`, { method: "PUT", body: { post: ui.post.value.trim(), staff_number: ui.number.value.trim() } });
    ui.post.value = p.post;
    ui.number.value = p.staff_number;
    status(ui.cardStatus, "已保存。居民在终端上会看到新的岗位和工号。", "ok");
  } catch (e) {
    status(ui.cardStatus, e.message, "bad");
  }
}

// A chosen file: checked here first so the clerk hears the reason at once; shown as a preview
// before it is sent.
function chosen() {
  const file = ui.file.files[0];
  ui.upload.disabled = true;
  if (!file) { status(ui.photoStatus, ""); return; }
  if (!PHOTO_TYPES.includes(file.type)) {
    status(ui.photoStatus, "只能上传 JPEG 或 PNG 照片（.jpg / .png）。", "bad");
    return;
  }
  if (file.size > MAX_PHOTO_BYTES) {
    status(ui.photoStatus, `照片太大（${Math.ceil(file.size / 1024)} KB），最大 64 KB。请先缩小或裁剪后再上传。`, "bad");
    return;
  }
  setPreview(URL.createObjectURL(file));
  ui.previewNote.textContent = "将要上传的照片";
  status(ui.photoStatus, "请确认照片后点“上传照片”。");
  ui.upload.disabled = false;
}

async function upload() {
  const file = ui.file.files[0];
  if (!file) return;
  ui.upload.disabled = true;
  status(ui.photoStatus, "正在上传…");
  let r;
  try {
    r = await fetch(`${base()}/photo`, {
      method: "PUT", body: file, credentials: "same-origin",
      headers: { "content-type": "application/octet-stream" }, signal: AbortSignal.timeout(30000),
    });
  } catch (_) {
    status(ui.photoStatus, "无法连接服务器，照片没有上传，请重试。", "bad");
    ui.upload.disabled = false;
    return;
  }
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const reason = (data && data.message) || (r.status === 413 ? "照片太大，最大 64 KB" : `上传失败（HTTP ${r.status}）`);
    status(ui.photoStatus, `照片没有上传：${reason}`, "bad");
    return;
  }
  status(ui.photoStatus, "照片已上传。居民在终端上会看到这张照片。", "ok");
  ui.file.value = "";
  await showStoredPhoto(true);
}

function build() {
  ui = {};
  ui.open = el("button", { type: "button", id: "profile-open", hidden: "", onclick: toggle }, "我的资料");
  const who = document.querySelector(".who");
  who.insertBefore(ui.open, document.getElementById("logout"));

  ui.who = el("select", { id: "profile-clerk", onchange: () => { ui.other.value = ""; load(); } });
  ui.other = el("input", { id: "profile-other", placeholder: "或输入工作人员编号", autocomplete: "off", onchange: load });
  ui.whoRow = el("div", { class: "profile-row" },
    el("label", {}, "为谁设置 ", ui.who), el("label", {}, "编号 ", ui.other));
  ui.name = el("strong", { id: "profile-name" });
  ui.post = el("input", { id: "profile-post", maxlength: "30", required: "" });
  ui.number = el("input", { id: "profile-number", maxlength: "20", required: "", pattern: "[A-Za-z0-9-]{1,20}", title: "字母、数字或连字符，最多 20 位" });
  ui.cardStatus = el("p", { id: "profile-card-status", class: "profile-status", role: "status", "aria-live": "polite" });
  const cardForm = el("form", { id: "profile-card", class: "profile-form", onsubmit: saveCard },
    el("label", {}, "岗位 ", ui.post),
    el("label", {}, "工号 ", ui.number),
    el("button", { type: "submit", class: "primary" }, "保存岗位和工号"),
    ui.cardStatus);

  ui.file = el("input", { type: "file", id: "profile-file", accept: "image/jpeg,image/png", onchange: chosen });
  ui.upload = el("button", { type: "button", id: "profile-upload", class: "primary", disabled: "", onclick: upload }, "上传照片");
  ui.preview = el("img", { id: "profile-preview", class: "profile-preview", alt: "工作人员照片预览", hidden: "" });
  ui.previewNote = el("p", { id: "profile-preview-note", class: "hint" });
  ui.photoStatus = el("p", { id: "profile-photo-status", class: "profile-status", role: "status", "aria-live": "polite" });
  const photo = el("div", { class: "profile-photo" },
    el("div", {}, ui.preview, ui.previewNote),
    el("div", { class: "profile-photo-tools" },
      el("label", {}, "照片（JPEG 或 PNG，最大 64 KB，证件照竖版为宜） ", ui.file),
      ui.upload, ui.photoStatus));

  ui.panel = el("section", { id: "profile-view", class: "card profile", "aria-labelledby": "profile-title", hidden: "" },
    el("div", { class: "profile-head" },
      el("h2", { id: "profile-title", text: "我的资料" }),
      el("button", { type: "button", id: "profile-close", class: "quiet", onclick: toggle }, "关闭")),
    el("p", { class: "hint", text: "居民在终端上看到为其服务的工作人员的姓名、岗位、工号和照片。" }),
    ui.whoRow,
    el("p", {}, "姓名：", ui.name),
    cardForm, photo);
  document.querySelector("main").prepend(ui.panel);
}

function toggle() {
  ui.panel.hidden = !ui.panel.hidden;
  if (!ui.panel.hidden) {
    fillClerks();
    load();
    ui.post.focus();
  }
}
