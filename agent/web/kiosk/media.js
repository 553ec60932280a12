// The video of the kiosk screen: the clerk large in #clerk-video, the resident small in
// #self-view. The agent's media work owns this file; the page calls only these hooks.
//
//   window.kioskMedia.sessionStarted(ticket)  the screen shows the session (containers visible)
//   window.kioskMedia.sessionEnded()          the session screen is left
//   window.kioskMedia.stats()                 what is shown, for tests and technicians
//
// How the pictures get here: the page opens a WebRTC connection to the agent itself, on
// loopback (POST /api/media/screen with the offer; the agent answers). Over it the agent
// forwards the clerk's video exactly as the relay sent it, and the kiosk camera's own
// encoded frames for the self-view: nothing is decoded or re-encoded on the way, this
// browser decodes. The connection is opened when the page loads, so a call only starts the
// frames; it is re-opened (with a growing pause) whenever it fails or the agent restarts.
// There is no audio here: the clerk is heard through the agent's own playback, which its
// echo canceller listens to.
//
// A picture whose frames stop (no session, the clerk's camera off, a lost connection) is
// hidden after STALL_MS and the container's label shows again; `data-live` on each container
// says which state it is in, for the page's styles.
'use strict';

(function () {
  const OFFER_URL = '/api/media/screen';
  const OFFER_TIMEOUT_MS = 10000;
  const GATHER_MS = 1000;
  const STATS_EVERY_MS = 500;
  const STALL_MS = 1500;
  const DISCONNECTED_GRACE_MS = 3000;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 10000;

  const pictures = {
    clerk: { container: document.getElementById('clerk-video'), mirror: false },
    self: { container: document.getElementById('self-view'), mirror: true },
  };
  const s = {
    pc: null,
    generation: 0,
    mids: {},
    backoff: RETRY_MIN_MS,
    retry: null,
    graceTimer: null,
    inSession: false,
    connections: 0,
  };

  for (const [name, p] of Object.entries(pictures)) {
    p.name = name;
    p.framesDecoded = 0;
    p.lastProgress = 0;
    p.live = false;
    p.width = 0;
    p.height = 0;
    if (!p.container) continue;
    const v = document.createElement('video');
    v.autoplay = true;
    v.muted = true;
    v.playsInline = true;
    v.hidden = true;
    v.dataset.picture = name;
    // The resident sees themselves as in a mirror. (CSSOM, not an inline style attribute.)
    if (p.mirror) v.style.transform = 'scaleX(-1)';
    p.container.append(v);
    p.container.dataset.live = 'false';
    p.video = v;
  }

  function schedule(reason) {
    if (s.retry) return;
    const wait = s.backoff;
    s.backoff = Math.min(s.backoff * 2, RETRY_MAX_MS);
    s.retry = setTimeout(() => {
      s.retry = null;
      connect().catch((e) => { console.warn('kiosk video:', e && e.message); schedule('error'); });
    }, wait);
    console.info(`kiosk video: reconnecting in ${wait} ms (${reason})`);
  }

  function closePeer() {
    if (s.pc) {
      s.pc.ontrack = null;
      s.pc.onconnectionstatechange = null;
      try { s.pc.close(); } catch (_) { /* already closed */ }
    }
    s.pc = null;
    clearTimeout(s.graceTimer);
  }

  async function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return;
    await new Promise((resolve) => {
      const done = () => { clearTimeout(t); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const t = setTimeout(done, GATHER_MS);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async function connect() {
    const generation = ++s.generation;
    closePeer();
    const pc = new RTCPeerConnection({ iceServers: [] });
    s.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      const mid = e.transceiver && e.transceiver.mid;
      const name = mid === s.mids.clerk ? 'clerk' : mid === s.mids.self ? 'self' : null;
      const p = name && pictures[name];
      if (!p || !p.video) return;
      // Show frames as soon as they are decoded: this link is loopback, and the clerk's
      // video was already buffered once, at the relay leg.
      if ('jitterBufferTarget' in e.receiver) e.receiver.jitterBufferTarget = 0;
      p.video.srcObject = new MediaStream([e.track]);
      p.video.play().catch(() => { /* autoplay of muted video is allowed; retried on frames */ });
    };
    pc.onconnectionstatechange = () => {
      if (generation !== s.generation) return;
      const state = pc.connectionState;
      clearTimeout(s.graceTimer);
      if (state === 'connected') {
        s.backoff = RETRY_MIN_MS;
        s.connections += 1;
      } else if (state === 'failed' || state === 'closed') {
        schedule(state);
      } else if (state === 'disconnected') {
        s.graceTimer = setTimeout(() => {
          if (generation === s.generation && pc.connectionState !== 'connected') schedule('disconnected');
        }, DISCONNECTED_GRACE_MS);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch(OFFER_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sdp: pc.localDescription.sdp }),
      signal: AbortSignal.timeout(OFFER_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`the agent refused the screen offer (${response.status})`);
    const answer = await response.json();
    if (generation !== s.generation) return;
    s.mids = { clerk: answer.clerk_mid, self: answer.self_mid };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  }

  async function sample() {
    const pc = s.pc;
    if (!pc) return;
    const report = await pc.getStats();
    const now = performance.now();
    const byMid = {};
    report.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') byMid[r.mid] = r; });
    for (const p of Object.values(pictures)) {
      const r = byMid[s.mids[p.name]];
      const decoded = r ? r.framesDecoded || 0 : 0;
      if (decoded > p.framesDecoded) p.lastProgress = now;
      p.framesDecoded = decoded;
      p.width = r ? r.frameWidth || 0 : 0;
      p.height = r ? r.frameHeight || 0 : 0;
      const live = p.lastProgress > 0 && now - p.lastProgress < STALL_MS;
      if (live !== p.live) {
        p.live = live;
        if (p.video) {
          p.video.hidden = !live;
          if (live) p.video.play().catch(() => {});
        }
        if (p.container) p.container.dataset.live = String(live);
      }
    }
  }

  setInterval(() => { sample().catch(() => {}); }, STATS_EVERY_MS);
  connect().catch((e) => { console.warn('kiosk video:', e && e.message); schedule('error'); });

  window.kioskMedia = {
    sessionStarted(/* ticket */) {
      s.inSession = true;
      const state = s.pc ? s.pc.connectionState : 'closed';
      if (state === 'failed' || state === 'closed') {
        clearTimeout(s.retry);
        s.retry = null;
        s.backoff = RETRY_MIN_MS;
        connect().catch(() => schedule('error'));
      }
    },
    sessionEnded() {
      s.inSession = false;
    },
    stats() {
      const picture = (p) => ({
        framesDecoded: p.framesDecoded, live: p.live, width: p.width, height: p.height,
      });
      return {
        connection: s.pc ? s.pc.connectionState : 'closed',
        connections: s.connections,
        inSession: s.inSession,
        clerk: picture(pictures.clerk),
        self: picture(pictures.self),
      };
    },
  };
})();
