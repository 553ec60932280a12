// Video and audio of the served kiosk, over WebRTC to the relay's SFU.
//
// Once signed in to a window the console opens one RTCPeerConnection with the five
// transceivers of the relay's fixed layout (protocol/src/media.rs, Slot::ORDER):
//   0 video recvonly  kiosk camera      3 video sendonly  clerk camera
//   1 video recvonly  document preview  4 audio sendonly  clerk microphone
//   2 audio recvonly  kiosk microphone
// It offers, the relay answers (ICE-lite, one UDP port), and the connection stays up while
// the clerk waits, sending nothing: the outgoing tracks are detached (replaceTrack(null))
// until the relay says a session started (media_session), so calling a ticket only switches
// forwarding on. Connection quality comes from getStats; a dropped connection is offered
// again with a fresh peer connection (the relay replaces the old peer). Relay data is
// inserted as text only.

const ORDER = ["kiosk_camera", "kiosk_document", "kiosk_microphone", "clerk_camera", "clerk_microphone"];
const STATS_EVERY_MS = 1000;
const RECONNECT_AFTER_MS = 4000;
const MAX_BACKOFF_MS = 15000;

let api = null;
const ui = {};
const m = {
  iceServers: [],
  pc: null,
  generation: 0,
  starting: false,
  local: null,          // MediaStream from getUserMedia (kept while signed in)
  senders: null,        // { video, audio }
  serving: null,        // ticket id the relay says we receive, or null
  kioskMedia: "none",   // none | connected | lost
  state: "idle",        // idle | connecting | connected | reconnecting | unavailable
  backoff: 1000,
  retryAt: 0,
  lostTimer: null,
  last: null,           // previous stats sample
};

export function init(a) {
  api = a;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("./media.css", import.meta.url).href;
  document.head.append(link);
  buildUi();
  setInterval(tick, 1000);
  setInterval(() => { sampleStats().catch(() => {}); }, STATS_EVERY_MS);
}

export function onWelcome(msg) {
  m.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
  // A new control connection: the relay dropped the peer of the old one.
  closePeer();
  m.serving = null;
  m.kioskMedia = "none";
  m.retryAt = 0;
  m.backoff = 1000;
  render();
  tick();
}

export function onMessage(msg) {
  if (msg.type !== "media_session") return;
  m.serving = msg.ticket_id ?? null;
  m.kioskMedia = msg.kiosk_media ?? "none";
  applySending();
  render();
}

export function onCurrentTicket(_ticket) {
  tick();
  render();
}

// ---------------------------------------------------------------------------------------------

function signedIn() {
  return !!api?.app.windowId && api.app.ws?.readyState === WebSocket.OPEN;
}

function tick() {
  if (!api) return;
  if (!signedIn()) {
    if (m.pc && !api.app.windowId) { closePeer(); setState("idle"); }
    return;
  }
  if (!m.pc && !m.starting && Date.now() >= m.retryAt) start().catch(() => {});
}

async function getLocal() {
  if (m.local) return m.local;
  try {
    m.local = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25, max: 30 } },
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    console.warn("camera/microphone unavailable", e);
    api.message("无法打开本机摄像头或麦克风，居民将看不到/听不到您", "bad");
    m.local = new MediaStream();
  }
  ui.self.srcObject = m.local;
  return m.local;
}

async function start() {
  m.starting = true;
  const gen = ++m.generation;
  setState(m.state === "idle" ? "connecting" : "reconnecting");
  try {
    await getLocal();
    if (gen !== m.generation || !signedIn()) return;
    const pc = new RTCPeerConnection({ iceServers: m.iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    m.pc = pc;
    for (const slot of ORDER) {
      const kind = slot.endsWith("microphone") ? "audio" : "video";
      pc.addTransceiver(kind, { direction: slot.startsWith("kiosk") ? "recvonly" : "sendonly" });
    }
    const t = pc.getTransceivers();
    m.senders = { video: t[3].sender, audio: t[4].sender };
    pc.addEventListener("track", (ev) => attach(pc, ev));
    pc.addEventListener("connectionstatechange", () => onConnectionState(pc, gen));
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await api.request({ type: "media_offer", sdp: pc.localDescription.sdp });
    if (gen !== m.generation) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    applySending();
  } catch (e) {
    console.warn("media offer failed", e);
    if (gen === m.generation) {
      closePeer();
      const disabled = /未启用|not enabled/.test(String(e?.message));
      setState(disabled ? "unavailable" : "reconnecting");
      retryLater(disabled ? 30000 : undefined);
    }
  } finally {
    if (gen === m.generation) m.starting = false;
  }
}

function retryLater(after) {
  m.retryAt = Date.now() + (after ?? m.backoff);
  m.backoff = Math.min(m.backoff * 2, MAX_BACKOFF_MS);
}

function onConnectionState(pc, gen) {
  if (gen !== m.generation || pc !== m.pc) return;
  const s = pc.connectionState;
  clearTimeout(m.lostTimer);
  if (s === "connected") {
    m.backoff = 1000;
    setState("connected");
  } else if (s === "disconnected") {
    setState("reconnecting");
    // ICE may recover by itself; if not, offer again with a fresh connection.
    m.lostTimer = setTimeout(() => { if (m.pc === pc && pc.connectionState !== "connected") restart(); }, RECONNECT_AFTER_MS);
  } else if (s === "failed") {
    setState("reconnecting");
    restart();
  }
}

function restart() {
  closePeer();
  retryLater(0);
  tick();
}

function closePeer() {
  m.generation++;
  m.starting = false;
  clearTimeout(m.lostTimer);
  if (m.pc) {
    try { m.pc.close(); } catch { /* already closed */ }
  }
  m.pc = null;
  m.senders = null;
  m.last = null;
  for (const v of [ui.kiosk, ui.document, ui.kioskAudio]) v.srcObject = null;
}

function attach(pc, ev) {
  const index = pc.getTransceivers().indexOf(ev.transceiver);
  const target = [ui.kiosk, ui.document, ui.kioskAudio][index];
  if (target) target.srcObject = new MediaStream([ev.track]);
}

// Nothing goes out while the clerk is not serving: detached tracks send no RTP at all.
function applySending() {
  if (!m.senders || !m.local) return;
  const on = !!m.serving;
  const video = on ? m.local.getVideoTracks()[0] ?? null : null;
  const audio = on ? m.local.getAudioTracks()[0] ?? null : null;
  m.senders.video.replaceTrack(video).catch((e) => console.warn("video track", e));
  m.senders.audio.replaceTrack(audio).catch((e) => console.warn("audio track", e));
}

// ---------------------------------------------------------------------------------------------
// user interface

function buildUi() {
  const area = document.getElementById("media-area");
  const el = api.el;
  ui.kiosk = el("video", { id: "media-kiosk", autoplay: "", playsinline: "", "aria-label": "居民画面" });
  ui.kiosk.muted = true; // the kiosk's sound plays through ui.kioskAudio
  ui.document = el("video", { id: "media-document", autoplay: "", playsinline: "", "aria-label": "高拍仪预览" });
  ui.document.muted = true;
  ui.self = el("video", { id: "media-self", autoplay: "", playsinline: "", "aria-label": "本人画面" });
  ui.self.muted = true;
  ui.kioskAudio = el("audio", { id: "media-kiosk-audio", autoplay: "" });
  ui.overlay = el("div", { class: "media-overlay", role: "status", "aria-live": "polite" });
  ui.state = el("span", { class: "pill pill-off", id: "media-state" });
  ui.quality = el("span", { class: "media-quality", id: "media-quality" });
  area.replaceChildren(
    el("div", { class: "media-stage" },
      el("div", { class: "media-main" }, ui.kiosk, ui.overlay),
      el("div", { class: "media-side" },
        el("figure", { class: "media-doc" }, ui.document, el("figcaption", { text: "高拍仪预览" })),
        el("figure", { class: "media-self" }, ui.self, el("figcaption", { text: "本人画面" })))),
    el("div", { class: "media-bar" }, ui.state, ui.quality, el("span", { class: "media-rec", text: "● 本次服务全程录音录像" })),
    ui.kioskAudio);
  render();
}

function setState(s) {
  m.state = s;
  render();
}

const STATE_TEXT = {
  idle: ["视频未连接", "off"],
  connecting: ["视频连接中…", "wait"],
  connected: ["视频已连接", "on"],
  reconnecting: ["重新连接中…", "wait"],
  unavailable: ["本中心未启用视频", "off"],
};

function render() {
  if (!ui.state) return;
  const [text, cls] = STATE_TEXT[m.state] ?? STATE_TEXT.idle;
  ui.state.textContent = text;
  ui.state.className = `pill pill-${cls}`;
  const area = document.getElementById("media-area");
  area.dataset.media = m.state;
  area.dataset.serving = m.serving ? "yes" : "no";
  area.dataset.kiosk = m.kioskMedia;
  let overlay = "";
  if (m.state === "reconnecting") overlay = "网络中断，重新连接中…";
  else if (m.state === "unavailable") overlay = "本中心未启用音视频";
  else if (m.serving && m.kioskMedia === "lost") overlay = "居民端视频中断，重新连接中…";
  else if (m.serving && m.kioskMedia === "none") overlay = "正在等待居民端视频…";
  else if (!m.serving && api?.app.windowId) overlay = m.state === "connected" ? "叫号后显示居民画面" : "";
  ui.overlay.textContent = overlay;
  ui.overlay.hidden = !overlay;
  if (!m.serving) ui.quality.textContent = "";
}

// ---------------------------------------------------------------------------------------------
// connection quality

async function sampleStats() {
  const pc = m.pc;
  if (!pc || !m.serving || pc.connectionState !== "connected") return;
  const report = await pc.getStats();
  const mids = pc.getTransceivers().map((t) => t.mid);
  const now = performance.now();
  let rtt = null, inBytes = 0, outBytes = 0, lost = 0, received = 0, video = null;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.currentRoundTripTime != null) rtt = s.currentRoundTripTime;
    if (s.type === "inbound-rtp") {
      inBytes += s.bytesReceived ?? 0;
      lost += s.packetsLost ?? 0;
      received += s.packetsReceived ?? 0;
      if (s.kind === "video" && s.mid === mids[0]) video = s;
    }
    if (s.type === "outbound-rtp") outBytes += s.bytesSent ?? 0;
  });
  const last = m.last;
  m.last = { at: now, inBytes, outBytes, lost, received };
  if (!last) return;
  const secs = (now - last.at) / 1000;
  if (secs <= 0) return;
  const down = Math.max(0, (inBytes - last.inBytes) * 8 / secs / 1000);
  const up = Math.max(0, (outBytes - last.outBytes) * 8 / secs / 1000);
  const dLost = Math.max(0, lost - last.lost);
  const dRecv = Math.max(0, received - last.received);
  const loss = dLost + dRecv > 0 ? (100 * dLost) / (dLost + dRecv) : 0;
  const rttMs = rtt == null ? null : Math.round(rtt * 1000);
  const grade = loss < 2 && (rttMs ?? 0) < 150 ? "良好" : loss < 5 && (rttMs ?? 0) < 300 ? "一般" : "较差";
  const parts = [`网络${grade}`, `往返 ${rttMs ?? "—"} ms`, `丢包 ${loss.toFixed(1)}%`, `下行 ${Math.round(down)} kbps`, `上行 ${Math.round(up)} kbps`];
  if (video?.frameWidth) parts.push(`${video.frameWidth}×${video.frameHeight} ${Math.round(video.framesPerSecond ?? 0)}fps`);
  ui.quality.textContent = parts.join(" · ");
  ui.quality.dataset.grade = grade;
}
