// Injected before the console's own scripts: keeps the page's RTCPeerConnections reachable for
// the test (and, when RELAY_ONLY is true, forces ICE through TURN), and offers a compact view
// of getStats per transceiver index of the fixed media layout.
(() => {
  const RELAY_ONLY = false;
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      const c = Object.assign({}, config || {});
      if (RELAY_ONLY) c.iceTransportPolicy = "relay";
      super(c, ...rest);
      window.__pcs.push(this);
    }
  };
  window.__rvwStats = async (pc) => {
    pc = pc || window.__pcs[window.__pcs.length - 1];
    if (!pc) return null;
    const r = await pc.getStats();
    const mids = pc.getTransceivers().map((t) => t.mid);
    const out = { state: pc.connectionState, inbound: {}, outbound: {}, pair: null };
    r.forEach((s) => {
      const i = mids.indexOf(s.mid);
      if (s.type === "inbound-rtp") {
        out.inbound[i] = { kind: s.kind, framesDecoded: s.framesDecoded ?? 0, bytes: s.bytesReceived ?? 0, packets: s.packetsReceived ?? 0, energy: s.totalAudioEnergy ?? 0 };
      }
      if (s.type === "outbound-rtp") {
        out.outbound[i] = { kind: s.kind, bytes: s.bytesSent ?? 0, packets: s.packetsSent ?? 0, frames: s.framesEncoded ?? 0 };
      }
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const p = r.get(s.selectedCandidatePairId);
        const l = p && r.get(p.localCandidateId);
        out.pair = { local: l ? l.candidateType : null, rtt: p ? p.currentRoundTripTime : null };
      }
    });
    return out;
  };
})();
