//! Storage of case materials ([`CaseStore`]), separate from the core [`super::Store`] trait:
//! cases, their encrypted items and the append-only audit trail. The SQLite implementation is
//! below, the PostgreSQL one in `cases/postgres.rs`.

use async_trait::async_trait;
use sqlx::Row;

use super::StoreResult;
use super::sqlite::SqliteStore;

mod postgres;

/// One case: a served remote ticket and how the resident's identity was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub ticket_id: String,
    pub centre_id: String,
    pub device_id: String,
    pub clerk_id: String,
    pub ticket_number: String,
    pub created_ms: i64,
    pub identity_method: Option<String>,
    pub identity_ms: Option<i64>,
}

/// An item without its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemMeta {
    pub id: String,
    pub ticket_id: String,
    pub kind: String,
    pub mime: String,
    pub size_bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub sha256: String,
    pub created_ms: i64,
}

/// An item with its encrypted contents.
pub struct SealedItem {
    pub meta: ItemMeta,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub sealed: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub ticket_id: String,
    pub item_id: Option<String>,
    /// `clerk`, `device` or `system`.
    pub actor_kind: String,
    pub actor_id: String,
    /// `stored`, `viewed`, `revealed`, `exported`, `purged`, `finished_unverified`.
    pub action: String,
}

/// An item's wrapped key, as a master key rotation reads it (the item's contents stay put).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub item_id: String,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
}

/// An item's key wrapped again under another master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    pub item_id: String,
    /// The master key the item was under when it was read: the row changes only if it still is.
    pub from_key_id: String,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
}

#[async_trait]
pub trait CaseStore: Send + Sync + 'static {
    /// Creates the case unless it exists (then it is left as it is).
    async fn ensure_case(&self, case: &CaseRecord) -> StoreResult<()>;
    async fn case(&self, ticket_id: &str) -> StoreResult<Option<CaseRecord>>;
    /// Stores an item and its audit row in one transaction; `identity` records how the
    /// identity was verified when the case has no method yet.
    async fn add_item(
        &self,
        item: &SealedItem,
        audit: &AuditEntry,
        identity: Option<&str>,
    ) -> StoreResult<()>;
    async fn items(&self, ticket_id: &str) -> StoreResult<Vec<ItemMeta>>;
    async fn item(&self, ticket_id: &str, item_id: &str) -> StoreResult<Option<SealedItem>>;
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    async fn audit_log(&self, ticket_id: &str) -> StoreResult<Vec<AuditEntry>>;
    /// Deletes items created before `cutoff_ms`, auditing each; returns how many.
    async fn purge_items_before(&self, cutoff_ms: i64, now_ms: i64) -> StoreResult<u64>;
    /// Up to `limit` wrapped keys of items not under the master key `key_id`, with ids after
    /// `after`, in id order (one page of a key rotation).
    async fn wrapped_keys_not_under(
        &self,
        key_id: &str,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedKey>>;
    /// Replaces wrapped keys in one transaction, each only where the item is still under its
    /// `from_key_id`; returns how many rows changed. The sealed contents are not touched.
    async fn rewrap_keys(&self, rewraps: &[Rewrapped]) -> StoreResult<u64>;
    /// How many items are not under the master key `key_id`.
    async fn count_not_under(&self, key_id: &str) -> StoreResult<u64>;
    /// Up to `limit` wrapped keys of staff second-factor secrets not under the master key
    /// `key_id`, with clerk ids after `after`, in clerk id order (`item_id` is the clerk id).
    async fn second_factor_keys_not_under(
        &self,
        key_id: &str,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedKey>>;
    /// As [`CaseStore::rewrap_keys`] for second-factor secrets (`item_id` is the clerk id); the
    /// sealed secret is not touched.
    async fn rewrap_second_factor_keys(&self, rewraps: &[Rewrapped]) -> StoreResult<u64>;
    /// Rows outside the case tables that depend on the privacy master key and are not under
    /// `key_id`: staff second-factor secrets, and bookings whose sealed contact or number hash
    /// came from another master key. A rotation of that key does not cover them yet.
    async fn other_sealed_not_under(&self, key_id: &str) -> StoreResult<OtherSealed>;
}

/// What [`CaseStore::other_sealed_not_under`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherSealed {
    /// Staff second-factor (TOTP) secrets, enabled or waiting for their first code.
    pub second_factors: u64,
    /// Bookings with a sealed contact, or a number hash without one.
    pub bookings: u64,
}

impl OtherSealed {
    pub fn any(&self) -> bool {
        self.second_factors > 0 || self.bookings > 0
    }
}

fn wrapped(row: &sqlx::sqlite::SqliteRow) -> Result<WrappedKey, sqlx::Error> {
    Ok(WrappedKey {
        item_id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        wrapped_key: row.try_get("wrapped_key")?,
    })
}

fn meta(row: &sqlx::sqlite::SqliteRow) -> Result<ItemMeta, sqlx::Error> {
    Ok(ItemMeta {
        id: row.try_get("id")?,
        ticket_id: row.try_get("ticket_id")?,
        kind: row.try_get("kind")?,
        mime: row.try_get("mime")?,
        size_bytes: row.try_get("size_bytes")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        sha256: row.try_get("sha256")?,
        created_ms: row.try_get("created_ms")?,
    })
}

/// The trail row mirroring a case audit entry (ids only).
fn trail_entry(a: &AuditEntry) -> crate::audit::Entry {
    let subject = match &a.item_id {
        Some(item) => format!("ticket:{}/item:{item}", a.ticket_id),
        None => format!("ticket:{}", a.ticket_id),
    };
    crate::audit::Entry::new(
        a.at_ms,
        &format!("{}.{}", crate::audit::kind::CASE, a.action),
        &format!("{}:{}", a.actor_kind, a.actor_id),
        None,
        &subject,
        "",
    )
}

const INSERT_AUDIT: &str = "INSERT INTO case_audit (at_ms, ticket_id, item_id, actor_kind, actor_id, action) VALUES (?, ?, ?, ?, ?, ?)";

#[async_trait]
impl CaseStore for SqliteStore {
    async fn ensure_case(&self, c: &CaseRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO cases (ticket_id, centre_id, device_id, clerk_id, ticket_number, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO NOTHING",
        )
        .bind(&c.ticket_id)
        .bind(&c.centre_id)
        .bind(&c.device_id)
        .bind(&c.clerk_id)
        .bind(&c.ticket_number)
        .bind(c.created_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn case(&self, ticket_id: &str) -> StoreResult<Option<CaseRecord>> {
        let row = sqlx::query(
            "SELECT ticket_id, centre_id, device_id, clerk_id, ticket_number, created_ms, \
             identity_method, identity_ms FROM cases WHERE ticket_id = ?",
        )
        .bind(ticket_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(CaseRecord {
                ticket_id: r.try_get("ticket_id")?,
                centre_id: r.try_get("centre_id")?,
                device_id: r.try_get("device_id")?,
                clerk_id: r.try_get("clerk_id")?,
                ticket_number: r.try_get("ticket_number")?,
                created_ms: r.try_get("created_ms")?,
                identity_method: r.try_get("identity_method")?,
                identity_ms: r.try_get("identity_ms")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    async fn add_item(
        &self,
        item: &SealedItem,
        audit: &AuditEntry,
        identity: Option<&str>,
    ) -> StoreResult<()> {
        let m = &item.meta;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO case_items (id, ticket_id, kind, mime, size_bytes, width, height, sha256, \
             key_id, wrapped_key, sealed, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(&m.ticket_id)
        .bind(&m.kind)
        .bind(&m.mime)
        .bind(m.size_bytes)
        .bind(m.width)
        .bind(m.height)
        .bind(&m.sha256)
        .bind(&item.key_id)
        .bind(&item.wrapped_key)
        .bind(&item.sealed)
        .bind(m.created_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(INSERT_AUDIT)
            .bind(audit.at_ms)
            .bind(&audit.ticket_id)
            .bind(&audit.item_id)
            .bind(&audit.actor_kind)
            .bind(&audit.actor_id)
            .bind(&audit.action)
            .execute(&mut *tx)
            .await?;
        crate::audit::append(&mut tx, &trail_entry(audit)).await?;
        if let Some(method) = identity {
            sqlx::query(
                "UPDATE cases SET identity_method = ?, identity_ms = ? \
                 WHERE ticket_id = ? AND identity_method IS NULL",
            )
            .bind(method)
            .bind(m.created_ms)
            .bind(&m.ticket_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn items(&self, ticket_id: &str) -> StoreResult<Vec<ItemMeta>> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, kind, mime, size_bytes, width, height, sha256, created_ms \
             FROM case_items WHERE ticket_id = ? ORDER BY created_ms, id",
        )
        .bind(ticket_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(meta).collect::<Result<_, _>>()?)
    }

    async fn item(&self, ticket_id: &str, item_id: &str) -> StoreResult<Option<SealedItem>> {
        let row = sqlx::query(
            "SELECT id, ticket_id, kind, mime, size_bytes, width, height, sha256, created_ms, \
             key_id, wrapped_key, sealed FROM case_items WHERE ticket_id = ? AND id = ?",
        )
        .bind(ticket_id)
        .bind(item_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(SealedItem {
            meta: meta(&r)?,
            key_id: r.try_get("key_id")?,
            wrapped_key: r.try_get("wrapped_key")?,
            sealed: r.try_get("sealed")?,
        }))
    }

    async fn audit(&self, a: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(INSERT_AUDIT)
            .bind(a.at_ms)
            .bind(&a.ticket_id)
            .bind(&a.item_id)
            .bind(&a.actor_kind)
            .bind(&a.actor_id)
            .bind(&a.action)
            .execute(&mut *tx)
            .await?;
        crate::audit::append(&mut tx, &trail_entry(a)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_log(&self, ticket_id: &str) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at_ms, ticket_id, item_id, actor_kind, actor_id, action FROM case_audit \
             WHERE ticket_id = ? ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at_ms: r.try_get("at_ms")?,
                    ticket_id: r.try_get("ticket_id")?,
                    item_id: r.try_get("item_id")?,
                    actor_kind: r.try_get("actor_kind")?,
                    actor_id: r.try_get("actor_id")?,
                    action: r.try_get("action")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn purge_items_before(&self, cutoff_ms: i64, now_ms: i64) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query(
            "SELECT id, ticket_id FROM case_items WHERE created_ms < ? ORDER BY created_ms LIMIT 1000",
        )
        .bind(cutoff_ms)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id: String = r.try_get("id")?;
            let ticket: String = r.try_get("ticket_id")?;
            sqlx::query("DELETE FROM case_items WHERE id = ?")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_AUDIT)
                .bind(now_ms)
                .bind(&ticket)
                .bind(&id)
                .bind("system")
                .bind("retention")
                .bind("purged")
                .execute(&mut *tx)
                .await?;
            crate::audit::append(
                &mut tx,
                &trail_entry(&AuditEntry {
                    at_ms: now_ms,
                    ticket_id: ticket,
                    item_id: Some(id),
                    actor_kind: "system".into(),
                    actor_id: "retention".into(),
                    action: "purged".into(),
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn wrapped_keys_not_under(
        &self,
        key_id: &str,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedKey>> {
        let rows = sqlx::query(
            "SELECT id, key_id, wrapped_key FROM case_items WHERE key_id <> ? AND id > ? \
             ORDER BY id LIMIT ?",
        )
        .bind(key_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(wrapped).collect::<Result<_, _>>()?)
    }

    async fn rewrap_keys(&self, rewraps: &[Rewrapped]) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        let mut changed = 0;
        for r in rewraps {
            changed += sqlx::query(
                "UPDATE case_items SET key_id = ?, wrapped_key = ? WHERE id = ? AND key_id = ?",
            )
            .bind(&r.key_id)
            .bind(&r.wrapped_key)
            .bind(&r.item_id)
            .bind(&r.from_key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn count_not_under(&self, key_id: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM case_items WHERE key_id <> ?")
            .bind(key_id)
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn second_factor_keys_not_under(
        &self,
        key_id: &str,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedKey>> {
        let rows = sqlx::query(
            "SELECT clerk_id AS id, key_id, wrapped_key FROM staff_two_factor \
             WHERE key_id <> ? AND clerk_id > ? ORDER BY clerk_id LIMIT ?",
        )
        .bind(key_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(wrapped).collect::<Result<_, _>>()?)
    }

    async fn rewrap_second_factor_keys(&self, rewraps: &[Rewrapped]) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        let mut changed = 0;
        for r in rewraps {
            changed += sqlx::query(
                "UPDATE staff_two_factor SET key_id = ?, wrapped_key = ? \
                 WHERE clerk_id = ? AND key_id = ?",
            )
            .bind(&r.key_id)
            .bind(&r.wrapped_key)
            .bind(&r.item_id)
            .bind(&r.from_key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn other_sealed_not_under(&self, key_id: &str) -> StoreResult<OtherSealed> {
        let second_factors: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM staff_two_factor WHERE key_id <> ?")
                .bind(key_id)
                .fetch_one(self.pool())
                .await?;
        let bookings: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM appointments WHERE (key_id IS NOT NULL AND key_id <> ?) \
             OR (key_id IS NULL AND mobile_hash IS NOT NULL)",
        )
        .bind(key_id)
        .fetch_one(self.pool())
        .await?;
        Ok(OtherSealed {
            second_factors: u64::try_from(second_factors).unwrap_or(0),
            bookings: u64::try_from(bookings).unwrap_or(0),
        })
    }
}
