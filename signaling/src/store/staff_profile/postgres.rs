//! The PostgreSQL implementation of [`super::StaffProfileStore`]: the SQLite statements in
//! PostgreSQL placeholders; the photo is BYTEA.

use async_trait::async_trait;

use super::{PhotoType, Row, StaffProfile, StaffProfileStore, profile_from_row};
use crate::store::StoreResult;
use crate::store::postgres::PgStore;

#[async_trait]
impl StaffProfileStore for PgStore {
    async fn staff_profile(&self, clerk_id: &str) -> StoreResult<Option<StaffProfile>> {
        let row = sqlx::query_as::<_, Row>(
            "SELECT clerk_id, post, staff_number, photo, photo_type, updated_ms
             FROM staff_profiles WHERE clerk_id = $1",
        )
        .bind(clerk_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(profile_from_row))
    }

    async fn set_staff_card(
        &self,
        clerk_id: &str,
        post: &str,
        staff_number: &str,
        by: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO staff_profiles (clerk_id, post, staff_number, updated_ms, updated_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (clerk_id) DO UPDATE SET post = excluded.post,
                 staff_number = excluded.staff_number, updated_ms = excluded.updated_ms,
                 updated_by = excluded.updated_by",
        )
        .bind(clerk_id)
        .bind(post)
        .bind(staff_number)
        .bind(now_ms)
        .bind(by)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn set_staff_photo(
        &self,
        clerk_id: &str,
        photo: PhotoType,
        bytes: &[u8],
        by: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO staff_profiles (clerk_id, photo, photo_type, updated_ms, updated_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (clerk_id) DO UPDATE SET photo = excluded.photo,
                 photo_type = excluded.photo_type, updated_ms = excluded.updated_ms,
                 updated_by = excluded.updated_by",
        )
        .bind(clerk_id)
        .bind(bytes)
        .bind(photo.mime())
        .bind(now_ms)
        .bind(by)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
