// Reads the capture-time stamp that the kiosk's simulated camera draws into every frame
// (agent/src/media/timecode.rs) back out of a <video> element, frame by frame, and records
// how long after capture each frame was shown: glass-to-glass latency.
//
// The stamp: an 8×8 grid of black/white cells in the top-left corner, 8 px cells for
// pictures under 360 lines and 16 px from 360 up; read row by row, the 64 bits are 48 bits
// of Unix microseconds (modulo 2^48) and a CRC-16/CCITT-FALSE over those six bytes, so a
// frame without a stamp (or a damaged one) reads as nothing rather than as a wrong time.
// Each cell is judged by the mean luma of its middle half, as the Rust reader does.
//
// Usage (in the page): window.rvwTimecode.watch(videoElement) starts recording;
// window.rvwTimecode.samples() → [{ capturedMs, shownMs, ageMs }]; .unreadable counts frames
// without a valid stamp. Capture and display clocks are the same machine's wall clock.
(() => {
  const GRID = 8;
  const PERIOD = 2 ** 48;

  function crc16(bytes) {
    let crc = 0xffff;
    for (const b of bytes) {
      crc ^= b << 8;
      for (let i = 0; i < 8; i++) {
        crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
      }
    }
    return crc;
  }

  // RGBA of the stamp's square → the capture time in Unix microseconds, or null.
  function decode(rgba, side, cell, nowMicros) {
    const margin = cell / 4;
    const inner = cell - 2 * margin;
    const bits = [];
    for (let index = 0; index < GRID * GRID; index++) {
      const cy = Math.floor(index / GRID);
      const cx = index % GRID;
      let sum = 0;
      for (let y = 0; y < inner; y++) {
        for (let x = 0; x < inner; x++) {
          const px = ((cy * cell + margin + y) * side + (cx * cell + margin + x)) * 4;
          sum += 0.299 * rgba[px] + 0.587 * rgba[px + 1] + 0.114 * rgba[px + 2];
        }
      }
      bits.push(sum / (inner * inner) >= 128 ? 1 : 0);
    }
    const bytes = [];
    for (let i = 0; i < 8; i++) {
      let byte = 0;
      for (let j = 0; j < 8; j++) byte = (byte << 1) | bits[i * 8 + j];
      bytes.push(byte);
    }
    const crc = (bytes[6] << 8) | bytes[7];
    if (crc16(bytes.slice(0, 6)) !== crc) return null;
    let value = 0;
    for (let i = 0; i < 6; i++) value = value * 256 + bytes[i];
    // The candidate nearest the reader's clock (the value wraps every 8.9 years).
    const base = Math.floor(nowMicros / PERIOD) * PERIOD;
    let best = null;
    for (const candidate of [base - PERIOD + value, base + value, base + PERIOD + value]) {
      if (best === null || Math.abs(candidate - nowMicros) < Math.abs(best - nowMicros)) best = candidate;
    }
    return best;
  }

  const state = { samples: [], unreadable: 0, max: 5000 };
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });

  function readFrame(video, shownMs) {
    const h = video.videoHeight;
    const w = video.videoWidth;
    if (!w || !h) return;
    const cell = h < 360 ? 8 : 16;
    const side = GRID * cell;
    if (w < side || h < side) return;
    canvas.width = side;
    canvas.height = side;
    ctx.drawImage(video, 0, 0, side, side, 0, 0, side, side);
    const rgba = ctx.getImageData(0, 0, side, side).data;
    const micros = decode(rgba, side, cell, shownMs * 1000);
    if (micros === null) {
      state.unreadable += 1;
      return;
    }
    const capturedMs = micros / 1000;
    if (state.samples.length < state.max) {
      state.samples.push({ capturedMs, shownMs, ageMs: shownMs - capturedMs });
    }
  }

  window.rvwTimecode = {
    // Records every frame `video` presents from now on.
    watch(video) {
      const onFrame = (_now, meta) => {
        // When the frame is (expected to be) on screen, as wall-clock milliseconds.
        const shownMs = performance.timeOrigin + (meta.expectedDisplayTime || meta.presentationTime || performance.now());
        try { readFrame(video, shownMs); } catch (_) { state.unreadable += 1; }
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    },
    samples() { return state.samples.slice(); },
    get unreadable() { return state.unreadable; },
    clear() { state.samples = []; state.unreadable = 0; },
  };
})();
