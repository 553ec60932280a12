#!/usr/bin/env python3
"""Writes the seed inputs in corpus/<target>/: small valid inputs of each kind, in the formats
the relay writes and reads (the control messages are the protocol crate's golden frames, the
dumps follow recorder/dump.rs, the JPEGs were made by GStreamer's jpegenc). A unit test in
recorder/dump.rs reads every dump seed back to the end, so they stay valid dumps.

    python3 signaling/fuzz/make_seeds.py   # from the repository root
"""

import base64
import hashlib
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# 64x48 YCbCr and 32x16 grey, `videotestsrc num-buffers=1 ! jpegenc`.
JPEG_COLOUR = base64.b64decode(open(os.path.join(HERE, "seed-colour.jpg.b64")).read())
JPEG_GREY = base64.b64decode(open(os.path.join(HERE, "seed-grey.jpg.b64")).read())


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- control messages (protocol/tests/golden_control.rs, protocol/src/device.rs) -------------
CARD_COMPLETION = (
    '{"type":"device","message":{"type":"completion","request_id":7,"device":"id_card_reader",'
    '"completion_code":"success","name":"IdCard.Read","payload":{"card":{"card_type":"resident",'
    '"name":"张三","gender":"male","nation":{"code":1,"name":"汉"},"birth_date":"1990-01-01",'
    '"address":"上海市示例区示例路1号","id_number":"11010519491231002X",'
    '"issuing_authority":"上海市公安局示例分局","valid_from":"2020-01-01","valid_until":"long_term"},'
    '"photo_upload_id":"up-1"}}}'
)
for name, text in [
    ("kiosk-hello", '{"type":"hello","protocol_versions":[1],"device_id":"kiosk-01","secret":"s3cret","agent_version":"0.1.0"}'),
    ("kiosk-take-ticket", '{"type":"take_ticket","request_id":3,"category_id":"social"}'),
    ("kiosk-card-read", CARD_COMPLETION),
    ("kiosk-evaluation", '{"type":"evaluation","request_id":6,"evaluation":{"evaluation_id":"k1-0123abcd","ticket_id":"c1-20780-7","level":"dissatisfied","reasons":["too_slow","unclear"],"evaluated_ms":1795000000000}}'),
    ("clerk-hello", '{"type":"hello","protocol_versions":[1]}'),
    ("clerk-call-next", '{"type":"queue","request_id":2,"op":{"op":"call_next"}}'),
    ("clerk-transfer", '{"type":"queue","request_id":3,"op":{"op":"transfer","ticket_id":"t1","category_id":"social","window_id":null}}'),
    ("clerk-pause", '{"type":"queue","request_id":5,"op":{"op":"pause_window","reason":"away","minutes":15}}'),
]:
    write("control_message", name, text)

# --- media offers: the five sections in the slot order, then a data channel ------------------
def offer(sections, with_app=True):
    lines = [
        "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
        "a=group:BUNDLE " + " ".join(str(i) for i in range(len(sections) + int(with_app))),
        "a=msid-semantic: WMS",
    ]
    for i, kind in enumerate(sections):
        if kind == "video":
            lines += [
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102",
                "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
                "a=ice-ufrag:Zx3q", "a=ice-pwd:b6XTvFXzQ3hXbF5xnhyKhW0m",
                "a=fingerprint:sha-256 5B:D3:8E:66:0E:7D:D3:F3:8E:E6:80:28:19:FC:55:AD:58:5D:B9:3D:A8:DE:45:4A:E7:87:02:F8:A3:0E:1A:6D",
                "a=setup:actpass", f"a=mid:{i}", "a=sendrecv", "a=rtcp-mux", "a=rtcp-rsize",
                "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 goog-remb", "a=rtcp-fb:96 nack",
                "a=rtcp-fb:96 nack pli", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
                "a=rtpmap:102 H264/90000",
                "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                f"a=ssrc:{1000 + i} cname:kiosk",
            ]
        else:
            lines += [
                "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
                "a=ice-ufrag:Zx3q", "a=ice-pwd:b6XTvFXzQ3hXbF5xnhyKhW0m",
                "a=fingerprint:sha-256 5B:D3:8E:66:0E:7D:D3:F3:8E:E6:80:28:19:FC:55:AD:58:5D:B9:3D:A8:DE:45:4A:E7:87:02:F8:A3:0E:1A:6D",
                "a=setup:actpass", f"a=mid:{i}", "a=sendrecv", "a=rtcp-mux",
                "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
                f"a=ssrc:{1000 + i} cname:kiosk",
            ]
    if with_app:
        lines += [
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:Zx3q", "a=ice-pwd:b6XTvFXzQ3hXbF5xnhyKhW0m",
            "a=fingerprint:sha-256 5B:D3:8E:66:0E:7D:D3:F3:8E:E6:80:28:19:FC:55:AD:58:5D:B9:3D:A8:DE:45:4A:E7:87:02:F8:A3:0E:1A:6D",
            "a=setup:actpass", f"a=mid:{len(sections)}", "a=sctp-port:5000",
        ]
    return "\r\n".join(lines) + "\r\n"

LAYOUT = ["video", "video", "audio", "video", "audio"]
write("media_offer", "kiosk-offer", offer(LAYOUT))
write("media_offer", "offer-without-data-channel", offer(LAYOUT, with_app=False))
write("media_offer", "offer-four-sections", offer(LAYOUT[:4], with_app=False))

# --- RTP payloads: first byte picks codec (n % 3) and packet length (n >> 2) ----------------
def rtp(codec, packet_len, payload):
    return bytes([(packet_len << 2) | codec]) + payload

VP8_KEY = bytes([0x90, 0x80, 0x81, 0x02, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00])
VP8_DELTA = bytes([0x90, 0xE0, 0x81, 0x03, 0x11, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])
write("rtp_payload", "vp8-key-then-delta", rtp(0, 14, VP8_KEY + VP8_DELTA))
STAP_A = bytes([0x78, 0x00, 0x04, 0x67, 0x42, 0xC0, 0x1F, 0x00, 0x02, 0x68, 0xCE])
FU_A = bytes([0x7C, 0x85, 0x88, 0x84, 0x00, 0x33])
write("rtp_payload", "h264-stap-a-and-fu-a", rtp(1, 11, STAP_A + FU_A[:6] + bytes(5)))
write("rtp_payload", "opus", rtp(2, 20, bytes([0x78]) + bytes(range(40))))

# --- recorder dumps (recorder/dump.rs) -------------------------------------------------------
def dump(session_id, records):
    sid = session_id.encode()
    out = b"RVWDUMP1" + struct.pack(">HQH", 8 + 2 + len(sid), 1_765_000_000_000_000, len(sid)) + sid
    for (t, slot, codec, marker, pt, ssrc, seq, ts, payload) in records:
        body = struct.pack(">QBBBBIQI", t, slot, codec, marker, pt, ssrc, seq, ts) + payload
        out += struct.pack(">II", len(body), zlib.crc32(body)) + body
    return out

OPUS, VP8, H264 = 3, 1, 2
write("recorder_dump", "opus-and-vp8", dump("ticket-42", [
    (0, 2, OPUS, 1, 111, 0x1111, 65534, 0, bytes([0x78]) + bytes(30)),
    (20_000, 2, OPUS, 1, 111, 0x1111, 65535, 960, bytes([0x78]) + bytes(31)),
    (21_000, 0, VP8, 0, 96, 0x2222, 1, 90_000, VP8_KEY),
    (21_500, 0, VP8, 1, 96, 0x2222, 2, 90_000, VP8_DELTA),
    (40_000, 2, OPUS, 1, 111, 0x1111, 65536, 1920, bytes([0x78]) + bytes(29)),
]))
write("recorder_dump", "h264-clerk-camera", dump("c1-20780-7", [
    (0, 3, H264, 0, 102, 0x3333, 100, 3000, STAP_A),
    (1000, 3, H264, 1, 102, 0x3333, 101, 3000, FU_A),
    (2000, 4, OPUS, 1, 111, 0x4444, 7, 480, bytes([0xFC, 0xFF, 0xFE])),
]))
write("recorder_dump", "header-only", dump("t", []))

# --- HTTP ranges: u64 body length, then the header ------------------------------------------
for name, length, header in [
    ("open-ended", 1_000_000, "bytes=0-"),
    ("suffix", 1_000_000, "bytes=-500"),
    ("middle", 65_536 * 3, "bytes=65530-131080"),
    ("several", 100, "bytes=0-1,5-6"),
]:
    write("http_range", name, struct.pack(">Q", length) + header.encode())

# --- uploads: authorization, kind, digest, blank line, body ----------------------------------
def upload(kind, body):
    head = f"Bearer kiosk-01:s3cret\n{kind}\n{hashlib.sha256(body).hexdigest()}"
    return head.encode() + b"\n\n" + body

write("upload", "document-jpeg", upload("document", JPEG_COLOUR))
write("upload", "snapshot-grey-jpeg", upload("snapshot", JPEG_GREY))
write("upload", "card-photo", upload("id_photo", bytes(range(256)) * 4))

# --- registry forms (registry/fields.rs tests' draft) ----------------------------------------
FORM = {
    "district": "徐汇区", "street": "天平路街道", "institution": "天平路街道社区事务受理服务中心",
    "address": "上海市徐汇区天平路1号", "hours_text": "",
    "hours": {"weekly": [{"weekdays": [1, 2, 3, 4, 5], "periods": [{"open": "09:00", "close": "17:00"}]}],
              "exceptions": [{"date": "2026-10-01", "periods": [], "note": "国庆节"}]},
    "phone": "021-64311234", "device_id": "kiosk-01", "device_url": "https://kiosk-01.example/",
    "remarks": "",
}
write("registry_form", "xuhui-weekdays", json.dumps(FORM, ensure_ascii=False))
FORM2 = dict(FORM, phone="13800138000转123", hours_text="周一至周五 9:00-17:00",
             hours={"weekly": [{"weekdays": [6, 7], "periods": [{"open": "09:00", "close": "12:00"},
                                                                {"open": "13:00", "close": "24:00"}]}],
                    "exceptions": []})
write("registry_form", "weekend-mobile-phone", json.dumps(FORM2, ensure_ascii=False))

# --- division lists ---------------------------------------------------------------------------
write("division_list", "shanghai", open(os.path.join(ROOT, "deploy/divisions/shanghai.toml"), "rb").read())
write("division_list", "official-one-district",
      'city = "上海市"\nofficial = true\nnote = "示例"\n[[district]]\nname = "长宁区"\nstreets = ["华阳路街道", "新泾镇"]\n')

# --- inspection reports (protocol/src/inspection.rs) -----------------------------------------
REPORT = {
    "technician": "赵磊", "automatic": False, "started_ms": 1_796_000_000_000,
    "finished_ms": 1_796_000_060_000, "agent_version": "0.1.0", "profile": "generic-x86",
    "checks": [
        {"id": "camera.frames", "device": "camera", "outcome": "pass",
         "detail": {"zh": "摄像头画面正常", "en": "camera frames arrive"}, "measurements": [
             {"name": "fps", "value": 29.97, "unit": "fps"}]},
        {"id": "microphone.level", "device": "microphone", "outcome": "warn",
         "detail": {"zh": "音量偏低", "en": "level low"},
         "remedy": {"zh": "检查麦克风", "en": "check the microphone"}, "measurements": []},
    ],
}
write("inspection_report", "technician-report", json.dumps(REPORT, ensure_ascii=False))
write("inspection_report", "automatic-report", json.dumps(dict(REPORT, technician="", automatic=True), ensure_ascii=False))
