//! Session recording without transcoding.
//!
//! While a kiosk/clerk pair is connected, every RTP packet the SFU forwards for it (kiosk
//! camera, document camera and microphone; clerk camera and microphone) is appended to a raw
//! dump file for that session ([`dump`]): crash tolerant, cheap to write. When the session
//! finishes — or at start-up, for dumps a crash left behind — the dump is muxed into
//! WebM/Matroska ([`mux`]) by GStreamer: the field's RTP depayloaders (`rtpvp8depay`,
//! `rtph264depay` + `h264parse`, `rtpopusdepay`) into `webmmux`/`matroskamux`, codec frames put
//! into a container, never decoded. The caller gets a [`RecordingMeta`] (path, times, size,
//! SHA-256) to store.
//!
//! The relay once carried its own depacketizers, H.264 parameter-set parser and Matroska
//! writer, to keep the C media stack out of the relay process. That was a thousand lines of
//! parsing hostile input (a kiosk or a clerk's browser decides what is in every packet) that
//! only this project reviewed; the library the agent already uses has had that input thrown at
//! it for years. Muxing runs on a blocking thread of its own, one recording at a time, with
//! bounded queues and a deadline (see [`mux`]), so a bad dump costs an error and a kept dump,
//! never the relay.
//!
//! Forwarding is never slowed by recording: the SFU driver hands packets to a
//! [`RecordingTap`], which only does a non-blocking send on a bounded queue (a full queue
//! drops the packet and counts it). The writer takes what is queued in batches, every 10 ms
//! while packets flow, so a packet costs the SFU's thread no wake-up. One writer thread owns
//! every open dump; it flushes its buffers every `flush_interval` and `fdatasync`s every
//! `sync_interval`, so a process crash loses at most what was queued, a power loss at most
//! `sync_interval`.
//!
//! [`sealed`] encrypts a finished recording at rest without losing random access (the media
//! service seals each recording after muxing it).
//!
//! Not here: storing metadata rows, retention, access control (the media service, the store and
//! the HTTP layer own those).

pub mod dump;
pub mod mux;
pub mod sealed;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};

use self::dump::{DumpHeader, RecordMeta};
use self::mux::{MuxError, MuxedTrack};
use crate::sfu::{RecordSink, RecordedRtp};

/// Where and how recordings are written.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Dumps (`*.rtpdump`) and finished recordings (`*.webm`/`*.mkv`) live here.
    pub dir: PathBuf,
    /// Packets (and commands) that may wait for the writer thread.
    pub queue: usize,
    pub flush_interval: Duration,
    pub sync_interval: Duration,
    /// Bound on one begin/finish exchange with the writer thread.
    pub command_timeout: Duration,
    /// Bound on muxing one recording (a small dump gets less, see [`mux::deadline_for`]).
    pub mux_timeout: Duration,
    /// Bytes of RTP one track of the muxing pipeline holds before its feeder waits.
    pub mux_queue_bytes: u64,
}

impl RecorderConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            queue: 8192,
            flush_interval: Duration::from_millis(250),
            sync_interval: Duration::from_secs(2),
            command_timeout: Duration::from_secs(10),
            mux_timeout: Duration::from_secs(600),
            mux_queue_bytes: mux::DEFAULT_QUEUE_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("session id must be 1–64 characters of [A-Za-z0-9_-]")]
    InvalidSessionId,
    #[error("a recording for this session already exists")]
    AlreadyExists,
    #[error("no open recording for this session")]
    NotOpen,
    #[error("the recorder has stopped")]
    Stopped,
    #[error("the recorder did not answer in time")]
    Timeout,
    #[error("recording i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("mux failed: {0}")]
    Mux(#[from] MuxError),
}

/// Counters the relay can publish.
#[derive(Debug, Default)]
pub struct RecorderMetrics {
    pub packets_written: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Packets dropped because the writer's queue was full (or the recording already closed).
    pub packets_dropped: AtomicU64,
    pub write_errors: AtomicU64,
    pub recordings_started: AtomicU64,
    pub recordings_muxed: AtomicU64,
    pub mux_failures: AtomicU64,
    /// Recorded packets the muxer refused before depayloading (malformed or unsupported).
    pub mux_packets_rejected: AtomicU64,
}

/// What the caller stores about one finished recording.
#[derive(Debug, Clone)]
pub struct RecordingMeta {
    pub session_id: String,
    pub path: PathBuf,
    /// Wall-clock time of the file's first frame.
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    pub duration: Duration,
    pub size_bytes: u64,
    pub sha256_hex: String,
    pub tracks: Vec<MuxedTrack>,
    /// The dump ended in a partial record (a crash while recording).
    pub torn_tail: bool,
}

enum Msg {
    Begin {
        key: u64,
        header: DumpHeader,
        reply: oneshot::Sender<Result<PathBuf, RecorderError>>,
    },
    Packet {
        key: u64,
        meta: RecordMeta,
        payload: Arc<[u8]>,
    },
    End {
        key: u64,
        reply: oneshot::Sender<Result<PathBuf, RecorderError>>,
    },
}

/// Handle to the recorder. Cheap to clone; the writer thread stops when every handle and tap
/// is dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    config: Arc<RecorderConfig>,
    metrics: Arc<RecorderMetrics>,
    next_key: Arc<AtomicU64>,
    /// One mux at a time: it is CPU work that must not starve forwarding on a small machine.
    mux_permit: Arc<Semaphore>,
}

/// The writer thread's answer to [`Recorder::open`], still to come.
#[derive(Debug)]
pub struct Opening {
    answer: oneshot::Receiver<Result<PathBuf, RecorderError>>,
    limit: Duration,
}

impl Opening {
    /// Whether the dump file was created (bounded by the recorder's command timeout).
    pub async fn outcome(self) -> Result<PathBuf, RecorderError> {
        tokio::time::timeout(self.limit, self.answer)
            .await
            .map_err(|_| RecorderError::Timeout)?
            .map_err(|_| RecorderError::Stopped)?
    }
}

/// Given to the SFU for one connected pair; hands forwarded packets to the writer.
#[derive(Clone)]
pub struct RecordingTap {
    key: u64,
    session_id: Arc<str>,
    start: Instant,
    tx: mpsc::Sender<Msg>,
    metrics: Arc<RecorderMetrics>,
}

impl RecordingTap {
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Queue one forwarded packet; never blocks. Returns false (and counts) when it was dropped.
    pub fn record(&self, p: &RecordedRtp) -> bool {
        let meta = RecordMeta {
            t_micros: p.arrival.saturating_duration_since(self.start).as_micros() as u64,
            slot: p.slot,
            codec: p.codec,
            marker: p.marker,
            pt: p.pt,
            ssrc: p.ssrc,
            seq: p.seq,
            rtp_ts: p.rtp_ts,
        };
        let msg = Msg::Packet {
            key: self.key,
            meta,
            payload: Arc::clone(&p.payload),
        };
        if self.tx.try_send(msg).is_err() {
            self.metrics.packets_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl RecordSink for RecordingTap {
    fn record(&self, packet: &RecordedRtp) -> bool {
        RecordingTap::record(self, packet)
    }
}

impl std::fmt::Debug for RecordingTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingTap")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Creates `dir` (and missing parents) with mode 0700 and tightens it to 0700 if it exists:
/// raw dumps and muxing temporaries in it hold residents' media in the clear.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn dump_path(dir: &Path, session_id: &str) -> PathBuf {
    dir.join(format!("{session_id}.rtpdump"))
}

impl Recorder {
    /// Create the directory if needed and start the writer thread.
    pub fn start(config: RecorderConfig) -> Result<Recorder, RecorderError> {
        private_dir(&config.dir)?;
        let (tx, rx) = mpsc::channel(config.queue.max(16));
        let metrics = Arc::new(RecorderMetrics::default());
        let config = Arc::new(config);
        let (m, c) = (Arc::clone(&metrics), Arc::clone(&config));
        std::thread::Builder::new()
            .name("recorder-writer".into())
            .spawn(move || writer_thread(rx, c, m))?;
        Ok(Recorder {
            tx,
            config,
            metrics,
            next_key: Arc::new(AtomicU64::new(1)),
            mux_permit: Arc::new(Semaphore::new(1)),
        })
    }

    pub fn metrics(&self) -> Arc<RecorderMetrics> {
        Arc::clone(&self.metrics)
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Where the dump of `session_id` is written while it is open.
    pub fn dump_path(&self, session_id: &str) -> PathBuf {
        dump_path(&self.config.dir, session_id)
    }

    /// Open the dump for `session_id`. `now` is the same clock the SFU stamps packet arrival
    /// with; `wallclock` the matching wall time (stored in the dump header).
    pub async fn begin(
        &self,
        session_id: &str,
        now: Instant,
        wallclock: SystemTime,
    ) -> Result<RecordingTap, RecorderError> {
        let (tap, opened) = self.open(session_id, now, wallclock).await?;
        opened.outcome().await?;
        Ok(tap)
    }

    /// Like [`Recorder::begin`] but without waiting for the writer thread to create the file:
    /// the tap can feed packets at once (the writer takes them after the open, in order), and
    /// [`Opening::outcome`] says later whether the file was created (if not, the tap's packets
    /// are dropped and counted, and `finish` reports the recording as not open). A session's
    /// media is paired without waiting for a file system that other sessions keep busy.
    pub async fn open(
        &self,
        session_id: &str,
        now: Instant,
        wallclock: SystemTime,
    ) -> Result<(RecordingTap, Opening), RecorderError> {
        if !valid_session_id(session_id) {
            return Err(RecorderError::InvalidSessionId);
        }
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let header = DumpHeader {
            start_unix_micros: wallclock
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            session_id: session_id.to_string(),
        };
        let (reply, answer) = oneshot::channel();
        tokio::time::timeout(
            self.config.command_timeout,
            self.tx.send(Msg::Begin { key, header, reply }),
        )
        .await
        .map_err(|_| RecorderError::Timeout)?
        .map_err(|_| RecorderError::Stopped)?;
        self.metrics
            .recordings_started
            .fetch_add(1, Ordering::Relaxed);
        let tap = RecordingTap {
            key,
            session_id: Arc::from(session_id),
            start: now,
            tx: self.tx.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        let opening = Opening {
            answer,
            limit: self.config.command_timeout,
        };
        Ok((tap, opening))
    }

    /// Close the dump (after the SFU stopped feeding the tap), mux it, delete the dump and
    /// return what to store.
    pub async fn finish(&self, tap: RecordingTap) -> Result<RecordingMeta, RecorderError> {
        let (reply, answer) = oneshot::channel();
        let path = self
            .call(
                Msg::End {
                    key: tap.key,
                    reply,
                },
                answer,
            )
            .await?;
        self.mux(path).await
    }

    /// Mux every dump left in the directory (call once at start-up, before `begin`).
    pub async fn recover(&self) -> Vec<(PathBuf, Result<RecordingMeta, RecorderError>)> {
        let mut out = Vec::new();
        for dump in self.pending_dumps() {
            let result = self.recover_dump(dump.clone()).await;
            out.push((dump, result));
        }
        out
    }

    /// The dumps in the directory (left by a crash when no recording is open). Listing them
    /// before the first `begin` and muxing them afterwards keeps recovery off the start-up
    /// path without ever touching a dump that is being written.
    pub fn pending_dumps(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return Vec::new();
        };
        let mut dumps: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "rtpdump"))
            .collect();
        dumps.sort();
        dumps
    }

    /// Mux one dump found by [`pending_dumps`](Self::pending_dumps) (and delete it).
    pub async fn recover_dump(&self, dump: PathBuf) -> Result<RecordingMeta, RecorderError> {
        self.mux(dump).await
    }

    async fn call(
        &self,
        msg: Msg,
        answer: oneshot::Receiver<Result<PathBuf, RecorderError>>,
    ) -> Result<PathBuf, RecorderError> {
        tokio::time::timeout(self.config.command_timeout, async {
            self.tx
                .send(msg)
                .await
                .map_err(|_| RecorderError::Stopped)?;
            answer.await.map_err(|_| RecorderError::Stopped)?
        })
        .await
        .map_err(|_| RecorderError::Timeout)?
    }

    async fn mux(&self, dump: PathBuf) -> Result<RecordingMeta, RecorderError> {
        let _permit = self
            .mux_permit
            .acquire()
            .await
            .map_err(|_| RecorderError::Stopped)?;
        let dir = self.config.dir.clone();
        let options = mux::MuxOptions {
            limit: self.config.mux_timeout,
            queue_bytes: self.config.mux_queue_bytes,
        };
        let metrics = Arc::clone(&self.metrics);
        let job =
            tokio::task::spawn_blocking(move || mux_and_describe(&dump, &dir, options, &metrics));
        // The muxing thread stops itself at its own deadline; this bound only catches a thread
        // that never returns, with a grace for hashing and syncing the file.
        let outer = self.config.mux_timeout + Duration::from_secs(60);
        let result = match tokio::time::timeout(outer, job).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RecorderError::Stopped),
            Err(_) => Err(RecorderError::Timeout),
        };
        let counter = if result.is_ok() {
            &self.metrics.recordings_muxed
        } else {
            &self.metrics.mux_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

/// Mux, hash, remove the dump. Blocking.
fn mux_and_describe(
    dump: &Path,
    dir: &Path,
    options: mux::MuxOptions,
    metrics: &RecorderMetrics,
) -> Result<RecordingMeta, RecorderError> {
    let outcome = mux::mux_dump(dump, dir, options)?;
    metrics
        .mux_packets_rejected
        .fetch_add(outcome.rejected_packets, Ordering::Relaxed);
    if outcome.rejected_packets > 0 {
        tracing::warn!(
            session = %outcome.header.session_id,
            rejected = outcome.rejected_packets,
            "recorded packets refused while muxing (malformed or unsupported payload)"
        );
    }
    let mut hasher = Sha256::new();
    let mut file = File::open(&outcome.path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha256_hex = hex::encode(hasher.finalize());
    // The recording is durable (synced and renamed); the dump is now a redundant copy of
    // personal data.
    std::fs::remove_file(dump)?;
    // The header's start time is read from a file: out-of-range values must not panic.
    let start = UNIX_EPOCH
        .checked_add(Duration::from_micros(outcome.header.start_unix_micros))
        .and_then(|t| t.checked_add(Duration::from_micros(outcome.offset_us)))
        .unwrap_or(UNIX_EPOCH);
    let duration = Duration::from_millis(outcome.duration_ms);
    Ok(RecordingMeta {
        session_id: outcome.header.session_id.clone(),
        path: outcome.path,
        started_at: start,
        ended_at: start.checked_add(duration).unwrap_or(start),
        duration,
        size_bytes: outcome.size,
        sha256_hex,
        tracks: outcome.tracks,
        torn_tail: outcome.torn_tail,
    })
}

struct OpenDump {
    path: PathBuf,
    w: BufWriter<File>,
    failed: bool,
    dirty: bool,
    last_sync: Instant,
}

fn writer_thread(rx: mpsc::Receiver<Msg>, config: Arc<RecorderConfig>, m: Arc<RecorderMetrics>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "recorder writer runtime failed to start");
            return;
        }
    };
    rt.block_on(writer_loop(rx, config, m));
}

/// How long the writer lets packets gather after a batch before it takes the next.
///
/// Waking the writer for every packet cost the SFU's thread a futex call and this thread a
/// context switch per forwarded packet — together more than the forwarding itself. While the
/// writer sleeps, a packet is queued with a few atomic operations and no wake-up. 10 ms of
/// packets is far below the queue's capacity (8192 by default: about 170 at 50 sessions),
/// and it adds nothing to what a crash can lose beyond what already waits in the queue.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

async fn writer_loop(
    mut rx: mpsc::Receiver<Msg>,
    config: Arc<RecorderConfig>,
    m: Arc<RecorderMetrics>,
) {
    let mut w = Writer {
        open: HashMap::new(),
        scratch: Vec::with_capacity(2048),
        config: Arc::clone(&config),
        m,
    };
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                w.handle(msg);
                let mut closed = false;
                loop {
                    match rx.try_recv() {
                        Ok(msg) => w.handle(msg),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    break;
                }
                tokio::time::sleep(BATCH_INTERVAL).await;
            }
            _ = tick.tick() => w.flush_due(),
        }
    }
    for (_, d) in w.open.drain() {
        let _ = close(d);
    }
}

/// The writer thread's open dumps.
struct Writer {
    open: HashMap<u64, OpenDump>,
    scratch: Vec<u8>,
    config: Arc<RecorderConfig>,
    m: Arc<RecorderMetrics>,
}

impl Writer {
    fn handle(&mut self, msg: Msg) {
        let m = &self.m;
        match msg {
            Msg::Packet { key, meta, payload } => {
                let Some(d) = self.open.get_mut(&key) else {
                    m.packets_dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if d.failed {
                    return;
                }
                match dump::write_record(&mut d.w, &meta, &payload, &mut self.scratch) {
                    Ok(()) => {
                        d.dirty = true;
                        m.packets_written.fetch_add(1, Ordering::Relaxed);
                        m.bytes_written
                            .fetch_add(payload.len() as u64, Ordering::Relaxed);
                    }
                    // Nothing was written: the dump stays whole without this packet.
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                        m.packets_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "recording write failed");
                        m.write_errors.fetch_add(1, Ordering::Relaxed);
                        d.failed = true;
                    }
                }
            }
            Msg::Begin { key, header, reply } => {
                let path = dump_path(&self.config.dir, &header.session_id);
                let result = if self.open.values().any(|d| d.path == path) || path.exists() {
                    Err(RecorderError::AlreadyExists)
                } else {
                    match dump::create(&path, &header) {
                        Ok(w) => {
                            self.open.insert(
                                key,
                                OpenDump {
                                    path: path.clone(),
                                    w,
                                    failed: false,
                                    dirty: true,
                                    last_sync: Instant::now(),
                                },
                            );
                            Ok(path)
                        }
                        Err(e) => Err(RecorderError::Io(e)),
                    }
                };
                let _ = reply.send(result);
            }
            Msg::End { key, reply } => {
                let result = match self.open.remove(&key) {
                    None => Err(RecorderError::NotOpen),
                    Some(d) => close(d).map_err(RecorderError::Io),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Flush every dump written to since the last tick; sync those whose sync is due.
    fn flush_due(&mut self) {
        let sync_due = self.config.sync_interval;
        let m = &self.m;
        for d in self.open.values_mut().filter(|d| d.dirty && !d.failed) {
            if let Err(e) = d.w.flush() {
                tracing::error!(error = %e, "recording flush failed");
                m.write_errors.fetch_add(1, Ordering::Relaxed);
                d.failed = true;
                continue;
            }
            if d.last_sync.elapsed() >= sync_due {
                if let Err(e) = d.w.get_ref().sync_data() {
                    tracing::error!(error = %e, "recording sync failed");
                    m.write_errors.fetch_add(1, Ordering::Relaxed);
                }
                d.last_sync = Instant::now();
                d.dirty = false;
            }
        }
    }
}

fn close(mut d: OpenDump) -> std::io::Result<PathBuf> {
    d.w.flush()?;
    d.w.get_ref().sync_all()?;
    Ok(d.path)
}
