//! `relay rotate-key`: a new master key, and every object's own key wrapped again under it —
//! the objects' ciphertext is never rewritten (case items keep their `sealed` column,
//! recordings their body; only recordings of the first sealed format are rewritten once).
//!
//! For a key file `P` a run goes through two phases, each safe to stop at any point and
//! resumable by running the command again:
//!
//! 1. **Re-wrap.** The new key is written to `P.next` (0600, synced) before anything uses it.
//!    Every object not yet under it is re-wrapped: a case item's (or a staff second-factor
//!    secret's) row gets the new key id and wrapped key in one statement (`WHERE key_id = old`); a recording gets the new wrapping in
//!    its free key slot, synced. Meanwhile each object is under the old or the new key, and the
//!    relay (which loads `P`, `P.next` and `P.previous`) opens both.
//! 2. **Switch and finish.** The old key is copied to `P.previous`, then `P.next` is renamed
//!    over `P` (atomic). Objects that a relay sealed under the old key in the meantime are
//!    re-wrapped, the old slots of recordings are cleared (so the old key alone opens nothing),
//!    and `P.previous` is deleted.
//!
//! Stop the relay (every node) before rotating: a relay that keeps running seals new objects
//! under the key it loaded at start. Objects under a key the run does not hold are counted and
//! stop the run before the switch, never silently left behind.
//!
//! `limit` stops a run after that many object writes, as an operator spreading the work over
//! several windows would — and as the tests stop a run midway to resume it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{KeyBytes, KeyError, Which, read_key_file, sibling, sync_dir_of, write_key_file};
use crate::audit::Trail;
use crate::cases::crypto::MasterKey as CaseKey;
use crate::config::Config;
use crate::recorder::sealed::{self, MasterKey as RecordingKey, Rekeyed, SealError};
use crate::store::StoreError;
use crate::store::cases::{CaseStore, Rewrapped};

/// The key id objects will end up under if a run goes on from the files as they are now (the
/// pending or already switched-to key, or the given one); `None` for a fresh random key, which
/// nothing can be under yet.
fn target_id(path: &Path, given: Option<&KeyBytes>) -> Result<Option<String>, RotateError> {
    let next = sibling(path, "next");
    if next.exists() {
        return Ok(Some(read_key_file(&next)?.id_hex()));
    }
    if sibling(path, "previous").exists() {
        return Ok(Some(read_key_file(path)?.id_hex()));
    }
    Ok(given.map(KeyBytes::id_hex))
}

/// Rows read and written per transaction.
const PAGE: u32 = 200;
/// Audit trail kinds of a rotation run.
pub const KIND_START: &str = "keys.rotate.start";
pub const KIND_END: &str = "keys.rotate.end";

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    #[error("recording {file}: {source}")]
    Recording { file: String, source: SealError },
    #[error("reading the recordings directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("the key files {path}: {detail}")]
    Files { path: String, detail: String },
    #[error(
        "{count} {what} objects are under a master key this run does not hold (e.g. key {example}); nothing was switched. Give that key as the current key file, or restore it from the backup, then run again"
    )]
    Unopenable {
        what: &'static str,
        count: u64,
        example: String,
    },
    #[error(
        "a rotation of the {what} key to {pending} is in progress ({path}); run `relay rotate-key` without a new key to finish it first"
    )]
    OtherRotationPending {
        what: &'static str,
        pending: String,
        path: String,
    },
    #[error(
        "{bookings} appointment bookings depend on the case materials key (their sealed contact, and the key of their number hash is derived from it), and this rotation does not cover them yet: it would make them unreadable and unfindable by number. Nothing was changed. Rotate the recordings key alone with `--which recordings`, or rotate the case materials key once the relay has purged the contacts of those bookings (after their day)"
    )]
    NotCovered { bookings: u64 },
    #[error("writing the audit trail: {0}")]
    Audit(String),
}

/// What one run did for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub from: String,
    pub to: String,
    /// Objects whose key was wrapped under the new master key by this run.
    pub rewrapped: u64,
    /// Of `rewrapped`, staff second-factor secrets (case key only).
    pub second_factors: u64,
    /// Recordings of the first format rewritten once in the current one.
    pub resealed: u64,
    /// Recordings whose old key slot this run cleared.
    pub cleared: u64,
    /// Objects already under the new key when this run looked.
    pub already: u64,
    /// The run got through both phases: `P` is the new key, nothing is under the old one.
    pub complete: bool,
}

/// How many object writes a run may still do (`None`: no limit).
#[derive(Debug, Clone, Copy)]
pub struct Budget(Option<u64>);

impl Budget {
    pub fn new(limit: Option<u64>) -> Self {
        Budget(limit)
    }

    fn take(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    fn exhausted(&self) -> bool {
        self.0 == Some(0)
    }
}

/// The key file a rotation works on: `keys_dir/<name>` when given (keys passed to the relay as
/// systemd credentials live there), else the configured path, else (demonstration only) the
/// default inside the data directory.
pub fn key_path(
    config: &Config,
    which: Which,
    keys_dir: Option<&Path>,
) -> Result<PathBuf, KeyError> {
    if let Some(dir) = keys_dir {
        return Ok(dir.join(which.file_name()));
    }
    if let Some(p) = which.configured(config) {
        return Ok(p.to_path_buf());
    }
    if config.demo {
        return Ok(which.demo_path(&config.store.data_dir));
    }
    Err(KeyError::NotConfigured {
        what: which.what(),
        setting: which.setting(),
        file: which.file_name(),
    })
}

/// The keys of one run: `old` (what objects were under), `new`, and whether the switch is
/// already done (`P` is new, `P.previous` is old).
struct Plan {
    path: PathBuf,
    old: KeyBytes,
    new: KeyBytes,
    switched: bool,
}

fn plan(path: &Path, given: Option<KeyBytes>, what: &'static str) -> Result<Plan, RotateError> {
    let next = sibling(path, "next");
    let previous = sibling(path, "previous");
    let current = read_key_file(path)?;
    if next.exists() {
        let pending = read_key_file(&next)?;
        if let Some(g) = &given
            && g.id() != pending.id()
        {
            return Err(RotateError::OtherRotationPending {
                what,
                pending: pending.id_hex(),
                path: next.display().to_string(),
            });
        }
        return Ok(Plan {
            path: path.to_path_buf(),
            old: current,
            new: pending,
            switched: false,
        });
    }
    if previous.exists() {
        // The switch happened; the last run stopped before it finished.
        if given.is_some() {
            return Err(RotateError::OtherRotationPending {
                what,
                pending: current.id_hex(),
                path: previous.display().to_string(),
            });
        }
        return Ok(Plan {
            path: path.to_path_buf(),
            old: read_key_file(&previous)?,
            new: current,
            switched: true,
        });
    }
    let new = given.unwrap_or_else(KeyBytes::random);
    if new.id() == current.id() {
        return Err(RotateError::Files {
            path: path.display().to_string(),
            detail: "the new key is the current key".into(),
        });
    }
    write_key_file(&next, &new)?;
    Ok(Plan {
        path: path.to_path_buf(),
        old: current,
        new,
        switched: false,
    })
}

/// Phase 2's first step: `P.previous` = old (kept until the end), `P.next` renamed over `P`.
fn switch(plan: &mut Plan) -> Result<(), RotateError> {
    let previous = sibling(&plan.path, "previous");
    let files = |e: std::io::Error| RotateError::Files {
        path: plan.path.display().to_string(),
        detail: e.to_string(),
    };
    if !previous.exists() {
        write_key_file(&previous, &plan.old)?;
    }
    std::fs::rename(sibling(&plan.path, "next"), &plan.path).map_err(files)?;
    sync_dir_of(&plan.path);
    plan.switched = true;
    Ok(())
}

fn finish(plan: &Plan) -> Result<(), RotateError> {
    let previous = sibling(&plan.path, "previous");
    std::fs::remove_file(&previous).map_err(|e| RotateError::Files {
        path: previous.display().to_string(),
        detail: e.to_string(),
    })?;
    sync_dir_of(&plan.path);
    Ok(())
}

async fn audit_row(
    trail: &Trail,
    kind: &str,
    actor: &str,
    which: Which,
    detail: String,
) -> Result<(), RotateError> {
    trail
        .record(
            kind,
            actor,
            None,
            &format!("keys:{}", which.file_name()),
            &detail,
        )
        .await
        .map(drop)
        .map_err(|e| RotateError::Audit(e.to_string()))
}

fn end_detail(o: &Outcome) -> String {
    format!(
        "from={} to={} rewrapped={} second_factors={} resealed={} cleared={} already={} complete={}",
        o.from, o.to, o.rewrapped, o.second_factors, o.resealed, o.cleared, o.already, o.complete
    )
}

/// Rotates the case-materials master key at `path` over every item in `store`.
pub async fn rotate_cases(
    store: &dyn CaseStore,
    trail: &Trail,
    actor: &str,
    path: &Path,
    given: Option<KeyBytes>,
    budget: &mut Budget,
) -> Result<Outcome, RotateError> {
    // Bookings are sealed under the same master key (and their number hash is keyed by a key
    // derived from it), but are not re-wrapped here: refuse before any file or row changes
    // rather than leave them behind. Staff second factors are re-wrapped like case items.
    let target = target_id(path, given.as_ref())?.unwrap_or_default();
    let other = store.other_sealed_not_under(&target).await?;
    if other.bookings > 0 {
        return Err(RotateError::NotCovered {
            bookings: other.bookings,
        });
    }
    let mut plan = plan(path, given, Which::Cases.what())?;
    let mut outcome = Outcome {
        from: plan.old.id_hex(),
        to: plan.new.id_hex(),
        ..Outcome::default()
    };
    audit_row(
        trail,
        KIND_START,
        actor,
        Which::Cases,
        format!(
            "from={} to={} phase={}",
            outcome.from,
            outcome.to,
            if plan.switched { "finish" } else { "rewrap" }
        ),
    )
    .await?;
    let result = async {
        let old = CaseKey::from_key(&plan.old);
        let new = CaseKey::from_key(&plan.new);
        // Phase 1 (and, after the switch, whatever a running relay sealed under the old key).
        for rows in [Rows::Items, Rows::SecondFactors] {
            rewrap_items(store, rows, &[&old], &new, budget, &mut outcome).await?;
        }
        if budget.exhausted() && left_under_others(store, new.id()).await? > 0 {
            return Ok(());
        }
        if !plan.switched {
            switch(&mut plan)?;
            for rows in [Rows::Items, Rows::SecondFactors] {
                rewrap_items(store, rows, &[&old], &new, budget, &mut outcome).await?;
            }
        }
        if left_under_others(store, new.id()).await? == 0 {
            finish(&plan)?;
            outcome.complete = true;
        }
        Ok::<(), RotateError>(())
    }
    .await;
    audit_row(
        trail,
        KIND_END,
        actor,
        Which::Cases,
        match &result {
            Ok(()) => end_detail(&outcome),
            Err(e) => format!("{} error={e}", end_detail(&outcome)),
        },
    )
    .await?;
    result.map(|()| outcome)
}

/// The rows of the case store whose keys a case key rotation wraps again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// `case_items`, each key bound to the item id.
    Items,
    /// `staff_two_factor`, each key bound to the clerk's secret object id.
    SecondFactors,
}

impl Rows {
    async fn page(
        self,
        store: &dyn CaseStore,
        key_id: &str,
        after: &str,
    ) -> Result<Vec<crate::store::cases::WrappedKey>, StoreError> {
        match self {
            Rows::Items => store.wrapped_keys_not_under(key_id, after, PAGE).await,
            Rows::SecondFactors => {
                store
                    .second_factor_keys_not_under(key_id, after, PAGE)
                    .await
            }
        }
    }

    async fn write(self, store: &dyn CaseStore, batch: &[Rewrapped]) -> Result<u64, StoreError> {
        match self {
            Rows::Items => store.rewrap_keys(batch).await,
            Rows::SecondFactors => store.rewrap_second_factor_keys(batch).await,
        }
    }

    /// The object id the row's key is bound to as associated data.
    fn object(self, row_id: &str) -> String {
        match self {
            Rows::Items => row_id.to_owned(),
            Rows::SecondFactors => crate::http::two_factor::secret_object(row_id),
        }
    }
}

/// Case items and second-factor secrets not under `key_id`.
async fn left_under_others(store: &dyn CaseStore, key_id: &str) -> Result<u64, StoreError> {
    Ok(store.count_not_under(key_id).await?
        + store.other_sealed_not_under(key_id).await?.second_factors)
}

async fn rewrap_items(
    store: &dyn CaseStore,
    rows: Rows,
    opening: &[&CaseKey],
    new: &CaseKey,
    budget: &mut Budget,
    outcome: &mut Outcome,
) -> Result<(), RotateError> {
    let mut after = String::new();
    let mut unopenable = 0u64;
    let mut example = String::new();
    loop {
        let page = rows.page(store, new.id(), &after).await?;
        let Some(last) = page.last() else { break };
        after = last.item_id.clone();
        let full = page.len() == PAGE as usize;
        let mut batch = Vec::new();
        for item in page {
            let Some(key) = opening.iter().find(|k| k.id() == item.key_id) else {
                unopenable += 1;
                example = item.key_id.clone();
                continue;
            };
            if !budget.take() {
                break;
            }
            let wrapped_key = key
                .rewrap(&rows.object(&item.item_id), &item.wrapped_key, new)
                .map_err(|_| {
                    unopenable += 1;
                    example = item.key_id.clone();
                });
            if let Ok(wrapped_key) = wrapped_key {
                batch.push(Rewrapped {
                    item_id: item.item_id,
                    from_key_id: item.key_id,
                    key_id: new.id().to_owned(),
                    wrapped_key,
                });
            }
        }
        let changed = rows.write(store, &batch).await?;
        outcome.rewrapped += changed;
        if rows == Rows::SecondFactors {
            outcome.second_factors += changed;
        }
        if budget.exhausted() || !full {
            break;
        }
    }
    if unopenable > 0 {
        return Err(RotateError::Unopenable {
            what: Which::Cases.what(),
            count: unopenable,
            example,
        });
    }
    Ok(())
}

/// Every sealed recording in `dir`, in name order.
fn sealed_files(dir: &Path) -> Result<Vec<PathBuf>, RotateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RotateError::Dir {
                dir: dir.display().to_string(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sealed"))
        .collect();
    files.sort();
    Ok(files)
}

/// Rotates the recordings master key at `path` over every sealed file in `dir`. Blocking
/// file work runs on the blocking pool.
pub async fn rotate_recordings(
    dir: &Path,
    trail: &Trail,
    actor: &str,
    path: &Path,
    given: Option<KeyBytes>,
    budget: &mut Budget,
) -> Result<Outcome, RotateError> {
    let plan = plan(path, given, Which::Recordings.what())?;
    let mut outcome = Outcome {
        from: plan.old.id_hex(),
        to: plan.new.id_hex(),
        ..Outcome::default()
    };
    audit_row(
        trail,
        KIND_START,
        actor,
        Which::Recordings,
        format!(
            "from={} to={} phase={}",
            outcome.from,
            outcome.to,
            if plan.switched { "finish" } else { "rewrap" }
        ),
    )
    .await?;
    let (dir, mut b, mut o) = (dir.to_path_buf(), *budget, outcome.clone());
    let joined = tokio::task::spawn_blocking(move || {
        let r = recordings_blocking(&dir, plan, &mut b, &mut o);
        (r, b, o)
    })
    .await;
    let result = match joined {
        Ok((r, b, o)) => {
            *budget = b;
            outcome = o;
            r
        }
        Err(e) => Err(RotateError::Files {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    };
    audit_row(
        trail,
        KIND_END,
        actor,
        Which::Recordings,
        match &result {
            Ok(()) => end_detail(&outcome),
            Err(e) => format!("{} error={e}", end_detail(&outcome)),
        },
    )
    .await?;
    result.map(|()| outcome)
}

fn recordings_blocking(
    dir: &Path,
    mut plan: Plan,
    budget: &mut Budget,
    outcome: &mut Outcome,
) -> Result<(), RotateError> {
    let seal_err = |file: &Path, source: SealError| RotateError::Recording {
        file: file.display().to_string(),
        source,
    };
    let to_key = |k: &KeyBytes| {
        RecordingKey::from_key(k).map_err(|source| RotateError::Files {
            path: plan.path.display().to_string(),
            detail: source.to_string(),
        })
    };
    let old = to_key(&plan.old)?;
    let new = to_key(&plan.new)?;
    let opening = [old];
    let mut unopenable = 0u64;
    let mut example = String::new();
    // Phase 1: a slot for the new key in every file (after the switch, only files a running
    // relay sealed under the old key lack one).
    for file in sealed_files(dir)? {
        if budget.exhausted() {
            return Ok(());
        }
        match sealed::add_master(&opening, &new, &file) {
            Ok(Rekeyed::Already) => outcome.already += 1,
            Ok(Rekeyed::SlotWritten) => {
                budget.take();
                outcome.rewrapped += 1;
            }
            Ok(Rekeyed::Resealed) => {
                budget.take();
                outcome.rewrapped += 1;
                outcome.resealed += 1;
            }
            Err(SealError::WrongKey) => {
                unopenable += 1;
                example = file.display().to_string();
            }
            Err(e) => return Err(seal_err(&file, e)),
        }
    }
    if unopenable > 0 {
        return Err(RotateError::Unopenable {
            what: Which::Recordings.what(),
            count: unopenable,
            example,
        });
    }
    if !plan.switched {
        switch(&mut plan)?;
    }
    // Phase 2: the old slots cleared.
    for file in sealed_files(dir)? {
        if budget.exhausted() {
            return Ok(());
        }
        match sealed::drop_other_masters(&new, &file) {
            Ok(true) => {
                budget.take();
                outcome.cleared += 1;
            }
            Ok(false) => {}
            Err(e) => return Err(seal_err(&file, e)),
        }
    }
    finish(&plan)?;
    outcome.complete = true;
    Ok(())
}

/// The case store of `config`'s database, for a rotation run from the command line.
pub async fn case_store(config: &Config) -> Result<Arc<dyn CaseStore>, StoreError> {
    Ok(match &config.store.url {
        Some(url) => {
            Arc::new(crate::store::postgres::PgStore::connect(url, config.store.durability).await?)
        }
        None => Arc::new(
            crate::store::sqlite::SqliteStore::open_with(
                &config.store.data_dir,
                config.store.durability,
            )
            .await?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::load_ring;
    use crate::recorder::sealed::{HEADER_LEN, Keyring, SealedReader};

    fn plaintext(i: u8) -> Vec<u8> {
        (0..150_000u32).map(|x| (x as u8) ^ i).collect()
    }

    fn read_all(keys: &[RecordingKey], path: &Path) -> Result<Vec<u8>, SealError> {
        let mut r = SealedReader::open(keys, path)?;
        let mut got = Vec::new();
        r.read_range(0, r.len(), |p| {
            got.extend_from_slice(p);
            true
        })?;
        Ok(got)
    }

    fn all_open(ring_path: &Path, files: &[(PathBuf, Vec<u8>)]) {
        let ring = Keyring::load(ring_path).expect("ring");
        for (file, data) in files {
            assert_eq!(
                &read_all(&ring.0, file).expect("opens"),
                data,
                "{}",
                file.display()
            );
        }
    }

    #[tokio::test]
    async fn recordings_rotate_in_stopped_runs_without_rewriting_bodies() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("recordings");
        std::fs::create_dir(&dir).expect("mkdir");
        let path = root.path().join("recordings.key");
        let old = KeyBytes::new([5; 32]);
        write_key_file(&path, &old).expect("key");
        let old_key = RecordingKey::from_key(&old).expect("key");
        let mut files = Vec::new();
        for i in 0..3u8 {
            let plain = dir.join(format!("rec-{i}.webm"));
            std::fs::write(&plain, plaintext(i)).expect("write");
            let out = sealed::sealed_path(&plain);
            sealed::seal_file(&old_key, &plain, &out).expect("seal");
            std::fs::remove_file(&plain).expect("rm");
            files.push((out, plaintext(i)));
        }
        let v1 = dir.join("rec-old.webm.sealed");
        sealed::tests::seal_v1(&old_key, &plaintext(9), &v1);
        files.push((v1.clone(), plaintext(9)));
        files.sort();
        let bodies: Vec<Vec<u8>> = files
            .iter()
            .map(|(f, _)| std::fs::read(f).expect("read")[HEADER_LEN..].to_vec())
            .collect();

        let db = crate::store::sqlite::SqliteStore::in_memory()
            .await
            .expect("db");
        let trail = Trail::new(
            db.pool().clone(),
            Arc::new(crate::clock::ManualClock::new(1_000)),
        );
        let new = KeyBytes::new([6; 32]);

        // Stopped in the first phase: two files re-wrapped, the rest still under the old key.
        let first = rotate_recordings(
            &dir,
            &trail,
            "cli:t",
            &path,
            Some(new.clone()),
            &mut Budget::new(Some(2)),
        )
        .await
        .expect("first");
        assert_eq!((first.rewrapped, first.complete), (2, false));
        assert_eq!(load_ring(&path).expect("ring").len(), 2, "current and next");
        all_open(&path, &files);

        // Stopped in the second phase: switched, one old slot cleared.
        let second = rotate_recordings(
            &dir,
            &trail,
            "cli:t",
            &path,
            None,
            &mut Budget::new(Some(3)),
        )
        .await
        .expect("second");
        assert_eq!(
            (
                second.rewrapped,
                second.resealed,
                second.cleared,
                second.complete
            ),
            (2, 1, 1, false)
        );
        assert_eq!(
            read_key_file(&path).expect("key").id(),
            new.id(),
            "switched"
        );
        assert!(sibling(&path, "previous").exists());
        all_open(&path, &files);

        let third = rotate_recordings(&dir, &trail, "cli:t", &path, None, &mut Budget::new(None))
            .await
            .expect("third");
        assert!(third.complete);
        assert_eq!(third.cleared, 3);
        assert!(!sibling(&path, "previous").exists());
        assert!(!sibling(&path, "next").exists());
        let new_key = RecordingKey::from_key(&new).expect("key");
        for ((file, data), body) in files.iter().zip(&bodies) {
            assert_eq!(
                &read_all(std::slice::from_ref(&new_key), file).expect("new opens"),
                data
            );
            assert!(
                matches!(
                    SealedReader::open(std::slice::from_ref(&old_key), file),
                    Err(SealError::WrongKey)
                ),
                "the old key alone opens nothing: {}",
                file.display()
            );
            if *file != v1 {
                let now = std::fs::read(file).expect("read")[HEADER_LEN..].to_vec();
                assert!(now == *body, "body untouched: {}", file.display());
            }
        }
        let rows = trail.last(10).await.expect("trail");
        assert_eq!(rows.len(), 6, "start and end of each of three runs");
        assert!(
            rows[5].detail.contains("complete=true"),
            "{}",
            rows[5].detail
        );
    }

    #[tokio::test]
    async fn a_recording_under_an_unknown_key_stops_the_run_before_the_switch() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("recordings");
        std::fs::create_dir(&dir).expect("mkdir");
        let path = root.path().join("recordings.key");
        write_key_file(&path, &KeyBytes::new([5; 32])).expect("key");
        let stranger = RecordingKey::from_bytes(&[7; 32]).expect("key");
        let plain = dir.join("x.webm");
        std::fs::write(&plain, b"data").expect("write");
        sealed::seal_file(&stranger, &plain, &sealed::sealed_path(&plain)).expect("seal");
        let db = crate::store::sqlite::SqliteStore::in_memory()
            .await
            .expect("db");
        let trail = Trail::new(
            db.pool().clone(),
            Arc::new(crate::clock::ManualClock::new(1)),
        );
        let err = rotate_recordings(&dir, &trail, "cli:t", &path, None, &mut Budget::new(None))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, RotateError::Unopenable { count: 1, .. }),
            "{err}"
        );
        assert!(sibling(&path, "next").exists(), "not switched");
        assert_eq!(
            read_key_file(&path).expect("key").id(),
            KeyBytes::new([5; 32]).id()
        );
    }
}
