//! A relay's data directory filled through the store before the relay starts: faster than the
//! admin API for hundreds of kiosks, and the relay then runs on exactly what was written.

use std::path::Path;

use anyhow::Result;
use protocol::queue::WindowMode;
use signaling::auth::{hash_device_secret, hash_secret};
use signaling::clock::{Clock, SystemClock};
use signaling::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, Role, WindowRecord,
};
use signaling::store::Store;
use signaling::store::sqlite::SqliteStore;

/// Writes one centre's records; everything it writes belongs to that centre.
pub struct Seeder {
    store: SqliteStore,
    centre_id: String,
    now_ms: i64,
}

impl Seeder {
    /// Opens (and migrates) the store in `data_dir` for the centre `centre_id`; `now_ms` stamps
    /// the records that carry a time.
    pub async fn open(data_dir: &Path, centre_id: &str, now_ms: i64) -> Result<Self> {
        Ok(Self {
            store: SqliteStore::open(data_dir).await?,
            centre_id: centre_id.to_owned(),
            now_ms,
        })
    }

    pub async fn centre(&self, name: &str) -> Result<()> {
        let centre = Centre {
            id: self.centre_id.clone(),
            name: name.into(),
            district: String::new(),
            street: String::new(),
        };
        Ok(self.store.upsert_centre(&centre, self.now_ms).await?)
    }

    pub async fn category(
        &self,
        id: &str,
        prefix: &str,
        name: &str,
        sort_order: i64,
    ) -> Result<()> {
        let category = CategoryRecord {
            id: id.into(),
            centre_id: self.centre_id.clone(),
            prefix: prefix.into(),
            name: name.into(),
            sort_order,
        };
        Ok(self.store.upsert_category(&category).await?)
    }

    /// An active extension point (延伸点) with no address and no service hours.
    pub async fn extension_point(&self, id: &str, name: &str) -> Result<()> {
        let point = ExtensionPoint {
            id: id.into(),
            centre_id: self.centre_id.clone(),
            name: name.into(),
            address: String::new(),
            phone: String::new(),
            service_hours: String::new(),
            hours: None,
            status: "active".into(),
        };
        Ok(self
            .store
            .upsert_extension_point(&point, self.now_ms)
            .await?)
    }

    /// A window nobody is signed in at.
    pub async fn window(
        &self,
        id: &str,
        name: &str,
        mode: WindowMode,
        category_ids: Vec<String>,
    ) -> Result<()> {
        let window = WindowRecord {
            id: id.into(),
            centre_id: self.centre_id.clone(),
            name: name.into(),
            mode,
            category_ids,
            clerk_id: None,
            clerk_name: None,
        };
        Ok(self.store.upsert_window(&window).await?)
    }

    /// An active clerk; `password_hash` from [`hash_secret`], hashed once by the caller for
    /// many clerks (argon2 is the slow part of seeding).
    pub async fn clerk(
        &self,
        id: &str,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<()> {
        let clerk = Clerk {
            id: id.into(),
            centre_id: self.centre_id.clone(),
            username: username.into(),
            display_name: display_name.into(),
            password_hash: password_hash.into(),
            roles: vec![Role::Clerk],
            active: true,
        };
        Ok(self.store.upsert_clerk(&clerk, self.now_ms).await?)
    }

    /// An active device; `secret_hash` from [`hash_device_secret`].
    pub async fn device(
        &self,
        id: &str,
        kind: DeviceKind,
        extension_point_id: Option<&str>,
        name: &str,
        secret_hash: &str,
    ) -> Result<()> {
        let device = Device {
            id: id.into(),
            centre_id: self.centre_id.clone(),
            extension_point_id: extension_point_id.map(Into::into),
            kind,
            name: name.into(),
            secret_hash: secret_hash.into(),
            active: true,
        };
        Ok(self.store.upsert_device(&device, self.now_ms).await?)
    }

    /// Closes the store so that the relay finds the database alone.
    pub async fn close(self) {
        self.store.pool().close().await;
    }
}

/// A load-test centre: `c1` with category `civil` (prefix A) and extension point `p1`, and per
/// session `i` in `0..sessions` a remote window `w{i}`, a clerk `clerk{i}` (id `clerk-{i}`)
/// and a kiosk `k{i}` at `p1`, so that kiosk `i` and clerk `i` make served session `i`.
#[derive(Debug, Clone, Copy)]
pub struct LoadCentre<'a> {
    pub sessions: usize,
    pub centre_name: &'a str,
    pub extension_point_name: &'a str,
    /// A clerk's display name is this followed by its number.
    pub clerk_name_prefix: &'a str,
    /// Every clerk's password.
    pub password: &'a str,
    /// Every kiosk's device secret.
    pub kiosk_secret: &'a str,
}

impl LoadCentre<'_> {
    pub async fn seed(&self, data_dir: &Path) -> Result<()> {
        let s = Seeder::open(data_dir, "c1", SystemClock.now_ms()).await?;
        s.centre(self.centre_name).await?;
        s.category("civil", "A", "民政", 0).await?;
        s.extension_point("p1", self.extension_point_name).await?;
        let password_hash = hash_secret(self.password)?;
        let device_hash = hash_device_secret(self.kiosk_secret);
        for i in 0..self.sessions {
            let name = format!("{i}号远程窗口");
            let civil = vec!["civil".to_owned()];
            s.window(&format!("w{i}"), &name, WindowMode::Remote, civil)
                .await?;
            let display_name = format!("{}{i}", self.clerk_name_prefix);
            let (id, username) = (format!("clerk-{i}"), format!("clerk{i}"));
            s.clerk(&id, &username, &display_name, &password_hash)
                .await?;
            let kiosk = format!("k{i}");
            s.device(&kiosk, DeviceKind::Kiosk, Some("p1"), &kiosk, &device_hash)
                .await?;
        }
        s.close().await;
        Ok(())
    }
}
