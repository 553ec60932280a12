// A synthetic kiosk in a Chromium tab: it speaks the kiosk protocol on /ws/kiosk with the
// demo kiosk's credential, offers the kiosk's five transceivers (camera, document preview and
// microphone from Chromium's fake devices; the clerk's video and audio received), sends only
// while the relay says so (media_sending), and takes a remote ticket. Placeholders CREDENTIAL
// and CATEGORY are filled in by the test. Evaluates to the ticket number.
(async () => {
  const credential = "CREDENTIAL";
  const split = credential.indexOf(":");
  const device_id = credential.slice(0, split);
  const secret = credential.slice(split + 1);
  const st = (window.kiosk = { sending: false, connected: false, ticket: null, sendingChanges: [] });
  const ws = new WebSocket(`wss://${location.host}/ws/kiosk`);
  let nextId = 1;
  const pending = new Map();
  let senders = [];
  let tracks = [];
  const setSending = (on) => {
    st.sending = on;
    st.sendingChanges.push(on);
    senders.forEach((s, i) => s.replaceTrack(on ? tracks[i] : null));
  };
  const request = (m) => new Promise((resolve, reject) => {
    const request_id = nextId++;
    pending.set(request_id, { resolve, reject });
    ws.send(JSON.stringify({ ...m, request_id }));
  });
  const welcome = await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", protocol_versions: [1], device_id, secret, agent_version: "chromium-test-kiosk" }));
    ws.onclose = () => reject(new Error("kiosk connection closed"));
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "welcome") resolve(m);
      else if (m.request_id != null && pending.has(m.request_id)) {
        const p = pending.get(m.request_id);
        pending.delete(m.request_id);
        if (m.type === "error") p.reject(new Error(m.message)); else p.resolve(m);
      } else if (m.type === "media_sending") setSending(m.sending);
    };
  });
  let seq = 0;
  setInterval(() => ws.send(JSON.stringify({ type: "heartbeat", seq: ++seq })), 10000);
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
  const camera = stream.getVideoTracks()[0];
  tracks = [camera, camera.clone(), stream.getAudioTracks()[0]];
  const pc = new RTCPeerConnection({ iceServers: welcome.ice_servers });
  window.__kioskPc = pc;
  senders = ["video", "video", "audio"].map((k) => pc.addTransceiver(k, { direction: "sendonly" }).sender);
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (ev) => {
    const e = document.createElement(ev.track.kind);
    e.autoplay = true;
    // Video muted; the clerk's audio must play (Chromium measures received audio energy on
    // the playout path; the browser itself runs with --mute-audio).
    e.muted = ev.track.kind === "video";
    e.srcObject = new MediaStream([ev.track]);
    document.body.append(e);
  };
  pc.onconnectionstatechange = () => { st.connected = pc.connectionState === "connected"; };
  await pc.setLocalDescription(await pc.createOffer());
  const answer = await request({ type: "media_offer", sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  setSending(st.sending);
  const taken = await request({ type: "take_ticket", category_id: "CATEGORY" });
  st.ticket = taken.ticket;
  return taken.ticket.number;
})()
