//! Staff second factor (TOTP) in the store: the sealed secret and its last used step, hashed
//! recovery codes, and where each login stands (code awaited, enrollment required). A trait of
//! its own, a supertrait of [`super::Store`]; SQLite below (migration `0057_two_factor.sql`),
//! PostgreSQL in [`postgres`]. What is checked (codes, windows, roles) is in `http::two_factor`
//! and `crate::totp`; the store only keeps the state and makes each one-time use atomic.

mod postgres;

use async_trait::async_trait;

use super::sqlite::SqliteStore;
use super::{NewLogin, Store, StoreResult};
use crate::domain::Clerk;

/// Where a login stands with the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorStage {
    /// Done, or not needed: an ordinary login.
    Done,
    /// The password was right; the 6-digit code (or a recovery code) is awaited. Not a
    /// session: it opens nothing but `POST /api/v1/login/code`.
    AwaitingCode,
    /// The staff member must enroll before anything else (their role requires a second factor
    /// and none is active).
    MustEnroll,
}

impl SecondFactorStage {
    fn to_db(self) -> i64 {
        match self {
            SecondFactorStage::Done => 0,
            SecondFactorStage::AwaitingCode => 1,
            SecondFactorStage::MustEnroll => 2,
        }
    }

    fn from_db(v: i64) -> Self {
        match v {
            0 => SecondFactorStage::Done,
            2 => SecondFactorStage::MustEnroll,
            // Anything unexpected is treated as the most restrictive stage.
            _ => SecondFactorStage::AwaitingCode,
        }
    }
}

/// A live login (or a login awaiting its code) with its restrictions.
#[derive(Debug, Clone)]
pub struct StagedLogin {
    pub clerk: Clerk,
    pub stage: SecondFactorStage,
    /// The password was set by someone else and must be changed first.
    pub password_change_only: bool,
    /// Wrong codes sent against this login so far.
    pub code_tries: i64,
    pub expires_ms: i64,
}

/// A TOTP secret sealed under the privacy master key (see `cases::crypto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// A staff member's second factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactorRecord {
    pub secret: SealedSecret,
    /// False while an enrollment waits for its first code.
    pub enabled: bool,
    /// The last time step whose code was accepted.
    pub last_step: i64,
}

#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    /// Saves a login at the given stage (a `Done` login is what `Store::create_login` makes).
    async fn create_staged_login(
        &self,
        login: &NewLogin<'_>,
        stage: SecondFactorStage,
    ) -> StoreResult<()>;
    /// The login behind `token_hash` at whatever stage: not expired, not idle, clerk active.
    async fn staged_login(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Option<StagedLogin>>;
    /// Counts one wrong code against a login; the count after it.
    async fn count_code_try(&self, token_hash: &str) -> StoreResult<i64>;

    async fn two_factor(&self, clerk_id: &str) -> StoreResult<Option<TwoFactorRecord>>;
    /// Starts (or restarts) an enrollment with a new secret; false when a second factor is
    /// already active (it must be reset first).
    async fn begin_two_factor(
        &self,
        clerk_id: &str,
        secret: &SealedSecret,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Activates the pending secret after its first code (`step`) and replaces the recovery
    /// codes, in one transaction; false when there was no pending enrollment.
    async fn enable_two_factor(
        &self,
        clerk_id: &str,
        step: i64,
        recovery_code_hashes: &[String],
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Records `step` as used if it is later than the last used one; false otherwise (a
    /// replay, or a concurrent login that used it first).
    async fn use_totp_step(&self, clerk_id: &str, step: i64) -> StoreResult<bool>;
    /// Uses up a recovery code; false when it is unknown or already used.
    async fn use_recovery_code(
        &self,
        clerk_id: &str,
        code_hash: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;
    async fn recovery_codes_left(&self, clerk_id: &str) -> StoreResult<i64>;
    /// Removes the second factor and its recovery codes and ends every login of the clerk;
    /// how many logins ended.
    async fn reset_two_factor(&self, clerk_id: &str) -> StoreResult<u64>;
    /// Sets a password chosen by someone else (a supervisor, the CLI): it must be changed at the
    /// next login, and every login of the clerk ends; how many ended.
    async fn set_password_by_other(&self, clerk_id: &str, password_hash: &str) -> StoreResult<u64>;
}

type StagedRow = (String, i64, i64, i64, i64);

#[async_trait]
impl TwoFactorStore for SqliteStore {
    async fn create_staged_login(
        &self,
        login: &NewLogin<'_>,
        stage: SecondFactorStage,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clerk_sessions (token_hash, clerk_id, created_ms, expires_ms,
                last_seen_ms, source_address, password_change_only, second_factor_stage)
             VALUES (?,?,?,?,?,?,?,?)",
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
             WHERE s.token_hash = ? AND s.expires_ms > ? AND s.last_seen_ms > ?
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
            "UPDATE clerk_sessions SET code_tries = code_tries + 1 WHERE token_hash = ?
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
             FROM staff_two_factor WHERE clerk_id = ?",
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
                enabled, last_step, created_ms) VALUES (?,?,?,?,0,0,?)
             ON CONFLICT(clerk_id) DO UPDATE SET key_id = excluded.key_id,
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
            "UPDATE staff_two_factor SET enabled = 1, last_step = ?, enabled_ms = ?
             WHERE clerk_id = ? AND enabled = 0",
        )
        .bind(step)
        .bind(now_ms)
        .bind(clerk_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM staff_recovery_codes WHERE clerk_id = ?")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_code_hashes {
            sqlx::query("INSERT INTO staff_recovery_codes (clerk_id, code_hash) VALUES (?, ?)")
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
            "UPDATE staff_two_factor SET last_step = ?
             WHERE clerk_id = ? AND enabled = 1 AND last_step < ?",
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
            "UPDATE staff_recovery_codes SET used_ms = ?
             WHERE clerk_id = ? AND code_hash = ? AND used_ms IS NULL",
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
            "SELECT COUNT(*) FROM staff_recovery_codes WHERE clerk_id = ? AND used_ms IS NULL",
        )
        .bind(clerk_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    async fn reset_two_factor(&self, clerk_id: &str) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM staff_two_factor WHERE clerk_id = ?",
            "DELETE FROM staff_recovery_codes WHERE clerk_id = ?",
        ] {
            sqlx::query(sql).bind(clerk_id).execute(&mut *tx).await?;
        }
        let ended = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = ?")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }

    async fn set_password_by_other(&self, clerk_id: &str, password_hash: &str) -> StoreResult<u64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE clerks SET password_hash = ?, must_change_password = 1 WHERE id = ?")
            .bind(password_hash)
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        let ended = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = ?")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }
}

type RecordRow = (String, Vec<u8>, Vec<u8>, i64, i64);

fn record((key_id, wrapped_key, sealed, enabled, last_step): RecordRow) -> TwoFactorRecord {
    TwoFactorRecord {
        secret: SealedSecret {
            key_id,
            wrapped_key,
            sealed,
        },
        enabled: enabled != 0,
        last_step,
    }
}

async fn staged(
    store: &(dyn Store + '_),
    row: Option<StagedRow>,
) -> StoreResult<Option<StagedLogin>> {
    let Some((clerk_id, stage, change_only, code_tries, expires_ms)) = row else {
        return Ok(None);
    };
    Ok(store.clerk(&clerk_id).await?.map(|clerk| StagedLogin {
        clerk,
        stage: SecondFactorStage::from_db(stage),
        password_change_only: change_only != 0,
        code_tries,
        expires_ms,
    }))
}
