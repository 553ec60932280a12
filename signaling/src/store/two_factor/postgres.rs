//! The PostgreSQL implementation of [`super::TwoFactorStore`]: the SQLite statements with
//! PostgreSQL placeholders; secrets are BYTEA. Each one-time use is a single conditional
//! UPDATE, atomic on its own, so two logins racing with the same code cannot both pass.

use async_trait::async_trait;

use super::{
    RecordRow, SealedSecret, SecondFactorStage, StagedLogin, StagedRow, TwoFactorRecord,
    TwoFactorStore, record, staged,
};
use crate::store::postgres::PgStore;
use crate::store::{NewLogin, StoreResult};

#[async_trait]
impl TwoFactorStore for PgStore {
    async fn create_staged_login(
        &self,
        login: &NewLogin<'_>,
        stage: SecondFactorStage,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clerk_sessions (token_hash, clerk_id, created_ms, expires_ms,
                last_seen_ms, source_address, password_change_only, second_factor_stage)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(login.token_hash)
        .bind(login.clerk_id)
        .bind(login.now_ms)
        .bind(login.expires_ms)
        .bind(login.now_ms)
        .bind(login.source_address)
        .bind(i64::from(login.password_change_only))
        .bind(stage.to_db())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn staged_login(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Option<StagedLogin>> {
        let row: Option<StagedRow> = sqlx::query_as(
            "SELECT s.clerk_id, s.second_factor_stage, s.password_change_only, s.code_tries,
                    s.expires_ms
             FROM clerk_sessions s JOIN clerks c ON c.id = s.clerk_id
             WHERE s.token_hash = $1 AND s.expires_ms > $2 AND s.last_seen_ms > $3
               AND c.active = 1",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(now_ms.saturating_sub(idle_ms))
        .fetch_optional(self.pool())
        .await?;
        staged(self, row).await
    }

    async fn count_code_try(&self, token_hash: &str) -> StoreResult<i64> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE clerk_sessions SET code_tries = code_tries + 1 WHERE token_hash = $1
             RETURNING code_tries",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map_or(i64::MAX, |(n,)| n))
    }

    async fn two_factor(&self, clerk_id: &str) -> StoreResult<Option<TwoFactorRecord>> {
        let row: Option<RecordRow> = sqlx::query_as(
            "SELECT key_id, wrapped_key, sealed_secret, enabled, last_step
             FROM staff_two_factor WHERE clerk_id = $1",
        )
        .bind(clerk_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(record))
    }

    async fn begin_two_factor(
        &self,
        clerk_id: &str,
        secret: &SealedSecret,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO staff_two_factor (clerk_id, key_id, wrapped_key, sealed_secret,
                enabled, last_step, created_ms) VALUES ($1,$2,$3,$4,0,0,$5)
             ON CONFLICT (clerk_id) DO UPDATE SET key_id = excluded.key_id,
                wrapped_key = excluded.wrapped_key, sealed_secret = excluded.sealed_secret,
                created_ms = excluded.created_ms, last_step = 0
             WHERE staff_two_factor.enabled = 0",
        )
        .bind(clerk_id)
        .bind(&secret.key_id)
        .bind(&secret.wrapped_key)
        .bind(&secret.sealed)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn enable_two_factor(
        &self,
        clerk_id: &str,
        step: i64,
        recovery_code_hashes: &[String],
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE staff_two_factor SET enabled = 1, last_step = $1, enabled_ms = $2
             WHERE clerk_id = $3 AND enabled = 0",
        )
        .bind(step)
        .bind(now_ms)
        .bind(clerk_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM staff_recovery_codes WHERE clerk_id = $1")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_code_hashes {
            sqlx::query("INSERT INTO staff_recovery_codes (clerk_id, code_hash) VALUES ($1, $2)")
                .bind(clerk_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, clerk_id: &str, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE staff_two_factor SET last_step = $1
             WHERE clerk_id = $2 AND enabled = 1 AND last_step < $3",
        )
        .bind(step)
        .bind(clerk_id)
        .bind(step)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn use_recovery_code(
        &self,
        clerk_id: &str,
        code_hash: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE staff_recovery_codes SET used_ms = $1
             WHERE clerk_id = $2 AND code_hash = $3 AND used_ms IS NULL",
        )
        .bind(now_ms)
        .bind(clerk_id)
        .bind(code_hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn recovery_codes_left(&self, clerk_id: &str) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM staff_recovery_codes WHERE clerk_id = $1 AND used_ms IS NULL",
        )
        .bind(clerk_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    async fn reset_two_factor(&self, clerk_id: &str) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM staff_two_factor WHERE clerk_id = $1",
            "DELETE FROM staff_recovery_codes WHERE clerk_id = $1",
        ] {
            sqlx::query(sql).bind(clerk_id).execute(&mut *tx).await?;
        }
        let ended = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = $1")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }

    async fn set_password_by_other(&self, clerk_id: &str, password_hash: &str) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE clerks SET password_hash = $1, must_change_password = 1 WHERE id = $2")
            .bind(password_hash)
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = $1")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }
}
