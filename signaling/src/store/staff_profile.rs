//! Staff profiles (岗位、工号、照片): what the kiosk shows a resident about the clerk serving
//! them. A trait of its own so another store can implement exactly this; the SQLite
//! implementation is below it (migration `0054_staff_profiles.sql`), the PostgreSQL one in
//! [`postgres`].

mod postgres;

use async_trait::async_trait;

use super::StoreResult;
use super::sqlite::SqliteStore;

/// The largest photo accepted, in bytes: a 300×400 JPEG portrait is well under it, and it
/// travels inside a kiosk's status message.
pub const MAX_PHOTO_BYTES: usize = 64 * 1024;

/// A photo's type, from its first bytes (not from what the uploader claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoType {
    Jpeg,
    Png,
}

impl PhotoType {
    /// Recognises JPEG and PNG by their signatures; anything else is `None`.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(PhotoType::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(PhotoType::Png)
        } else {
            None
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            PhotoType::Jpeg => "image/jpeg",
            PhotoType::Png => "image/png",
        }
    }

    fn parse(mime: &str) -> Option<Self> {
        match mime {
            "image/jpeg" => Some(PhotoType::Jpeg),
            "image/png" => Some(PhotoType::Png),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaffProfile {
    pub clerk_id: String,
    /// 岗位
    pub post: String,
    /// 工号
    pub staff_number: String,
    pub photo: Option<(PhotoType, Vec<u8>)>,
    pub updated_ms: i64,
}

#[async_trait]
pub trait StaffProfileStore: Send + Sync + 'static {
    async fn staff_profile(&self, clerk_id: &str) -> StoreResult<Option<StaffProfile>>;
    /// Sets post and staff number, keeping the photo.
    async fn set_staff_card(
        &self,
        clerk_id: &str,
        post: &str,
        staff_number: &str,
        by: &str,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Sets the photo, keeping post and staff number.
    async fn set_staff_photo(
        &self,
        clerk_id: &str,
        photo: PhotoType,
        bytes: &[u8],
        by: &str,
        now_ms: i64,
    ) -> StoreResult<()>;
}

type Row = (String, String, String, Option<Vec<u8>>, Option<String>, i64);

/// A `staff_profiles` row as either database returns it; a photo without a known type is not
/// shown.
fn profile_from_row(
    (clerk_id, post, staff_number, photo, photo_type, updated_ms): Row,
) -> StaffProfile {
    let photo = match (photo, photo_type.as_deref().and_then(PhotoType::parse)) {
        (Some(bytes), Some(kind)) => Some((kind, bytes)),
        _ => None,
    };
    StaffProfile {
        clerk_id,
        post,
        staff_number,
        photo,
        updated_ms,
    }
}

#[async_trait]
impl StaffProfileStore for SqliteStore {
    async fn staff_profile(&self, clerk_id: &str) -> StoreResult<Option<StaffProfile>> {
        let row = sqlx::query_as::<_, Row>(
            "SELECT clerk_id, post, staff_number, photo, photo_type, updated_ms
             FROM staff_profiles WHERE clerk_id = ?",
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
             VALUES (?, ?, ?, ?, ?)
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
             VALUES (?, ?, ?, ?, ?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_are_recognised_by_their_bytes_not_their_name() {
        assert_eq!(
            PhotoType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0]),
            Some(PhotoType::Jpeg)
        );
        assert_eq!(
            PhotoType::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(PhotoType::Png)
        );
        assert_eq!(PhotoType::sniff(b"GIF89a"), None);
        assert_eq!(PhotoType::sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(PhotoType::sniff(&[]), None);
    }

    #[tokio::test]
    async fn card_and_photo_are_set_separately_and_keep_each_other() {
        use crate::domain::{Centre, Clerk, Role};
        use crate::store::Store;
        let store = SqliteStore::in_memory().await.expect("store");
        let centre = Centre {
            id: "c1".into(),
            name: "中心".into(),
            district: "区".into(),
            street: "街道".into(),
        };
        store.upsert_centre(&centre, 1).await.expect("centre");
        let clerk = Clerk {
            id: "k1".into(),
            centre_id: "c1".into(),
            username: "k1".into(),
            display_name: "王敏".into(),
            password_hash: "x".into(),
            roles: vec![Role::Clerk],
            active: true,
        };
        store.upsert_clerk(&clerk, 1).await.expect("clerk");
        assert_eq!(store.staff_profile("k1").await.expect("read"), None);
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
        store
            .set_staff_photo("k1", PhotoType::Jpeg, &jpeg, "k1", 10)
            .await
            .expect("photo");
        store
            .set_staff_card("k1", "综合窗口受理员", "SH0815", "sup", 20)
            .await
            .expect("card");
        let p = store
            .staff_profile("k1")
            .await
            .expect("read")
            .expect("profile");
        assert_eq!(
            (p.post.as_str(), p.staff_number.as_str()),
            ("综合窗口受理员", "SH0815")
        );
        assert_eq!(p.photo, Some((PhotoType::Jpeg, jpeg.to_vec())));
        assert_eq!(p.updated_ms, 20);
        // A profile for someone who is not staff is refused by the database.
        assert!(
            store
                .set_staff_card("nobody", "x", "y", "sup", 30)
                .await
                .is_err()
        );
    }
}
