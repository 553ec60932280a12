//! Recordings after the session: muxed by the recorder, sealed (encrypted at rest), described
//! by a row in the [`RecordingStore`]; recovered after a crash; purged after the retention
//! period, each deletion audited; opened again for a supervisor's playback.
//!
//! The row is written when the recording begins, so a crash leaves a trace to complete: at the
//! next start the dump is muxed and sealed and the row completed, a plaintext file the crash
//! left between muxing and sealing is sealed, and a row with neither is marked failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{MediaError, ServiceMetrics, inc};
use crate::clock::Clock;
use crate::config::Config;
use crate::queue::Session;
use crate::recorder::mux::MuxError;
use crate::recorder::sealed::{self, Keyring, MasterKey, SealedReader};
use crate::recorder::{Recorder, RecorderConfig, RecorderError, RecordingMeta, RecordingTap};
use crate::sfu::MediaCodec;
use crate::store::recordings::{
    AccessAction, RecordingAccess, RecordingRow, RecordingState, RecordingStore, TrackSummary,
};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Rows handled per purge query.
const PURGE_BATCH: u32 = 200;
/// Who the retention job is in the audit trail.
pub const RETENTION_ACTOR: &str = "system:retention";

/// A recording in progress.
pub struct LiveRecording {
    pub id: String,
    pub tap: RecordingTap,
    row: RecordingRow,
    /// Stores the row and waits for the dump to be created, off the pairing's path; `finish`
    /// waits for it so the final row is the last one written.
    settling: Option<tokio::task::JoinHandle<()>>,
}

/// What a crash left in the recordings directory, listed before any new recording begins.
#[derive(Debug, Default)]
pub struct Leftovers {
    dumps: Vec<PathBuf>,
    plain: Vec<PathBuf>,
}

pub struct Archive {
    recorder: Option<Recorder>,
    dir: PathBuf,
    key: Option<Arc<Keyring>>,
    /// Seal new recordings (the key may exist only to play earlier ones).
    encrypt: bool,
    store: Arc<dyn RecordingStore>,
    metrics: Arc<ServiceMetrics>,
    retention_days: u32,
    /// One retention run at a time (the scheduled sweep and an operator's run would otherwise
    /// both delete, and both audit, the same recording).
    purging: tokio::sync::Mutex<()>,
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn codec_name(c: MediaCodec) -> &'static str {
    match c {
        MediaCodec::Vp8 => "vp8",
        MediaCodec::H264 => "h264",
        MediaCodec::Opus => "opus",
    }
}

/// A random recording id (also the file name stem): nothing personal in file names.
fn new_id() -> String {
    format!("rec-{}", hex::encode(rand::random::<[u8; 12]>()))
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
}

/// A stored file name is used only if it is a plain name inside the directory.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The plaintext or sealed file behind a recording, opened for reading.
pub enum Playback {
    Plain(std::fs::File, u64),
    Sealed(Box<SealedReader>),
}

impl Playback {
    pub fn len(&self) -> u64 {
        match self {
            Playback::Plain(_, n) => *n,
            Playback::Sealed(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hand the bytes `start..end` to `sink` in pieces; `sink` returns false to stop.
    pub fn read_range(
        &mut self,
        start: u64,
        end: u64,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), MediaError> {
        match self {
            Playback::Sealed(r) => Ok(r.read_range(start, end, sink)?),
            Playback::Plain(f, len) => {
                use std::os::unix::fs::FileExt;
                let end = end.min(*len);
                let mut buf = vec![0u8; 64 * 1024];
                let mut pos = start;
                while pos < end {
                    let n = ((end - pos) as usize).min(buf.len());
                    f.read_exact_at(&mut buf[..n], pos)
                        .map_err(|e| MediaError::Recorder(RecorderError::Io(e)))?;
                    if !sink(&buf[..n]) {
                        break;
                    }
                    pos += n as u64;
                }
                Ok(())
            }
        }
    }
}

impl Archive {
    /// Open the recordings directory (and key). The recorder is started only when the relay
    /// records (`[media]` and `[recording]` enabled); the archive also serves playback and
    /// retention of earlier recordings when it does not.
    pub fn open(
        config: &Config,
        store: Arc<dyn RecordingStore>,
        metrics: Arc<ServiceMetrics>,
    ) -> Result<Self, MediaError> {
        let r = &config.recording;
        let data_dir = &config.store.data_dir;
        let dir = r.dir_in(data_dir);
        let records = config.media.enabled && r.enabled;
        let recorder = if records {
            Some(Recorder::start(RecorderConfig::new(&dir))?)
        } else {
            None
        };
        // The key file was found (and checked) at start by `crate::keys::resolve`: needed when
        // the relay records encrypted, loaded whenever given so earlier sealed recordings stay
        // playable after encryption is switched off.
        let key = match &r.key_file {
            Some(path) => Some(Arc::new(Keyring::load(path)?)),
            None if r.encrypt && records => {
                return Err(MediaError::Setup {
                    what: "recording encrypted",
                    detail: "no recording key: set recording.key_file (relay init-keys makes one)"
                        .into(),
                });
            }
            None => None,
        };
        Ok(Self {
            recorder,
            dir,
            key,
            encrypt: r.encrypt,
            store,
            metrics,
            retention_days: r.retention_days,
            purging: tokio::sync::Mutex::new(()),
        })
    }

    /// For tests and tools: an archive over `dir` with the given parts.
    pub fn with_parts(
        recorder: Option<Recorder>,
        dir: PathBuf,
        key: Option<MasterKey>,
        store: Arc<dyn RecordingStore>,
        metrics: Arc<ServiceMetrics>,
        retention_days: u32,
    ) -> Self {
        Self {
            recorder,
            dir,
            encrypt: key.is_some(),
            key: key.map(|k| Arc::new(Keyring::from(k))),
            store,
            metrics,
            retention_days,
            purging: tokio::sync::Mutex::new(()),
        }
    }

    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// List what a crash left behind (call before the first `begin`).
    pub fn leftovers(&self) -> Leftovers {
        let dumps = self
            .recorder
            .as_ref()
            .map(Recorder::pending_dumps)
            .unwrap_or_default();
        let plain = match (
            self.encrypt && self.key.is_some(),
            std::fs::read_dir(&self.dir),
        ) {
            (true, Ok(entries)) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "webm" || e == "mkv")
                        && !sealed::sealed_path(p).exists()
                })
                .collect(),
            _ => Vec::new(),
        };
        Leftovers { dumps, plain }
    }

    /// Begin recording `session` without holding up its media: the dump's open is queued to
    /// the writer thread and the tap returned at once; storing the row and the writer's answer
    /// are settled in a task of their own. Waiting for both here held every session that
    /// started in the same pass for 10–20 ms each (a viewer's first picture came 80–170 ms
    /// later with recording on at 20 sessions). A failure is logged and counted, the row marked
    /// failed, and the session goes on unrecorded rather than not at all. A crash before the
    /// row is stored leaves a dump that start-up recovery stores as an orphan.
    pub async fn begin(self: &Arc<Self>, session: &Session, now_ms: i64) -> Option<LiveRecording> {
        let recorder = self.recorder.as_ref()?;
        let id = new_id();
        let mut row = RecordingRow {
            id: id.clone(),
            ticket_id: session.ticket_id.clone(),
            ticket_number: session.ticket_number.clone(),
            centre_id: session.centre_id.clone(),
            window_id: session.window_id.clone(),
            clerk_id: session.clerk_id.clone(),
            device_id: session.device_id.clone(),
            extension_point_id: session.extension_point_id.clone(),
            state: RecordingState::Recording,
            started_ms: now_ms,
            ended_ms: None,
            duration_ms: None,
            size_bytes: None,
            sha256: None,
            file: None,
            container: None,
            tracks: Vec::new(),
            encrypted: false,
            torn_tail: false,
            error: None,
            purged_ms: None,
        };
        match recorder.open(&id, Instant::now(), SystemTime::now()).await {
            Ok((tap, opening)) => {
                inc(&self.metrics.recordings_begun);
                info!(recording = %id, ticket = %session.ticket_number, "recording begun");
                let archive = Arc::clone(self);
                let mut settled = row.clone();
                let settling = tokio::spawn(async move {
                    archive.save(&settled).await;
                    if let Err(e) = opening.outcome().await {
                        error!(recording = %settled.id, error = %e, "recording could not begin");
                        inc(&archive.metrics.recordings_failed);
                        settled.state = RecordingState::Failed;
                        settled.error = Some(e.to_string());
                        settled.ended_ms = Some(now_ms);
                        archive.save(&settled).await;
                    }
                });
                Some(LiveRecording {
                    id,
                    tap,
                    row,
                    settling: Some(settling),
                })
            }
            Err(e) => {
                error!(recording = %id, error = %e, "recording could not begin");
                inc(&self.metrics.recordings_failed);
                row.state = RecordingState::Failed;
                row.error = Some(e.to_string());
                row.ended_ms = Some(now_ms);
                self.save(&row).await;
                None
            }
        }
    }

    /// Close, mux, seal and store a recording whose pair is already disconnected.
    pub async fn finish(&self, live: LiveRecording, ended_ms: i64) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        if let Some(settling) = live.settling
            && settling.await.is_err()
        {
            warn!(recording = %live.id, "settling the recording's begin failed");
        }
        let result = recorder.finish(live.tap).await;
        self.conclude(live.row, result, ended_ms).await;
    }

    async fn conclude(
        &self,
        mut row: RecordingRow,
        result: Result<RecordingMeta, RecorderError>,
        ended_ms: i64,
    ) {
        match result {
            Ok(meta) => self.complete(row, meta).await,
            Err(e) => {
                if matches!(e, RecorderError::Mux(MuxError::Empty)) {
                    // Nothing was forwarded (neither side sent media): nothing to keep.
                    if let Some(r) = &self.recorder {
                        let _ = std::fs::remove_file(r.dump_path(&row.id));
                    }
                    info!(recording = %row.id, "session had no media; nothing recorded");
                } else {
                    error!(recording = %row.id, error = %e, "recording failed");
                }
                inc(&self.metrics.recordings_failed);
                row.state = RecordingState::Failed;
                row.error = Some(e.to_string());
                row.ended_ms.get_or_insert(ended_ms);
                self.save(&row).await;
            }
        }
    }

    async fn complete(&self, mut row: RecordingRow, meta: RecordingMeta) {
        row.started_ms = unix_ms(meta.started_at);
        row.ended_ms = Some(unix_ms(meta.ended_at));
        row.duration_ms = Some(i64::try_from(meta.duration.as_millis()).unwrap_or(i64::MAX));
        row.size_bytes = Some(i64::try_from(meta.size_bytes).unwrap_or(i64::MAX));
        row.sha256 = Some(meta.sha256_hex.clone());
        row.container = meta
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_owned);
        row.tracks = meta
            .tracks
            .iter()
            .map(|t| TrackSummary {
                slot: t.slot,
                codec: codec_name(t.codec).into(),
                frames: t.frames,
                dropped_frames: t.dropped_frames,
            })
            .collect();
        row.torn_tail = meta.torn_tail;
        self.seal_into(&mut row, &meta.path).await;
        self.save(&row).await;
    }

    /// Seal the plaintext recording at `plain` (when encrypting) and point the row at the
    /// result. On failure the plaintext stays and the row says so.
    async fn seal_into(&self, row: &mut RecordingRow, plain: &Path) {
        let Some(key) = self.key.clone().filter(|_| self.encrypt) else {
            row.file = file_name(plain);
            row.state = RecordingState::Complete;
            inc(&self.metrics.recordings_stored);
            return;
        };
        let out = sealed::sealed_path(plain);
        let job = {
            let (plain, out) = (plain.to_path_buf(), out.clone());
            tokio::task::spawn_blocking(move || sealed::seal_file(key.sealing()?, &plain, &out))
        };
        let result = match job.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(s) => {
                if let Err(e) = std::fs::remove_file(plain) {
                    warn!(error = %e, "could not remove the plaintext recording");
                }
                if row
                    .sha256
                    .as_deref()
                    .is_some_and(|h| h != s.plaintext_sha256_hex)
                {
                    warn!(recording = %row.id, "recording changed between muxing and sealing");
                }
                row.sha256 = Some(s.plaintext_sha256_hex);
                row.size_bytes = Some(i64::try_from(s.plaintext_len).unwrap_or(i64::MAX));
                row.file = file_name(&s.path);
                row.encrypted = true;
                row.state = RecordingState::Complete;
                inc(&self.metrics.recordings_stored);
                info!(recording = %row.id, "recording stored (sealed)");
            }
            Err(detail) => {
                error!(recording = %row.id, error = %detail, "sealing the recording failed");
                inc(&self.metrics.recordings_failed);
                row.file = file_name(plain);
                row.state = RecordingState::Failed;
                row.error = Some(format!("not sealed: {detail}"));
            }
        }
    }

    async fn save(&self, row: &RecordingRow) {
        if let Err(e) = self.store.save_recording(row).await {
            error!(recording = %row.id, error = %e, "storing the recording row failed");
            inc(&self.metrics.store_failures);
        }
    }

    /// Delete recordings past retention (file first, then the row marked purged with its audit
    /// entry, in one transaction). Returns how many were purged.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<usize, MediaError> {
        let _one_run = self.purging.lock().await;
        let cutoff = now_ms - i64::from(self.retention_days) * DAY_MS;
        let mut purged = 0;
        loop {
            let due = self
                .store
                .recordings_started_before(cutoff, PURGE_BATCH)
                .await?;
            let n = due.len();
            for row in due {
                self.delete_files(&row);
                let audit = RecordingAccess {
                    at_ms: now_ms,
                    actor: RETENTION_ACTOR.into(),
                    action: AccessAction::Purge,
                    recording_id: Some(row.id.clone()),
                    centre_id: Some(row.centre_id.clone()),
                    detail: format!("retention {} days", self.retention_days),
                };
                self.store.mark_purged(&row.id, &audit).await?;
                inc(&self.metrics.recordings_purged);
                purged += 1;
            }
            if n < PURGE_BATCH as usize {
                return Ok(purged);
            }
        }
    }

    fn delete_files(&self, row: &RecordingRow) {
        let mut names: Vec<String> = ["rtpdump", "webm", "mkv", "webm.sealed", "mkv.sealed"]
            .iter()
            .map(|ext| format!("{}.{ext}", row.id))
            .collect();
        names.extend(row.file.clone());
        for name in names.iter().filter(|n| safe_name(n)) {
            match std::fs::remove_file(self.dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(recording = %row.id, error = %e, "could not delete a recording file")
                }
            }
        }
    }

    /// Open a stored recording for playback (blocking file access; call from a blocking task).
    pub fn open_playback(&self, row: &RecordingRow) -> Result<Playback, MediaError> {
        let name = row
            .file
            .as_deref()
            .filter(|n| safe_name(n))
            .ok_or(MediaError::Recorder(RecorderError::NotOpen))?;
        let path = self.dir.join(name);
        if row.encrypted {
            let key = self.key.as_ref().ok_or_else(|| MediaError::Setup {
                what: "playing a sealed recording",
                detail: "no recording key".into(),
            })?;
            Ok(Playback::Sealed(Box::new(SealedReader::open(
                &key.0, &path,
            )?)))
        } else {
            let f = std::fs::File::open(&path)
                .map_err(|e| MediaError::Recorder(RecorderError::Io(e)))?;
            let len = f
                .metadata()
                .map_err(|e| MediaError::Recorder(RecorderError::Io(e)))?
                .len();
            Ok(Playback::Plain(f, len))
        }
    }
}

/// Complete what a crash left: mux the listed dumps, seal leftover plaintext, and mark rows
/// that can no longer be completed as failed.
pub async fn recover(archive: Arc<Archive>, leftovers: Leftovers, clock: Arc<dyn Clock>) {
    let now = clock.now_ms();
    let mut completed = std::collections::HashSet::new();
    if let Some(recorder) = archive.recorder.clone() {
        for dump in leftovers.dumps {
            let Some(id) = dump.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            let row = archive.row_or_orphan(&id, now).await;
            let result = recorder.recover_dump(dump).await;
            info!(recording = %id, ok = result.is_ok(), "recording recovered after a restart");
            archive.conclude(row, result, now).await;
            completed.insert(id);
        }
    }
    for plain in leftovers.plain {
        let Some(id) = plain
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        let mut row = archive.row_or_orphan(&id, now).await;
        archive.seal_into(&mut row, &plain).await;
        row.ended_ms.get_or_insert(now);
        archive.save(&row).await;
        completed.insert(id);
    }
    match archive.store.unfinished_recordings().await {
        Ok(rows) => {
            for mut row in rows.into_iter().filter(|r| !completed.contains(&r.id)) {
                // Begun in an earlier run and neither dumped nor muxed: nothing on disk.
                if archive
                    .recorder
                    .as_ref()
                    .is_some_and(|r| r.dump_path(&row.id).exists())
                {
                    continue;
                }
                row.state = RecordingState::Failed;
                row.error = Some("the relay stopped before anything was recorded".into());
                row.ended_ms.get_or_insert(now);
                archive.save(&row).await;
            }
        }
        Err(e) => warn!(error = %e, "could not list unfinished recordings"),
    }
}

impl Archive {
    async fn row_or_orphan(&self, id: &str, now: i64) -> RecordingRow {
        match self.store.recording(id).await {
            Ok(Some(row)) => row,
            other => {
                if let Err(e) = other {
                    warn!(error = %e, "recording row lookup failed");
                }
                // The row could not be written when recording began: keep what is known.
                RecordingRow {
                    id: id.to_owned(),
                    ticket_id: String::new(),
                    ticket_number: String::new(),
                    centre_id: String::new(),
                    window_id: String::new(),
                    clerk_id: String::new(),
                    device_id: String::new(),
                    extension_point_id: None,
                    state: RecordingState::Recording,
                    started_ms: now,
                    ended_ms: None,
                    duration_ms: None,
                    size_bytes: None,
                    sha256: None,
                    file: None,
                    container: None,
                    tracks: Vec::new(),
                    encrypted: false,
                    torn_tail: true,
                    error: Some("session details were not stored".into()),
                    purged_ms: None,
                }
            }
        }
    }
}

/// The retention job: shortly after start, then hourly.
pub async fn retention(archive: Arc<Archive>, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match archive.purge_expired(clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => info!(
                purged = n,
                days = archive.retention_days,
                "recordings past retention deleted"
            ),
            Err(e) => error!(error = %e, "recording retention job failed"),
        }
    }
}
