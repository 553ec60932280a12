//! Recording a real forwarded session: VP8 and Opus encoded by GStreamer are sent by str0m
//! client peers through the relay core, the forwarded packets go through the recorder's tap
//! into a dump, and the dump is muxed into WebM; `gst-discoverer-1.0` must find every track
//! with the expected duration. Needs `gstreamer1.0-tools`, `gstreamer1.0-plugins-base-apps`,
//! `-good` (vp8enc) and `-base` (opusenc) — see deploy/packages-test.txt.
#![allow(clippy::unwrap_used)]

mod sfu_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use protocol::media::Slot;
use sfu_support::Net;
use signaling::recorder::dump::{self, DumpHeader, RecordMeta};
use signaling::recorder::{Recorder, RecorderConfig};
use signaling::sfu::{PeerId, Role};

const SECONDS: u64 = 4;

/// Encode `SECONDS` of test video (30 fps, keyframe every second) and audio (20 ms packets)
/// into one file per frame/packet.
fn encode(dir: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    encode_seconds(dir, SECONDS)
}

fn encode_seconds(dir: &Path, seconds: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let v = dir.join("v");
    let a = dir.join("a");
    std::fs::create_dir_all(&v).unwrap();
    std::fs::create_dir_all(&a).unwrap();
    let frames = seconds * 30;
    let run = |args: String| {
        let status = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(args.split(' '))
            .status()
            .expect("gst-launch-1.0 is installed (gstreamer1.0-tools)");
        assert!(status.success(), "gst-launch-1.0 {args}");
    };
    run(format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc keyframe-max-dist=30 deadline=1 ! multifilesink location={}/%05d.vp8",
        v.display()
    ));
    run(format!(
        "audiotestsrc num-buffers={} samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 \
         ! opusenc frame-size=20 ! multifilesink location={}/%05d.opus",
        seconds * 50,
        a.display()
    ));
    let read_all = |d: &Path| -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    };
    (read_all(&v), read_all(&a))
}

/// Run a kiosk and a clerk through the relay for `SECONDS` after connect, all five slots
/// carrying real media.
fn forwarded_session(video: &[Vec<u8>], audio: &[Vec<u8>]) -> Net {
    let mut net = Net::new();
    net.add_client(1, Role::Kiosk);
    net.add_client(11, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(1), PeerId(11), true, net.now)
        .unwrap();
    net.flush_sfu();
    let (k, c) = (net.idx(1), net.idx(11));
    let mut next_v = net.now;
    let mut next_a = net.now;
    let (mut vi, mut ai) = (0, 0);
    while vi < video.len() || ai < audio.len() {
        let now = net.now;
        if vi < video.len() && now >= next_v {
            for slot in [Slot::KioskCamera, Slot::KioskDocument] {
                net.clients[k].send_encoded_vp8(slot, &video[vi], now);
            }
            net.clients[c].send_encoded_vp8(Slot::ClerkCamera, &video[vi], now);
            vi += 1;
            next_v = now + Duration::from_micros(33_333);
        }
        if ai < audio.len() && now >= next_a {
            net.clients[k].send_encoded_opus(Slot::KioskMicrophone, &audio[ai], now);
            net.clients[c].send_encoded_opus(Slot::ClerkMicrophone, &audio[ai], now);
            ai += 1;
            next_a = now + Duration::from_millis(20);
        }
        net.drain_client(k);
        net.drain_client(c);
        let far = net.now + Duration::from_secs(3600);
        let until = if vi < video.len() { next_v } else { far }.min(if ai < audio.len() {
            next_a
        } else {
            far
        });
        if until < far {
            net.run_until(until);
        }
    }
    net.run_for(Duration::from_millis(200));
    net
}

struct Discovered {
    duration: Duration,
    video: usize,
    audio: usize,
    text: String,
}

fn discover(path: &Path) -> Discovered {
    let out = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 is installed (gstreamer1.0-plugins-base-apps)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "discoverer failed: {text}");
    assert!(
        !text.contains("error"),
        "discoverer reported an error: {text}"
    );
    let dur = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .expect("a duration line");
    let mut parts = dur.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    Discovered {
        duration: Duration::from_secs_f64(h * 3600.0 + m * 60.0 + s),
        video: text.matches("video #").count(),
        audio: text.matches("audio #").count(),
        text,
    }
}

fn assert_duration(d: Duration, text: &str) {
    let expected = SECONDS as f64;
    let got = d.as_secs_f64();
    assert!(
        (got - expected).abs() <= expected * 0.1,
        "duration {got:.3}s, expected {expected}s ±10%\n{text}"
    );
}

#[tokio::test]
async fn a_forwarded_session_is_recorded_and_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, audio) = encode(tmp.path());
    assert_eq!(video.len() as u64, SECONDS * 30);

    let rec_dir = tmp.path().join("recordings");
    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();

    let mut net = forwarded_session(&video, &audio);
    let tap = recorder
        .begin("ticket-0001", net.start, SystemTime::now())
        .await
        .unwrap();
    assert!(
        net.recorded.len() > 700,
        "only {} packets forwarded",
        net.recorded.len()
    );
    let recorded = std::mem::take(&mut net.recorded);
    let slots: std::collections::HashSet<Slot> = recorded.iter().map(|r| r.slot).collect();
    assert_eq!(slots.len(), 5, "every slot was forwarded and recorded");
    for r in &recorded {
        assert!(tap.record(r), "recorder queue refused a packet");
    }
    // The live dump holds the resident's media in the clear: the relay's user only, in a
    // directory only it can enter.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dump = rec_dir.join("ticket-0001.rtpdump");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !dump.exists() {
        assert!(std::time::Instant::now() < deadline, "no dump file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mode(&dump), 0o600);
    assert_eq!(mode(&rec_dir), 0o700);
    let meta = recorder.finish(tap).await.unwrap();
    // Muxed without sealing here: the plaintext recording is private too.
    assert_eq!(mode(&meta.path), 0o600);

    assert_eq!(meta.session_id, "ticket-0001");
    assert!(meta.path.exists() && meta.path.extension().unwrap() == "webm");
    assert_eq!(
        std::fs::metadata(&meta.path).unwrap().len(),
        meta.size_bytes
    );
    assert_eq!(meta.sha256_hex.len(), 64);
    assert!(!meta.torn_tail);
    assert_eq!(meta.tracks.len(), 5);
    assert!(meta.ended_at > meta.started_at);
    assert_duration(meta.duration, "metadata");
    // The dump is gone once the recording is durable.
    assert!(!rec_dir.join("ticket-0001.rtpdump").exists());
    let m = recorder.metrics();
    assert_eq!(
        m.packets_written.load(std::sync::atomic::Ordering::Relaxed),
        recorded.len() as u64
    );

    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (3, 2), "{}", d.text);
    assert_duration(d.duration, &d.text);

    // Decode every frame of the kiosk camera: vp8dec must not report an error.
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", meta.path.display()))
        .args([
            "!",
            "matroskademux",
            "name=d",
            "d.video_0",
            "!",
            "queue",
            "!",
            "vp8dec",
            "!",
            "fakesink",
            "sync=false",
            "d.audio_0",
            "!",
            "queue",
            "!",
            "opusdec",
            "!",
            "fakesink",
            "sync=false",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "decoding the recording failed");
}

/// Write what the relay forwarded in `net` as a dump file, as the writer thread would.
fn write_dump(path: &Path, session_id: &str, net: &Net) {
    write_records(path, session_id, net.start, &net.recorded);
}

fn write_records(
    path: &Path,
    session_id: &str,
    start: std::time::Instant,
    records: &[signaling::sfu::RecordedRtp],
) {
    let mut w = dump::create(
        path,
        &DumpHeader {
            start_unix_micros: 1_763_000_000_000_000,
            session_id: session_id.into(),
        },
    )
    .unwrap();
    let mut scratch = Vec::new();
    for r in records {
        let meta = RecordMeta {
            t_micros: (r.arrival - start).as_micros() as u64,
            slot: r.slot,
            codec: r.codec,
            marker: r.marker,
            pt: r.pt,
            ssrc: r.ssrc,
            seq: r.seq,
            rtp_ts: r.rtp_ts,
        };
        dump::write_record(&mut w, &meta, &r.payload, &mut scratch).unwrap();
    }
    std::io::Write::flush(&mut w).unwrap();
}

/// The forwarded packets with hostile ones mixed into every track: random bytes, truncated
/// and empty payloads, sequence numbers that collide with real packets, timestamps from
/// nowhere, and (for H.264) every NAL unit type including those the depayloader cannot take.
fn with_garbage(records: &[signaling::sfu::RecordedRtp]) -> Vec<signaling::sfu::RecordedRtp> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(records.len() * 2);
    for (i, r) in records.iter().enumerate() {
        out.push(r.clone());
        if i % 5 != 0 {
            continue;
        }
        let mut g = r.clone();
        let payload: Vec<u8> = match next() % 6 {
            // Random bytes of any length.
            0 => (0..next() % 1200).map(|_| next() as u8).collect(),
            // A real packet cut short.
            1 => r.payload[..r.payload.len().min(1 + (next() % 3) as usize)].to_vec(),
            2 => Vec::new(),
            // Any NAL unit type (H.264 0–31; for VP8 and Opus just a bad first byte).
            3 => {
                let mut p = vec![(next() % 32) as u8 | 0x60];
                p.extend((0..next() % 64).map(|_| next() as u8));
                p
            }
            // The real payload with its first bytes flipped.
            4 => r
                .payload
                .iter()
                .take(8)
                .map(|b| !b)
                .chain(r.payload.iter().skip(8).copied())
                .collect(),
            _ => (0..next() % 40).map(|_| 0xff).collect(),
        };
        g.payload = std::sync::Arc::from(payload.as_slice());
        g.marker = next() % 2 == 0;
        match next() % 3 {
            0 => g.seq = r.seq + 1, // takes the next real packet's place
            1 => g.rtp_ts = next() as u32,
            _ => g.seq = r.seq + 2 + next() % 4,
        }
        out.push(g);
    }
    out
}

/// Mux time of a 60 s two-party recording (five tracks: kiosk camera, document camera and
/// microphone, clerk camera and microphone). A benchmark, not part of the default run:
///
/// `cargo test --workspace --test sfu_recording -- --ignored --nocapture mux_time`
///
/// `RECORDING_BENCH_DUMP=/path/x.rtpdump` keeps the generated dump there (and reuses it when it
/// exists), so two builds can be timed on the same input.
#[tokio::test]
#[ignore = "benchmark: run explicitly"]
async fn mux_time_for_a_60_s_two_party_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("RECORDING_BENCH_DUMP").map(PathBuf::from);
    let source = match &kept {
        Some(p) if p.exists() => p.clone(),
        _ => {
            let (video, audio) = encode_seconds(tmp.path(), 60);
            let net = forwarded_session(&video, &audio);
            let p = kept
                .clone()
                .unwrap_or_else(|| tmp.path().join("bench.rtpdump"));
            write_dump(&p, "ticket-bench", &net);
            p
        }
    };
    let size = std::fs::metadata(&source).unwrap().len();
    // One read of the dump, for scale: the muxer reads it once to plan and once per track.
    let t = std::time::Instant::now();
    let mut reader = dump::DumpReader::open(&source).unwrap();
    let mut records = 0;
    while reader.next_record().is_some() {
        records += 1;
    }
    println!(
        "one read of the dump ({records} records): {:?}",
        t.elapsed()
    );
    let rec_dir = tmp.path().join("rec");
    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();
    let mut times = Vec::new();
    for i in 0..3 {
        let dump = rec_dir.join(format!("ticket-bench-{i}.rtpdump"));
        std::fs::copy(&source, &dump).unwrap();
        let t = std::time::Instant::now();
        let meta = recorder.recover_dump(dump).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(meta.tracks.len(), 5);
        std::fs::remove_file(&meta.path).unwrap();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "mux of a 60 s two-party dump ({size} bytes): {:?} (load average {})",
        times,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

#[tokio::test]
async fn a_dump_left_by_a_crash_is_recovered_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, audio) = encode(tmp.path());
    let net = forwarded_session(&video, &audio);
    let rec_dir = tmp.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();

    // What the writer thread would have left: a dump whose last record is cut short.
    let path = rec_dir.join("ticket-crash.rtpdump");
    write_dump(&path, "ticket-crash", &net);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);

    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();
    let results = recorder.recover().await;
    assert_eq!(results.len(), 1);
    let meta = results.into_iter().next().unwrap().1.unwrap();
    assert!(meta.torn_tail);
    assert_eq!(meta.session_id, "ticket-crash");
    assert!(!path.exists());
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (3, 2), "{}", d.text);
    assert_duration(d.duration, &d.text);
    // Nothing left to recover.
    assert!(recorder.recover().await.is_empty());
}

/// Garbage packets in every track: the mux finishes, without crashing or hanging, with a
/// recording of what decodes.
#[tokio::test]
async fn a_dump_with_garbage_in_every_track_gives_what_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, audio) = encode(tmp.path());
    let net = forwarded_session(&video, &audio);
    let rec_dir = tmp.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let path = rec_dir.join("ticket-garbage.rtpdump");
    let records = with_garbage(&net.recorded);
    assert!(records.len() > net.recorded.len() * 6 / 5);
    write_records(&path, "ticket-garbage", net.start, &records);

    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();
    let results = tokio::time::timeout(Duration::from_secs(120), recorder.recover())
        .await
        .expect("muxing a hostile dump finishes");
    let meta = results.into_iter().next().unwrap().1.unwrap();
    assert_eq!(meta.tracks.len(), 5, "{:?}", meta.tracks);
    assert!(
        meta.tracks.iter().any(|t| t.dropped_frames > 0),
        "the damaged frames are reported: {:?}",
        meta.tracks
    );
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (3, 2), "{}", d.text);
    assert_duration(d.duration, &d.text);
    decode_webm(&meta.path);

    // Tracks that yield nothing at all (a microphone of empty packets, a document camera of
    // one-byte ones) are left out; the others are kept.
    let records: Vec<_> = net
        .recorded
        .iter()
        .map(|r| {
            let mut r = r.clone();
            match r.slot {
                Slot::KioskMicrophone => r.payload = std::sync::Arc::from(&[][..]),
                Slot::KioskDocument => r.payload = std::sync::Arc::from(&[0x90u8][..]),
                _ => {}
            }
            r
        })
        .collect();
    write_records(
        &rec_dir.join("ticket-partial.rtpdump"),
        "ticket-partial",
        net.start,
        &records,
    );
    let results = tokio::time::timeout(Duration::from_secs(120), recorder.recover())
        .await
        .expect("muxing a hostile dump finishes");
    let meta = results.into_iter().next().unwrap().1.unwrap();
    let slots: Vec<Slot> = meta.tracks.iter().map(|t| t.slot).collect();
    assert_eq!(
        slots,
        vec![Slot::KioskCamera, Slot::ClerkCamera, Slot::ClerkMicrophone]
    );
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (2, 1), "{}", d.text);
    assert_duration(d.duration, &d.text);
    decode_webm(&meta.path);
}

/// Packets out of order within a track and packets lost: the reorder window restores the
/// order, a loss costs the frames that depend on it, and every track still decodes.
#[tokio::test]
async fn reordered_and_lost_packets_still_give_every_track() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, audio) = encode(tmp.path());
    let net = forwarded_session(&video, &audio);
    let mut records: Vec<_> = net
        .recorded
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 97 != 50)
        .map(|(_, r)| r.clone())
        .collect();
    // Swap a packet with the next one of the same track, every so often.
    let mut swapped = 0;
    let mut i = 0;
    while i < records.len() {
        if let Some(j) =
            (i + 1..records.len().min(i + 12)).find(|&j| records[j].slot == records[i].slot)
        {
            records.swap(i, j);
            swapped += 1;
        }
        i += 9;
    }
    assert!(swapped > 50, "{swapped} swaps");
    let rec_dir = tmp.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    write_records(
        &rec_dir.join("ticket-reorder.rtpdump"),
        "ticket-reorder",
        net.start,
        &records,
    );
    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();
    let meta = recorder
        .recover()
        .await
        .into_iter()
        .next()
        .unwrap()
        .1
        .unwrap();
    assert_eq!(meta.tracks.len(), 5, "{:?}", meta.tracks);
    for t in &meta.tracks {
        // Reordering alone costs nothing; the losses (about 1 in 97 packets) cost a few frames.
        assert!(t.frames > 0 && t.dropped_frames < t.frames / 2, "{t:?}");
    }
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (3, 2), "{}", d.text);
    assert_duration(d.duration, &d.text);
    decode_webm(&meta.path);
}

/// A document camera that sends a moment at the start and again near the end, with a queue
/// bound far below what the other tracks send meanwhile: the muxer waits for every track, so
/// this stalls unless each track is fed on its own.
#[tokio::test]
async fn a_silent_document_camera_does_not_stall_the_muxer() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, audio) = encode(tmp.path());
    let net = forwarded_session(&video, &audio);
    let silent = Duration::from_millis(400)..Duration::from_millis(2950);
    let records: Vec<_> = net
        .recorded
        .iter()
        .filter(|r| r.slot != Slot::KioskDocument || !silent.contains(&(r.arrival - net.start)))
        .cloned()
        .collect();
    let rec_dir = tmp.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    write_records(
        &rec_dir.join("ticket-sparse.rtpdump"),
        "ticket-sparse",
        net.start,
        &records,
    );
    let quiet_bytes: usize = records
        .iter()
        .filter(|r| r.slot == Slot::KioskCamera && silent.contains(&(r.arrival - net.start)))
        .map(|r| r.payload.len())
        .sum();
    let mut config = RecorderConfig::new(&rec_dir);
    config.mux_queue_bytes = 4096;
    assert!(quiet_bytes as u64 > 4 * config.mux_queue_bytes);
    config.mux_timeout = Duration::from_secs(60);
    let recorder = Recorder::start(config).unwrap();
    let results = tokio::time::timeout(Duration::from_secs(120), recorder.recover())
        .await
        .expect("the mux finishes");
    let meta = results.into_iter().next().unwrap().1.unwrap();
    assert_eq!(meta.tracks.len(), 5);
    let frames = |slot| {
        meta.tracks
            .iter()
            .find(|t| t.slot == slot)
            .map(|t| t.frames)
            .unwrap()
    };
    assert!(frames(Slot::KioskDocument) < frames(Slot::KioskCamera) / 2);
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (3, 2), "{}", d.text);
    assert_duration(d.duration, &d.text);
    decode_webm(&meta.path);
}

/// A mux that cannot finish — out of time with every feeder blocked on a full queue, or
/// nothing decodable in the dump — ends with a clear error, counted, no partial file, and the
/// dump kept for a retry.
#[tokio::test]
async fn a_failed_mux_keeps_the_dump_and_counts_it() {
    use std::sync::atomic::Ordering::Relaxed;
    let tmp = tempfile::tempdir().unwrap();
    let (video, audio) = encode(tmp.path());
    let net = forwarded_session(&video, &audio);
    let rec_dir = tmp.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let path = rec_dir.join("ticket-late.rtpdump");
    write_dump(&path, "ticket-late", &net);

    let mut config = RecorderConfig::new(&rec_dir);
    config.mux_queue_bytes = 4096;
    config.mux_timeout = Duration::ZERO;
    let recorder = Recorder::start(config).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), recorder.recover_dump(path.clone()))
        .await
        .expect("a mux out of time stops its pipeline and returns");
    assert!(
        matches!(
            result,
            Err(signaling::recorder::RecorderError::Mux(
                signaling::recorder::mux::MuxError::Timeout(_)
            ))
        ),
        "{result:?}"
    );
    assert!(path.exists(), "the dump is kept for a retry");
    assert_eq!(recorder.metrics().mux_failures.load(Relaxed), 1);

    // A dump whose packets are all empty: nothing decodes.
    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();
    let empty: Vec<_> = net
        .recorded
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.payload = std::sync::Arc::from(&[][..]);
            r
        })
        .collect();
    let path = rec_dir.join("ticket-empty.rtpdump");
    write_records(&path, "ticket-empty", net.start, &empty);
    let result = recorder.recover_dump(path.clone()).await;
    assert!(
        matches!(
            result,
            Err(signaling::recorder::RecorderError::Mux(
                signaling::recorder::mux::MuxError::Empty
            ))
        ),
        "{result:?}"
    );
    assert!(path.exists());
    assert_eq!(recorder.metrics().mux_failures.load(Relaxed), 1);
    // No partial output left behind.
    let names: Vec<String> = std::fs::read_dir(&rec_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".rtpdump")), "{names:?}");
}

/// Decode the first video and audio track of a WebM recording: the decoders must not fail.
fn decode_webm(path: &Path) {
    let out = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", path.display()))
        .args([
            "!",
            "matroskademux",
            "name=d",
            "d.video_0",
            "!",
            "queue",
            "!",
            "vp8dec",
            "!",
            "fakesink",
            "sync=false",
            "d.audio_0",
            "!",
            "queue",
            "!",
            "opusdec",
            "!",
            "fakesink",
            "sync=false",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decoding the recording failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The kiosk's H.264 alternative: OpenH264 access units through the relay into Matroska, with
/// the avcC record built from the stream's SPS/PPS; OpenH264 must decode it.
#[tokio::test]
async fn an_h264_session_is_recorded_as_matroska_and_decodes() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("h");
    std::fs::create_dir_all(&h).unwrap();
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(
            format!(
                "videotestsrc num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
                 ! openh264enc gop-size=30 ! video/x-h264,stream-format=byte-stream,alignment=au \
                 ! multifilesink location={}/%05d.h264",
                SECONDS * 30,
                h.display()
            )
            .split_whitespace(),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&h)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let units: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let (_, audio) = encode(tmp.path());

    let mut net = Net::new();
    let addr = "10.1.0.1:40001".parse().unwrap();
    net.add(sfu_support::Client::new_h264_only(
        1,
        Role::Kiosk,
        addr,
        net.now,
    ));
    net.add_client(11, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(1), PeerId(11), true, net.now)
        .unwrap();
    net.flush_sfu();
    let k = net.idx(1);
    for (i, unit) in units.iter().enumerate() {
        let now = net.now;
        net.clients[k].send_encoded_h264(Slot::KioskCamera, unit, now);
        let (from, to) = (i * 5 / 3, ((i + 1) * 5 / 3).min(audio.len()));
        for a in &audio[from.min(to)..to] {
            net.clients[k].send_encoded_opus(Slot::KioskMicrophone, a, now);
        }
        net.drain_client(k);
        net.run_for(Duration::from_micros(33_333));
    }
    net.run_for(Duration::from_millis(200));
    assert!(net.client(11).got(Slot::KioskCamera).len() > units.len());

    let recorder = Recorder::start(RecorderConfig::new(tmp.path().join("rec"))).unwrap();
    let tap = recorder
        .begin("ticket-h264", net.start, SystemTime::now())
        .await
        .unwrap();
    for r in &net.recorded {
        assert!(tap.record(r));
    }
    let meta = recorder.finish(tap).await.unwrap();
    assert_eq!(meta.path.extension().unwrap(), "mkv");
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (1, 1), "{}", d.text);
    assert!(
        d.text.contains("H.264") && d.text.contains("Width: 320"),
        "{}",
        d.text
    );
    assert_duration(d.duration, &d.text);
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", meta.path.display()))
        .args([
            "!",
            "matroskademux",
            "!",
            "h264parse",
            "!",
            "openh264dec",
            "!",
            "fakesink",
            "sync=false",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "decoding the H.264 recording failed");

    // The same session with hostile packets in both tracks, among them the H.264 packet types
    // rtph264depay stops the whole pipeline for: refused and counted, the rest decodes.
    let rec_dir = tmp.path().join("garbage");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let mut records = with_garbage(&net.recorded);
    let mut stap_b = net.recorded[net.recorded.len() / 2].clone();
    stap_b.payload = std::sync::Arc::from([0x79u8, 0, 4, 0x65, 1, 2, 3].as_slice());
    records.insert(records.len() / 2, stap_b);
    write_records(
        &rec_dir.join("ticket-h264g.rtpdump"),
        "ticket-h264g",
        net.start,
        &records,
    );
    let recorder = Recorder::start(RecorderConfig::new(&rec_dir)).unwrap();
    let results = tokio::time::timeout(Duration::from_secs(120), recorder.recover())
        .await
        .expect("muxing a hostile dump finishes");
    let meta = results.into_iter().next().unwrap().1.unwrap();
    assert_eq!(meta.tracks.len(), 2, "{:?}", meta.tracks);
    assert!(
        recorder
            .metrics()
            .mux_packets_rejected
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let d = discover(&meta.path);
    assert_eq!((d.video, d.audio), (1, 1), "{}", d.text);
    assert_duration(d.duration, &d.text);
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", meta.path.display()))
        .args([
            "!",
            "matroskademux",
            "!",
            "h264parse",
            "!",
            "openh264dec",
            "!",
            "fakesink",
            "sync=false",
        ])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "decoding the hostile H.264 recording failed"
    );
}

/// One recorded Opus packet as the SFU hands it over.
fn opus_packet(seq: u64, arrival: std::time::Instant) -> signaling::sfu::RecordedRtp {
    signaling::sfu::RecordedRtp {
        kiosk: PeerId(1),
        clerk: PeerId(11),
        slot: Slot::KioskMicrophone,
        codec: signaling::sfu::MediaCodec::Opus,
        pt: 111,
        ssrc: 0x1234,
        seq,
        rtp_ts: (seq * 960) as u32,
        marker: false,
        arrival,
        payload: std::sync::Arc::from(vec![0xf8u8, 0xff, 0xfe, seq as u8].as_slice()),
    }
}

#[tokio::test]
async fn packets_fed_before_the_dump_is_open_are_written_and_a_failed_open_is_reported() {
    use std::sync::atomic::Ordering::Relaxed;
    let tmp = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(RecorderConfig::new(tmp.path())).unwrap();
    let start = std::time::Instant::now();

    // The tap is fed at once, before the writer has answered the open.
    let (tap, opening) = recorder
        .open("ticket-open", start, SystemTime::now())
        .await
        .unwrap();
    for seq in 0..50 {
        assert!(tap.record(&opus_packet(seq, start + Duration::from_millis(20 * seq))));
    }
    opening.outcome().await.expect("the dump was created");
    let _ = recorder.finish(tap).await;
    let m = recorder.metrics();
    assert_eq!(m.packets_written.load(Relaxed), 50);

    // A dump that already exists: the open fails later, and the tap's packets go nowhere.
    std::fs::write(tmp.path().join("ticket-dup.rtpdump"), b"left over").unwrap();
    let (tap, opening) = recorder
        .open("ticket-dup", start, SystemTime::now())
        .await
        .unwrap();
    let _ = tap.record(&opus_packet(0, start));
    assert!(matches!(
        opening.outcome().await,
        Err(signaling::recorder::RecorderError::AlreadyExists)
    ));
    assert!(matches!(
        recorder.finish(tap).await,
        Err(signaling::recorder::RecorderError::NotOpen)
    ));
    assert_eq!(m.packets_written.load(Relaxed), 50);
    assert_eq!(
        std::fs::read(tmp.path().join("ticket-dup.rtpdump")).unwrap(),
        b"left over"
    );
}
