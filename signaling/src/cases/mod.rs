//! Case materials (办件材料): what the kiosk's devices produced for a served remote ticket —
//! the ID card read, its photo, document pages, identity snapshots, code scans — kept in the
//! ticket's case, encrypted at rest, masked on screen unless revealed, audited and purged.
//!
//! - Uploads ([`Cases::store_upload`]): a kiosk in a session sends stills and the ID photo
//!   over HTTPS; each is hashed, checked, sealed with its own key and attached to the case of
//!   the ticket the kiosk is being served for.
//! - The console leg ([`Cases::to_console`]): `IdCard.Read` completions are stored encrypted on
//!   their way to the console and replaced by a masked view; code scans are stored too (they
//!   count for the identity rule).
//! - Reads for the serving clerk or a supervisor of the centre: the case, items (decrypted on
//!   the fly), the audited reveal of a card, a PDF of the document pages.
//! - Identity rule (2022 standard 2.2): each case records how the resident's identity was
//!   verified — `id_card`, `code_scan` or `snapshot` — the first that happened.
//! - Retention: items older than `privacy.retention_days` are deleted, each deletion audited.
//!
//! Personal data is never logged: log lines name items by id and kind only.
//!
//! The service starts with the relay (master key loaded, retention job running) and
//! opens its own connection pool to the relay's SQLite file, so it needs no change to the core
//! store trait.

pub mod config;
pub mod crypto;
pub mod pdf;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use protocol::card_view::{CardView, card_view};
use protocol::control::RelayToClerk;
use protocol::device::{CompletionBody, CompletionCode, FromDevice, IdCard};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::{error, info, warn};

pub use config::{CasesConfig, PrivacyConfig};
use crypto::{CryptoError, Keyring, MasterKey, Sealed};

use crate::clock::Clock;
use crate::domain::{Clerk, Role};
use crate::queue::Session;
use crate::session::Switchboard;
use crate::store::StoreError;
use crate::store::cases::{AuditEntry, CaseRecord, CaseStore, ItemMeta, SealedItem};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// Kinds of case item.
pub mod kind {
    pub const ID_CARD: &str = "id_card";
    pub const ID_PHOTO: &str = "id_photo";
    pub const DOCUMENT: &str = "document";
    pub const SNAPSHOT: &str = "snapshot";
    pub const SCAN: &str = "scan";
    /// A message the serving clerk typed for the resident (UTF-8 text).
    pub const TYPED_MESSAGE: &str = "typed_message";
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("case store: {0}")]
    Store(#[from] StoreError),
    #[error("case crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("the case service is not available: {0}")]
    Unavailable(String),
    #[error("not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error("bad upload: {0}")]
    BadUpload(&'static str),
}

/// Counters of refused input, for operators.
#[derive(Debug, Default)]
pub struct CaseCounters {
    pub uploads: AtomicU64,
    pub uploads_refused: AtomicU64,
    pub reveals: AtomicU64,
    pub purged: AtomicU64,
    pub store_failures: AtomicU64,
}

impl CaseCounters {
    /// (name, help, value) of each counter, for `/metrics`.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "case_uploads",
                "Kiosk uploads (document pages, snapshots, ID photos) stored",
                v(&self.uploads),
            ),
            (
                "case_uploads_refused",
                "Kiosk uploads refused (credential, size, checksum, no live session)",
                v(&self.uploads_refused),
            ),
            (
                "case_reveals",
                "Unmasked ID card views (each audited)",
                v(&self.reveals),
            ),
            (
                "case_items_purged",
                "Case materials deleted by the retention job",
                v(&self.purged),
            ),
            (
                "case_store_failures",
                "Case materials that could not be stored",
                v(&self.store_failures),
            ),
        ]
    }
}

/// The running case service.
pub struct CaseService {
    store: Arc<dyn CaseStore>,
    key: Keyring,
    clock: Arc<dyn Clock>,
    pub counters: CaseCounters,
    retention_ms: i64,
}

/// A handle held by the HTTP state; the service starts in the background.
#[derive(Clone)]
pub struct Cases {
    cell: Arc<OnceCell<Arc<CaseService>>>,
    config: Arc<CasesConfig>,
    clock: Arc<dyn Clock>,
}

/// Where a case comes from when it is created.
#[derive(Debug, Clone)]
pub struct CaseOrigin {
    pub ticket_id: String,
    pub centre_id: String,
    pub device_id: String,
    pub clerk_id: String,
    pub ticket_number: String,
}

impl CaseOrigin {
    pub fn of(session: &Session) -> Self {
        CaseOrigin {
            ticket_id: session.ticket_id.clone(),
            centre_id: session.centre_id.clone(),
            device_id: session.device_id.clone(),
            clerk_id: session.clerk_id.clone(),
            ticket_number: session.ticket_number.clone(),
        }
    }
}

/// The identity method an item kind gives, if any.
pub fn identity_of(kind: &str) -> Option<&'static str> {
    match kind {
        kind::ID_CARD => Some("id_card"),
        kind::SCAN => Some("code_scan"),
        kind::SNAPSHOT => Some("snapshot"),
        _ => None,
    }
}

fn new_id() -> String {
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    format!("it-{}", hex::encode(b))
}

impl Cases {
    /// Creates the handle and, inside a tokio runtime, starts the service (master key, store,
    /// retention job) in the background.
    pub fn start(config: impl Into<CasesConfig>, clock: Arc<dyn Clock>) -> Self {
        let cases = Cases {
            cell: Arc::new(OnceCell::new()),
            config: Arc::new(config.into()),
            clock,
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&cases.cell);
            let (config, clock) = (cases.config.clone(), cases.clock.clone());
            rt.spawn(retention_loop(weak, config, clock));
        }
        cases
    }

    /// The service's counters on `metrics` (zero until the service has started).
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        let cell = Arc::downgrade(&self.cell);
        metrics.register_collector(crate::metrics::SnapshotCounters::new(
            "case counters",
            move || match cell.upgrade().as_deref().and_then(OnceCell::get) {
                Some(service) => service.counters.snapshot(),
                None => CaseCounters::default().snapshot(),
            },
        ));
    }

    /// The service, started on first use.
    pub async fn service(&self) -> Result<Arc<CaseService>, CaseError> {
        let (config, clock) = (self.config.clone(), self.clock.clone());
        self.cell
            .get_or_try_init(
                || async move { CaseService::open(&config, clock).await.map(Arc::new) },
            )
            .await
            .cloned()
    }

    /// Seals a small secret that is not a case item (a staff member's TOTP secret) under the
    /// same master key, with its own data key, bound to `object_id` as associated data.
    pub async fn seal_secret(&self, object_id: &str, plain: &[u8]) -> Result<Sealed, CaseError> {
        Ok(self.service().await?.key.seal(object_id, plain)?)
    }

    /// Opens what [`Cases::seal_secret`] sealed for `object_id`.
    pub async fn open_secret(
        &self,
        object_id: &str,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, CaseError> {
        Ok(self.service().await?.key.open(object_id, sealed)?)
    }

    /// A message on its way to a console: `IdCard.Read` cards are stored and masked, scans
    /// stored. Anything else passes unchanged. Never forwards an unmasked card.
    pub async fn to_console(
        &self,
        clerk: &Clerk,
        switchboard: &Switchboard,
        message: RelayToClerk,
    ) -> RelayToClerk {
        let RelayToClerk::Device {
            ticket_id,
            message: FromDevice::Completion(mut completion),
        } = message
        else {
            return message;
        };
        let interesting = matches!(
            &completion.body,
            CompletionBody::IdCardRead(Some(_)) | CompletionBody::ScannerRead(Some(_))
        );
        if !interesting {
            return RelayToClerk::Device {
                ticket_id,
                message: FromDevice::Completion(completion),
            };
        }
        let session = switchboard.session(&ticket_id);
        let origin = CaseOrigin {
            ticket_id: ticket_id.clone(),
            centre_id: clerk.centre_id.clone(),
            device_id: session
                .as_ref()
                .map(|s| s.device_id.clone())
                .unwrap_or_default(),
            clerk_id: clerk.id.clone(),
            ticket_number: session.map(|s| s.ticket_number).unwrap_or_default(),
        };
        match &mut completion.body {
            CompletionBody::IdCardRead(Some(result)) => {
                if let Some(card) = result.card.take() {
                    let mut view = card_view(&card, true);
                    match self.store_card(clerk, &origin, &card).await {
                        Ok(item) => view.case_item_id = Some(item),
                        Err(e) => {
                            error!(error = %e, "the card could not be stored; forwarding the masked view only")
                        }
                    }
                    result.view = Some(view);
                }
            }
            CompletionBody::ScannerRead(Some(scan))
                if completion.completion_code == CompletionCode::Success =>
            {
                let text = scan.text.expose().as_bytes().to_vec();
                if let Err(e) = self
                    .store_bytes(
                        &origin,
                        kind::SCAN,
                        "text/plain; charset=utf-8",
                        text,
                        None,
                        ("clerk", &clerk.id),
                    )
                    .await
                {
                    error!(error = %e, "a scan could not be stored");
                }
            }
            _ => {}
        }
        RelayToClerk::Device {
            ticket_id,
            message: FromDevice::Completion(completion),
        }
    }

    async fn store_card(
        &self,
        clerk: &Clerk,
        origin: &CaseOrigin,
        card: &IdCard,
    ) -> Result<String, CaseError> {
        let json = serde_json::to_vec(card).map_err(|_| CaseError::BadUpload("card"))?;
        self.store_bytes(
            origin,
            kind::ID_CARD,
            "application/json",
            json,
            None,
            ("clerk", &clerk.id),
        )
        .await
    }

    /// Seals `bytes` into a new item of the case (created if needed); returns the item id.
    pub async fn store_bytes(
        &self,
        origin: &CaseOrigin,
        item_kind: &str,
        mime: &str,
        bytes: Vec<u8>,
        size: Option<(u32, u32)>,
        actor: (&str, &str),
    ) -> Result<String, CaseError> {
        let service = self.service().await?;
        service
            .store_bytes(origin, item_kind, mime, bytes, size, actor)
            .await
    }
}

impl CaseService {
    async fn open(config: &CasesConfig, clock: Arc<dyn Clock>) -> Result<Self, CaseError> {
        let data_dir = &config.data_dir;
        // Resolved and checked at start (`crate::keys::resolve`); never a default in data_dir.
        let key_file = config.privacy.master_key_file.clone().ok_or_else(|| {
            CaseError::Unavailable("no master key file (privacy.master_key_file)".into())
        })?;
        let key = tokio::task::spawn_blocking(move || Keyring::load(&key_file))
            .await
            .map_err(|e| CaseError::Unavailable(e.to_string()))??;
        let store: Arc<dyn CaseStore> = match &config.url {
            Some(url) => Arc::new(PgStore::connect(url, config.durability).await?),
            None => Arc::new(SqliteStore::open_with(data_dir, config.durability).await?),
        };
        info!(key = key.id(), "case materials service ready");
        Ok(CaseService {
            store,
            key,
            clock,
            counters: CaseCounters::default(),
            retention_ms: i64::from(config.privacy.retention_days) * 86_400_000,
        })
    }

    /// For tests: a service over a given store and key.
    pub fn with_store(
        store: Arc<dyn CaseStore>,
        key: MasterKey,
        clock: Arc<dyn Clock>,
        retention_days: u32,
    ) -> Self {
        CaseService {
            store,
            key: key.into(),
            clock,
            counters: CaseCounters::default(),
            retention_ms: i64::from(retention_days) * 86_400_000,
        }
    }

    pub fn store(&self) -> &Arc<dyn CaseStore> {
        &self.store
    }

    pub async fn store_bytes(
        &self,
        origin: &CaseOrigin,
        item_kind: &str,
        mime: &str,
        bytes: Vec<u8>,
        size: Option<(u32, u32)>,
        actor: (&str, &str),
    ) -> Result<String, CaseError> {
        let now = self.clock.now_ms();
        self.store
            .ensure_case(&CaseRecord {
                ticket_id: origin.ticket_id.clone(),
                centre_id: origin.centre_id.clone(),
                device_id: origin.device_id.clone(),
                clerk_id: origin.clerk_id.clone(),
                ticket_number: origin.ticket_number.clone(),
                created_ms: now,
                identity_method: None,
                identity_ms: None,
            })
            .await?;
        let id = new_id();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size_bytes = bytes.len() as i64;
        let sealed = self.key.seal(&id, &bytes)?;
        drop(bytes);
        let item = SealedItem {
            meta: ItemMeta {
                id: id.clone(),
                ticket_id: origin.ticket_id.clone(),
                kind: item_kind.to_owned(),
                mime: mime.to_owned(),
                size_bytes,
                width: size.map(|s| i64::from(s.0)),
                height: size.map(|s| i64::from(s.1)),
                sha256,
                created_ms: now,
            },
            key_id: sealed.key_id,
            wrapped_key: sealed.wrapped_key,
            sealed: sealed.ciphertext,
        };
        let audit = AuditEntry {
            at_ms: now,
            ticket_id: origin.ticket_id.clone(),
            item_id: Some(id.clone()),
            actor_kind: actor.0.to_owned(),
            actor_id: actor.1.to_owned(),
            action: "stored".into(),
        };
        if let Err(e) = self
            .store
            .add_item(&item, &audit, identity_of(item_kind))
            .await
        {
            self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
            return Err(e.into());
        }
        info!(item = %id, kind = item_kind, bytes = size_bytes, "case item stored");
        Ok(id)
    }

    /// May `clerk` read the case of `ticket_id`? The clerk serving it (per `serving`) or a
    /// supervisor of its centre.
    pub fn may_read(
        &self,
        clerk: &Clerk,
        case: &CaseRecord,
        serving: bool,
    ) -> Result<(), CaseError> {
        if case.centre_id != clerk.centre_id {
            return Err(CaseError::NotFound);
        }
        if clerk.has(Role::Supervisor) || serving {
            Ok(())
        } else {
            Err(CaseError::Forbidden)
        }
    }

    /// Decrypts an item; the read is audited with `action`.
    pub async fn open_item(
        &self,
        ticket_id: &str,
        item_id: &str,
        clerk: &Clerk,
        action: &str,
    ) -> Result<(ItemMeta, Vec<u8>), CaseError> {
        let item = self
            .store
            .item(ticket_id, item_id)
            .await?
            .ok_or(CaseError::NotFound)?;
        let plain = self.key.open(
            item_id,
            &Sealed {
                key_id: item.key_id,
                wrapped_key: item.wrapped_key,
                ciphertext: item.sealed,
            },
        )?;
        self.store
            .audit(&AuditEntry {
                at_ms: self.clock.now_ms(),
                ticket_id: ticket_id.to_owned(),
                item_id: Some(item_id.to_owned()),
                actor_kind: "clerk".into(),
                actor_id: clerk.id.clone(),
                action: action.to_owned(),
            })
            .await?;
        if action == "revealed" {
            self.counters.reveals.fetch_add(1, Ordering::Relaxed);
            info!(item = %item_id, clerk = %clerk.id, "card revealed");
        }
        Ok((item.meta, plain))
    }

    /// The card of an `id_card` item as a view: masked, or in full (audited as a reveal).
    pub async fn card(
        &self,
        ticket_id: &str,
        item_id: &str,
        clerk: &Clerk,
        reveal: bool,
    ) -> Result<CardView, CaseError> {
        let action = if reveal { "revealed" } else { "viewed" };
        let (meta, plain) = self.open_item(ticket_id, item_id, clerk, action).await?;
        if meta.kind != kind::ID_CARD {
            return Err(CaseError::NotFound);
        }
        let card: IdCard = serde_json::from_slice(&plain)
            .map_err(|_| CaseError::Unavailable("stored card unreadable".into()))?;
        let mut view = card_view(&card, !reveal);
        view.case_item_id = Some(item_id.to_owned());
        Ok(view)
    }

    /// A PDF of the case's document pages, in capture order (audited as an export).
    pub async fn pdf(&self, ticket_id: &str, clerk: &Clerk) -> Result<Vec<u8>, CaseError> {
        let items = self.store.items(ticket_id).await?;
        let mut jpegs = Vec::new();
        for item in items.iter().filter(|i| i.kind == kind::DOCUMENT) {
            let (_, bytes) = self
                .open_item(ticket_id, &item.id, clerk, "exported")
                .await?;
            jpegs.push(bytes);
        }
        let pages: Vec<pdf::JpegPage<'_>> = jpegs
            .iter()
            .filter_map(|j| {
                pdf::jpeg_info(j).map(|(width, height, components)| pdf::JpegPage {
                    jpeg: j,
                    width,
                    height,
                    components,
                })
            })
            .collect();
        if pages.is_empty() {
            return Err(CaseError::NotFound);
        }
        Ok(pdf::write_pdf(&pages, ticket_id))
    }

    /// Deletes items past retention; returns how many.
    pub async fn purge(&self, now_ms: i64) -> Result<u64, CaseError> {
        let mut total = 0;
        loop {
            let n = self
                .store
                .purge_items_before(now_ms - self.retention_ms, now_ms)
                .await?;
            total += n;
            if n < 1000 {
                break;
            }
        }
        if total > 0 {
            self.counters.purged.fetch_add(total, Ordering::Relaxed);
            info!(items = total, "case items purged by retention");
        }
        Ok(total)
    }
}

async fn retention_loop(
    weak: Weak<OnceCell<Arc<CaseService>>>,
    config: Arc<CasesConfig>,
    clock: Arc<dyn Clock>,
) {
    // Start the service now, so the master key exists from the first start.
    {
        let Some(cell) = weak.upgrade() else { return };
        let (c, k) = (config.clone(), clock.clone());
        if let Err(e) = cell
            .get_or_try_init(|| async move { CaseService::open(&c, k).await.map(Arc::new) })
            .await
        {
            warn!(error = %e, "the case materials service did not start; retrying on use");
        }
    }
    let period = Duration::from_secs(config.privacy.retention_sweep_secs);
    loop {
        tokio::time::sleep(period).await;
        let Some(cell) = weak.upgrade() else { return };
        let Some(service) = cell.get().cloned() else {
            continue;
        };
        drop(cell);
        if let Err(e) = service.purge(clock.now_ms()).await {
            warn!(error = %e, "case retention run failed");
        }
    }
}
