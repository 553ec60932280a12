//! The PostgreSQL implementation of [`super::CaseStore`]. The sealed contents and wrapped keys
//! are BYTEA; the audit table refuses updates, deletes and TRUNCATE by trigger, as in SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{
    AuditEntry, CaseRecord, CaseStore, ItemMeta, OtherSealed, Rewrapped, SealedItem, WrappedKey,
    trail_entry,
};
use crate::store::StoreResult;
use crate::store::postgres::PgStore;

fn meta(row: &sqlx::postgres::PgRow) -> Result<ItemMeta, sqlx::Error> {
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

const INSERT_AUDIT: &str = "INSERT INTO case_audit (at_ms, ticket_id, item_id, actor_kind, actor_id, action) VALUES ($1, $2, $3, $4, $5, $6)";

#[async_trait]
impl CaseStore for PgStore {
    async fn ensure_case(&self, c: &CaseRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO cases (ticket_id, centre_id, device_id, clerk_id, ticket_number, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticket_id) DO NOTHING",
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
             identity_method, identity_ms FROM cases WHERE ticket_id = $1",
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
             key_id, wrapped_key, sealed, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        if let Some(method) = identity {
            sqlx::query(
                "UPDATE cases SET identity_method = $1, identity_ms = $2 \
                 WHERE ticket_id = $3 AND identity_method IS NULL",
            )
            .bind(method)
            .bind(m.created_ms)
            .bind(&m.ticket_id)
            .execute(&mut *tx)
            .await?;
        }
        // The trail row last: the chain's lock is taken after every row lock (see audit::append_pg).
        crate::audit::append_pg(&mut tx, &trail_entry(audit)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn items(&self, ticket_id: &str) -> StoreResult<Vec<ItemMeta>> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, kind, mime, size_bytes, width, height, sha256, created_ms \
             FROM case_items WHERE ticket_id = $1 ORDER BY created_ms, id",
        )
        .bind(ticket_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(meta).collect::<Result<_, _>>()?)
    }

    async fn item(&self, ticket_id: &str, item_id: &str) -> StoreResult<Option<SealedItem>> {
        let row = sqlx::query(
            "SELECT id, ticket_id, kind, mime, size_bytes, width, height, sha256, created_ms, \
             key_id, wrapped_key, sealed FROM case_items WHERE ticket_id = $1 AND id = $2",
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
        crate::audit::append_pg(&mut tx, &trail_entry(a)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_log(&self, ticket_id: &str) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at_ms, ticket_id, item_id, actor_kind, actor_id, action FROM case_audit \
             WHERE ticket_id = $1 ORDER BY id",
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
        let mut purged = Vec::new();
        let rows = sqlx::query(
            "SELECT id, ticket_id FROM case_items WHERE created_ms < $1 ORDER BY created_ms LIMIT 1000",
        )
        .bind(cutoff_ms)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let id: String = r.try_get("id")?;
            let ticket: String = r.try_get("ticket_id")?;
            sqlx::query("DELETE FROM case_items WHERE id = $1")
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
            purged.push(AuditEntry {
                at_ms: now_ms,
                ticket_id: ticket,
                item_id: Some(id),
                actor_kind: "system".into(),
                actor_id: "retention".into(),
                action: "purged".into(),
            });
        }
        for entry in &purged {
            crate::audit::append_pg(&mut tx, &trail_entry(entry)).await?;
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
            "SELECT id, key_id, wrapped_key FROM case_items WHERE key_id <> $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(key_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WrappedKey {
                    item_id: r.try_get("id")?,
                    key_id: r.try_get("key_id")?,
                    wrapped_key: r.try_get("wrapped_key")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn rewrap_keys(&self, rewraps: &[Rewrapped]) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        let mut changed = 0;
        for r in rewraps {
            changed += sqlx::query(
                "UPDATE case_items SET key_id = $1, wrapped_key = $2 WHERE id = $3 AND key_id = $4",
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
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM case_items WHERE key_id <> $1")
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
            "SELECT clerk_id, key_id, wrapped_key FROM staff_two_factor \
             WHERE key_id <> $1 AND clerk_id > $2 ORDER BY clerk_id LIMIT $3",
        )
        .bind(key_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WrappedKey {
                    item_id: row.try_get("clerk_id")?,
                    key_id: row.try_get("key_id")?,
                    wrapped_key: row.try_get("wrapped_key")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn rewrap_second_factor_keys(&self, rewraps: &[Rewrapped]) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        let mut changed = 0;
        for r in rewraps {
            changed += sqlx::query(
                "UPDATE staff_two_factor SET key_id = $1, wrapped_key = $2 \
                 WHERE clerk_id = $3 AND key_id = $4",
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
            sqlx::query_scalar("SELECT COUNT(*) FROM staff_two_factor WHERE key_id <> $1")
                .bind(key_id)
                .fetch_one(self.pool())
                .await?;
        let bookings: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM appointments WHERE (key_id IS NOT NULL AND key_id <> $1) \
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
