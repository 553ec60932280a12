//! The store conformance suite: every test here runs against both back ends, the embedded
//! SQLite store (in memory) and PostgreSQL (a fresh database on the test binary's private
//! server, [`super::private_postgres`]). A test is written once, as an `async fn(Backend)`, and
//! listed in the `conformance!` invocation at the bottom, which instantiates it in the modules
//! `on_sqlite` and `on_postgres`.
//!
//! They go through the store traits only, except where the point is what the database itself
//! refuses (append-only tables, unique constraints): there the same SQL is sent to either.

use std::sync::Arc;

use protocol::control::EvaluationLevel;
use protocol::device::{DeviceKind as PartKind, DeviceStatus};
use protocol::inspection::{CheckOutcome, InspectionReport};
use protocol::media::Slot;
use protocol::queue::{PauseReason, QueueOp, TicketChannel, TicketState, WindowMode, WindowPause};

use super::cases::{AuditEntry, CaseRecord, CaseStore, ItemMeta, OtherSealed, SealedItem};
use super::evaluations::{
    EvaluationRecord, EvaluationStore, FollowUpFilter, FollowUpSaved, FollowUpState,
    FollowUpUpdate, ForwardState, InsertOutcome, NewFollowUp,
};
use super::postgres::PgStore;
use super::private_postgres::PrivatePostgres;
use super::recordings::{
    AccessAction, RecordingAccess, RecordingQuery, RecordingRow, RecordingState, RecordingStore,
    TrackSummary,
};
use super::registry::{CommitError, EventQuery, InspectionRecord, RegistryStore, Scope};
use super::sqlite::SqliteStore;
use super::staff_profile::{PhotoType, StaffProfileStore};
use super::{Durability, LoginRecord, NewLogin, Store};
use crate::audit::{Break, Trail};
use crate::clock::{Clock, ManualClock};
use crate::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, Role, WindowRecord,
};
use crate::queue::{Action, Category, Command, Event, QueueConfig, QueueCore, Session, Window};
use crate::registry::alerts::{Alert, AlertKind, AlertState};
use crate::registry::divisions::Divisions;
use crate::registry::fields::tests::draft;
use crate::registry::lifecycle::{self, Actor, CounterState, EventAction};

/// One store under test, through every trait, plus raw SQL for what the database refuses.
pub(crate) struct Backend {
    pub main: Arc<dyn Store>,
    pub recordings: Arc<dyn RecordingStore>,
    pub evaluations: Arc<dyn EvaluationStore>,
    pub registry: Arc<dyn RegistryStore>,
    pub cases: Arc<dyn CaseStore>,
    pub staff: Arc<dyn StaffProfileStore>,
    pub appointments: Arc<dyn super::appointments::AppointmentStore>,
    raw: Raw,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Backend {
    /// Runs one statement directly; the number of rows it changed.
    async fn execute(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        Ok(match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
        })
    }

    /// Runs one statement with text arguments, in each dialect's placeholders.
    async fn execute_with(
        &self,
        sqlite: &'static str,
        postgres: &'static str,
        args: &[&str],
    ) -> Result<u64, sqlx::Error> {
        Ok(match &self.raw {
            Raw::Sqlite(p) => {
                let mut q = sqlx::query(sqlite);
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(p).await?.rows_affected()
            }
            Raw::Postgres(p) => {
                let mut q = sqlx::query(postgres);
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(p).await?.rows_affected()
            }
        })
    }

    /// The audit trail kept in this database, as the relay opens it.
    fn trail(&self) -> Trail {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
        match &self.raw {
            Raw::Sqlite(p) => Trail::new(p.clone(), clock),
            Raw::Postgres(p) => Trail::new(p.clone(), clock),
        }
    }

    /// What someone with write access to the database does before editing the trail: takes
    /// the append-only triggers off (SQLite: drops them; PostgreSQL: the table's owner or a
    /// superuser disables them).
    async fn take_off_trail_triggers(&self) {
        let statements: &[&'static str] = match &self.raw {
            Raw::Sqlite(_) => &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ],
            Raw::Postgres(_) => &["ALTER TABLE audit_log DISABLE TRIGGER USER"],
        };
        for sql in statements {
            self.execute(sql).await.expect("take the triggers off");
        }
    }

    /// One integer from a query.
    async fn scalar(&self, sql: &'static str) -> i64 {
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .expect("scalar query")
    }
}

pub(crate) async fn open_sqlite() -> Backend {
    let s = SqliteStore::in_memory().await.expect("sqlite store");
    Backend {
        main: Arc::new(s.clone()),
        recordings: Arc::new(s.clone()),
        evaluations: Arc::new(s.clone()),
        registry: Arc::new(s.clone()),
        cases: Arc::new(s.clone()),
        staff: Arc::new(s.clone()),
        appointments: Arc::new(s.clone()),
        raw: Raw::Sqlite(s.pool().clone()),
    }
}

pub(crate) async fn open_postgres() -> Backend {
    let url = PrivatePostgres::fresh_database()
        .await
        .expect("a private PostgreSQL server (Debian package postgresql)");
    let s = PgStore::connect(&url, Durability::PowerLoss)
        .await
        .expect("postgres store");
    Backend {
        main: Arc::new(s.clone()),
        recordings: Arc::new(s.clone()),
        evaluations: Arc::new(s.clone()),
        registry: Arc::new(s.clone()),
        cases: Arc::new(s.clone()),
        staff: Arc::new(s.clone()),
        appointments: Arc::new(s.clone()),
        raw: Raw::Postgres(s.pool().clone()),
    }
}

const T0: i64 = 1_795_000_000_000;
const DAY: i64 = 20_775; // the service day of T0 in Shanghai (days since 1970-01-01)

fn centre(id: &str) -> Centre {
    Centre {
        id: id.into(),
        name: format!("{id} 社区事务受理服务中心"),
        district: "徐汇区".into(),
        street: "天平路街道".into(),
    }
}

fn clerk(id: &str, centre_id: &str) -> Clerk {
    Clerk {
        id: id.into(),
        centre_id: centre_id.into(),
        username: format!("user-{id}"),
        display_name: format!("窗口 {id}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        roles: vec![Role::Clerk, Role::Supervisor],
        active: true,
    }
}

fn point(id: &str, centre_id: &str) -> ExtensionPoint {
    ExtensionPoint {
        id: id.into(),
        centre_id: centre_id.into(),
        name: "天平路居委会".into(),
        address: "天平路 1 号".into(),
        phone: "021-64000000".into(),
        service_hours: "工作日 9:00-17:00".into(),
        hours: None,
        status: "active".into(),
    }
}

/// A centre with two categories, a remote window, a clerk and a kiosk.
async fn seed(b: &Backend) {
    let m = &b.main;
    m.upsert_centre(&centre("c1"), T0).await.expect("centre");
    for (id, prefix, order) in [("civil", "A", 1), ("social", "B", 2)] {
        m.upsert_category(&CategoryRecord {
            id: id.into(),
            centre_id: "c1".into(),
            prefix: prefix.into(),
            name: format!("事项 {prefix}"),
            sort_order: order,
        })
        .await
        .expect("category");
    }
    m.upsert_clerk(&clerk("k1", "c1"), T0).await.expect("clerk");
    m.upsert_window(&WindowRecord {
        id: "w1".into(),
        centre_id: "c1".into(),
        name: "1号窗口".into(),
        mode: WindowMode::Remote,
        category_ids: vec!["social".into(), "civil".into()],
        clerk_id: None,
        clerk_name: None,
    })
    .await
    .expect("window");
    m.upsert_extension_point(&point("p1", "c1"), T0)
        .await
        .expect("point");
    m.upsert_device(
        &Device {
            id: "kiosk-1".into(),
            centre_id: "c1".into(),
            extension_point_id: Some("p1".into()),
            kind: DeviceKind::Kiosk,
            name: "天平路一体机".into(),
            secret_hash: "sha256:00".into(),
            active: true,
        },
        T0,
    )
    .await
    .expect("device");
}

async fn centre_setup_round_trips(b: Backend) {
    seed(&b).await;
    let m = &b.main;
    assert_eq!(m.centres().await.expect("centres"), vec![centre("c1")]);
    let mut renamed = centre("c1");
    renamed.name = "改名后的中心".into();
    m.upsert_centre(&renamed, T0 + 1).await.expect("rename");
    assert_eq!(m.centre("c1").await.expect("centre"), Some(renamed));
    assert_eq!(m.centre("nope").await.expect("centre"), None);
    let cats = m.categories("c1").await.expect("categories");
    assert_eq!(
        cats.iter().map(|c| c.prefix.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    let windows = m.windows("c1").await.expect("windows");
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].category_ids, ["civil", "social"]);
    assert_eq!(windows[0].mode, WindowMode::Remote);
    // Changing a window replaces its categories in one go.
    let mut w = windows[0].clone();
    w.category_ids = vec!["civil".into()];
    m.upsert_window(&w).await.expect("window again");
    assert_eq!(
        m.windows("c1").await.expect("windows")[0].category_ids,
        ["civil"]
    );
    // A second centre with the same category prefix is fine; the same prefix twice in one
    // centre is refused by the database.
    assert!(
        m.upsert_category(&CategoryRecord {
            id: "dup".into(),
            centre_id: "c1".into(),
            prefix: "A".into(),
            name: "dup".into(),
            sort_order: 9,
        })
        .await
        .is_err(),
        "two categories with prefix A in one centre"
    );
}

fn login<'a>(token_hash: &'a str, clerk_id: &'a str, now_ms: i64, expires_ms: i64) -> NewLogin<'a> {
    NewLogin {
        token_hash,
        clerk_id,
        now_ms,
        expires_ms,
        source_address: "203.0.113.7",
        password_change_only: false,
    }
}

/// Long enough that the idle timeout plays no part.
const NO_IDLE: i64 = i64::MAX / 4;

async fn staff_and_logins(b: Backend) {
    seed(&b).await;
    let m = &b.main;
    let k1 = clerk("k1", "c1");
    assert_eq!(m.clerk("k1").await.expect("clerk"), Some(k1.clone()));
    assert_eq!(
        m.clerk_by_username("user-k1").await.expect("by name"),
        Some(k1.clone())
    );
    m.create_login(&login("hash-a", "k1", T0, T0 + 1000))
        .await
        .expect("login");
    m.create_login(&login("hash-b", "k1", T0, T0 + 10))
        .await
        .expect("login");
    assert!(
        m.create_login(&login("hash-a", "k1", T0, T0 + 1000))
            .await
            .is_err(),
        "a token hash is stored once"
    );
    assert_eq!(
        m.login_clerk("hash-a", T0 + 999, NO_IDLE)
            .await
            .expect("live"),
        Some(k1.clone())
    );
    assert_eq!(
        m.login_clerk("hash-a", T0 + 1000, NO_IDLE)
            .await
            .expect("expired"),
        None
    );
    assert_eq!(m.purge_logins(T0 + 10).await.expect("purge"), 1);
    m.delete_login("hash-a").await.expect("logout");
    assert_eq!(
        m.login_clerk("hash-a", T0, NO_IDLE).await.expect("gone"),
        None
    );
    // A disabled account's logins stop working, and are ended.
    m.create_login(&login("hash-c", "k1", T0, T0 + 1000))
        .await
        .expect("login");
    let mut off = k1;
    off.active = false;
    m.upsert_clerk(&off, T0).await.expect("disable");
    assert_eq!(
        m.login_clerk("hash-c", T0, NO_IDLE)
            .await
            .expect("disabled"),
        None
    );
    assert_eq!(
        m.clerk("k1").await.expect("clerk").map(|c| c.active),
        Some(false)
    );
    assert!(
        m.clerk_logins("k1", T0, NO_IDLE)
            .await
            .expect("list")
            .is_empty(),
        "disabling ends the logins"
    );
}

/// Staff sessions: idle timeout and last use, the list a staff member sees, ending one or all,
/// logins that may only change the password, and what ends every login.
async fn staff_sessions(b: Backend) {
    const MIN: i64 = 60_000;
    const IDLE: i64 = 30 * MIN;
    seed(&b).await;
    let m = &b.main;
    m.upsert_clerk(&clerk("k2", "c1"), T0).await.expect("clerk");
    let day = T0 + 24 * 3600 * 1000;
    m.create_login(&login("s-old", "k1", T0, day))
        .await
        .expect("login");
    m.create_login(&NewLogin {
        source_address: "198.51.100.9",
        ..login("s-new", "k1", T0 + MIN, day)
    })
    .await
    .expect("login");
    m.create_login(&login("s-other", "k2", T0, day))
        .await
        .expect("login");

    // Used within the idle timeout it stays alive and its last use moves on; left idle, it ends.
    assert!(
        m.login_clerk("s-old", T0 + IDLE - 1, IDLE)
            .await
            .expect("live")
            .is_some()
    );
    assert!(
        m.login_clerk("s-old", T0 + 2 * IDLE - 2, IDLE)
            .await
            .expect("kept alive by its use")
            .is_some()
    );
    assert_eq!(
        m.login_clerk("s-new", T0 + MIN + IDLE, IDLE)
            .await
            .expect("idle"),
        None,
        "a login unused for the idle timeout ends"
    );
    // A use within a minute of the last recorded one is not written again.
    let listed = m
        .clerk_logins("k1", T0 + 2 * IDLE - 2, IDLE)
        .await
        .expect("list");
    assert_eq!(
        listed,
        vec![LoginRecord {
            id: "s-old".into(),
            created_ms: T0,
            last_seen_ms: T0 + 2 * IDLE - 2,
            expires_ms: day,
            source_address: "203.0.113.7".into(),
        }]
    );
    assert!(
        m.login_clerk("s-old", T0 + 2 * IDLE - 2 + MIN / 2, IDLE)
            .await
            .expect("live")
            .is_some()
    );
    assert_eq!(
        m.clerk_logins("k1", T0 + 2 * IDLE, IDLE)
            .await
            .expect("list")[0]
            .last_seen_ms,
        T0 + 2 * IDLE - 2
    );
    // Newest first, each with where it came from.
    let listed = m.clerk_logins("k1", T0 + MIN, IDLE).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|l| (l.id.as_str(), l.source_address.as_str()))
            .collect::<Vec<_>>(),
        vec![("s-new", "198.51.100.9"), ("s-old", "203.0.113.7")]
    );

    // Ending one: only the clerk's own.
    assert!(
        !m.delete_clerk_login("k1", "s-other")
            .await
            .expect("not theirs")
    );
    assert!(m.delete_clerk_login("k1", "s-new").await.expect("own"));
    assert!(!m.delete_clerk_login("k1", "s-new").await.expect("gone"));
    m.create_login(&login("s-third", "k1", T0, day))
        .await
        .expect("login");
    assert_eq!(m.delete_clerk_logins("k1").await.expect("all"), 2);
    assert!(
        m.login_clerk("s-other", T0, IDLE)
            .await
            .expect("other clerk")
            .is_some(),
        "another clerk's login is untouched"
    );

    // A password set by someone else: the next login may only change it.
    assert!(!m.must_change_password("k1").await.expect("flag"));
    m.require_password_change("k1").await.expect("require");
    assert!(m.must_change_password("k1").await.expect("flag"));
    assert!(!m.must_change_password("nobody").await.expect("no clerk"));
    m.create_login(&NewLogin {
        password_change_only: true,
        ..login("s-change", "k1", T0, day)
    })
    .await
    .expect("login");
    assert_eq!(
        m.login_clerk("s-change", T0, IDLE).await.expect("limited"),
        None,
        "a change-only login does nothing else"
    );
    assert!(
        m.password_change_login("s-change", T0, IDLE)
            .await
            .expect("change")
            .is_some()
    );
    m.set_own_password("k1", "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3")
        .await
        .expect("set");
    assert!(!m.must_change_password("k1").await.expect("cleared"));
    assert_eq!(
        m.password_change_login("s-change", T0, IDLE)
            .await
            .expect("ended"),
        None,
        "a new password ends every login"
    );
    assert_eq!(
        m.clerk("k1")
            .await
            .expect("clerk")
            .expect("k1")
            .password_hash,
        "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3"
    );

    // A password changed by an administrator (upsert) ends the logins too; other edits do not.
    m.create_login(&login("s-admin", "k2", T0, day))
        .await
        .expect("login");
    let mut k2 = m.clerk("k2").await.expect("clerk").expect("k2");
    k2.display_name = "改名".into();
    m.upsert_clerk(&k2, T0).await.expect("rename");
    assert!(
        m.login_clerk("s-admin", T0, IDLE)
            .await
            .expect("kept")
            .is_some()
    );
    k2.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$YWRt$YWRt".into();
    m.upsert_clerk(&k2, T0).await.expect("reset");
    assert_eq!(m.delete_clerk_logins("k2").await.expect("none left"), 0);
}

async fn points_and_devices(b: Backend) {
    seed(&b).await;
    let m = &b.main;
    let mut p = point("p1", "c1");
    assert_eq!(
        m.extension_point("p1").await.expect("point"),
        Some(p.clone())
    );
    p.hours = Some(protocol::hours::ServiceHours::default());
    p.status = "suspended".into();
    m.upsert_extension_point(&p, T0).await.expect("update");
    assert_eq!(m.extension_point("p1").await.expect("point"), Some(p));
    let d = m.device("kiosk-1").await.expect("device").expect("present");
    assert_eq!(d.kind, DeviceKind::Kiosk);
    assert!(d.active);
    assert_eq!(d.extension_point_id.as_deref(), Some("p1"));
    m.touch_device("kiosk-1", T0 + 5).await.expect("touch");
    let seen = b
        .scalar("SELECT last_seen_ms FROM devices WHERE id = 'kiosk-1'")
        .await;
    assert_eq!(seen, T0 + 5);
    assert!(m.device("nope").await.expect("device").is_none());
}

fn queue_core() -> QueueCore {
    QueueCore::new(
        "c1",
        QueueConfig::default(),
        vec![
            Category {
                id: "civil".into(),
                prefix: "A".into(),
                name: "事项 A".into(),
            },
            Category {
                id: "social".into(),
                prefix: "B".into(),
                name: "事项 B".into(),
            },
        ],
        vec![Window {
            id: "w1".into(),
            name: "1号窗口".into(),
            mode: WindowMode::Remote,
            category_ids: vec!["civil".into(), "social".into()],
            clerk_id: None,
            clerk_name: None,
            clerk_connected: false,
            current: None,
            pause: None,
        }],
    )
}

/// decide, persist, apply: what the queue driver does with each command.
async fn step(b: &Backend, q: &mut QueueCore, now: i64, command: Command) -> Vec<Event> {
    let events = q.decide(now, &command).expect("decide");
    b.main.persist_queue_events(&events).await.expect("persist");
    q.apply(&events);
    events
}

fn remote_ticket(device: &str) -> Command {
    Command::Issue {
        channel: TicketChannel::Remote,
        category_id: "civil".into(),
        appointment: None,
        device_id: Some(device.into()),
        extension_point_id: Some("p1".into()),
    }
}

async fn queue_survives_a_reload(b: Backend) {
    seed(&b).await;
    let mut q = queue_core();
    step(
        &b,
        &mut q,
        T0,
        Command::OpenWindow {
            clerk_id: "k1".into(),
            clerk_name: "窗口 k1".into(),
            window_id: "w1".into(),
        },
    )
    .await;
    step(&b, &mut q, T0 + 1, remote_ticket("kiosk-1")).await;
    step(&b, &mut q, T0 + 2, remote_ticket("kiosk-2")).await;
    let called = step(
        &b,
        &mut q,
        T0 + 3,
        Command::Op {
            clerk_id: "k1".into(),
            op: QueueOp::CallNext,
        },
    )
    .await;
    assert!(called.iter().any(|e| matches!(
        e,
        Event::Ticket {
            action: Action::Called,
            ..
        }
    )));
    let snapshot = b.main.load_queue("c1", DAY).await.expect("load");
    assert_eq!(snapshot.tickets.len(), 2);
    let live: Vec<_> = q.live_tickets().cloned().collect();
    for t in &snapshot.tickets {
        let mine = live.iter().find(|l| l.id == t.id).expect("same tickets");
        assert_eq!(t, mine, "a ticket reads back exactly as decided");
    }
    assert_eq!(
        snapshot.tickets.iter().map(|t| t.state).collect::<Vec<_>>(),
        [TicketState::Called, TicketState::Waiting],
        "in issue order"
    );
    assert_eq!(
        snapshot.window_clerks,
        vec![("w1".to_owned(), "k1".to_owned(), "窗口 k1".to_owned())]
    );
    let audit = b.scalar("SELECT COUNT(*) FROM ticket_events").await;
    assert_eq!(audit, 3, "one audit row per ticket change");
    // The queue's record of who did what to a ticket is append-only.
    for sql in [
        "UPDATE ticket_events SET clerk_id = 'k9'",
        "DELETE FROM ticket_events",
    ] {
        assert!(b.execute(sql).await.is_err(), "{sql} was accepted");
    }
    if matches!(b.raw, Raw::Postgres(_)) {
        assert!(b.execute("TRUNCATE ticket_events CASCADE").await.is_err());
    }
    assert_eq!(b.scalar("SELECT COUNT(*) FROM ticket_events").await, 3);
    // Finished tickets of an earlier day are not loaded; unfinished ones are, whatever the day.
    assert_eq!(
        b.main
            .load_queue("c1", DAY + 1)
            .await
            .expect("load")
            .tickets
            .len(),
        2
    );
    let serving = snapshot.tickets[0].id.clone();
    for op in [
        QueueOp::Start {
            ticket_id: serving.clone(),
        },
        QueueOp::Finish { ticket_id: serving },
    ] {
        step(
            &b,
            &mut q,
            T0 + 10,
            Command::Op {
                clerk_id: "k1".into(),
                op,
            },
        )
        .await;
    }
    assert_eq!(
        b.main
            .load_queue("c1", DAY)
            .await
            .expect("load")
            .tickets
            .len(),
        2
    );
    assert_eq!(
        b.main
            .load_queue("c1", DAY + 1)
            .await
            .expect("load")
            .tickets
            .len(),
        1
    );
}

async fn a_failed_batch_leaves_nothing(b: Backend) {
    seed(&b).await;
    let q = queue_core();
    let events = q.decide(T0, &remote_ticket("kiosk-1")).expect("decide");
    let Event::Ticket { ticket, .. } = &events[0] else {
        panic!("a ticket event")
    };
    // The same ticket number twice for the same day in one batch: the second row breaks the
    // unique (centre, day, number) constraint, and the first must not stay either.
    let mut twin = ticket.clone();
    twin.id = format!("{}-twin", ticket.id);
    let mut batch = events.clone();
    batch.push(Event::Ticket {
        ticket: twin,
        action: Action::Issued,
        at_ms: T0,
        clerk_id: None,
        window_id: None,
    });
    assert!(b.main.persist_queue_events(&batch).await.is_err());
    assert!(
        b.main
            .load_queue("c1", DAY)
            .await
            .expect("load")
            .tickets
            .is_empty()
    );
    assert_eq!(b.scalar("SELECT COUNT(*) FROM ticket_events").await, 0);
}

fn recording(id: &str, centre: &str, started_ms: i64) -> RecordingRow {
    RecordingRow {
        id: id.into(),
        ticket_id: format!("t-{id}"),
        ticket_number: "YA001".into(),
        centre_id: centre.into(),
        window_id: "w8".into(),
        clerk_id: "clerk-1".into(),
        device_id: "k1".into(),
        extension_point_id: Some("p1".into()),
        state: RecordingState::Recording,
        started_ms,
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
    }
}

async fn recordings_are_saved_completed_listed_and_purged_with_an_audit_entry(b: Backend) {
    let store = &b.recordings;
    let mut r = recording("r1", "c1", 1_000);
    store.save_recording(&r).await.expect("begin");
    assert_eq!(store.unfinished_recordings().await.expect("q").len(), 1);
    r.state = RecordingState::Complete;
    r.ended_ms = Some(61_000);
    r.size_bytes = Some(12345);
    r.sha256 = Some("ab".repeat(32));
    r.file = Some("r1.webm.sealed".into());
    r.encrypted = true;
    r.tracks = vec![TrackSummary {
        slot: Slot::KioskCamera,
        codec: "vp8".into(),
        frames: 1800,
        dropped_frames: 0,
    }];
    store.save_recording(&r).await.expect("finish");
    store
        .save_recording(&recording("r2", "c2", 2_000))
        .await
        .expect("other centre");
    store
        .save_recording(&recording("r3", "c1", 3_000))
        .await
        .expect("newer");
    assert_eq!(store.recording("r1").await.expect("get"), Some(r.clone()));
    let listed = store
        .recordings(&RecordingQuery {
            centre_id: "c1".into(),
            limit: 10,
            ..RecordingQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r3", "r1"],
        "newest first, own centre only"
    );
    let filtered = store
        .recordings(&RecordingQuery {
            centre_id: "c1".into(),
            from_ms: Some(500),
            to_ms: Some(2_000),
            ticket_number: Some("YA001".into()),
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(
        filtered.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r1"]
    );
    assert_eq!(
        store
            .recordings_started_before(1_001, 10)
            .await
            .expect("due")
            .len(),
        1,
        "only finished recordings are due"
    );
    let audit = RecordingAccess {
        at_ms: 5_000,
        actor: "system:retention".into(),
        action: AccessAction::Purge,
        recording_id: Some("r1".into()),
        centre_id: Some("c1".into()),
        detail: "retention 180 days".into(),
    };
    store.mark_purged("r1", &audit).await.expect("purge");
    let purged = store.recording("r1").await.expect("get").expect("kept");
    assert_eq!(purged.state, RecordingState::Purged);
    assert_eq!(purged.file, None);
    assert_eq!(
        store.recording_audit(Some("r1"), 10).await.expect("audit"),
        vec![audit]
    );
}

async fn the_access_trail_cannot_be_changed(b: Backend) {
    for n in 0..2 {
        b.recordings
            .audit_recording_access(&RecordingAccess {
                at_ms: n,
                actor: "clerk-boss".into(),
                action: AccessAction::Play,
                recording_id: Some("r1".into()),
                centre_id: Some("c1".into()),
                detail: String::new(),
            })
            .await
            .expect("audit");
    }
    assert!(b.execute("DELETE FROM recording_access").await.is_err());
    assert!(
        b.execute("UPDATE recording_access SET actor = 'x'")
            .await
            .is_err()
    );
    let newest_first = b.recordings.recording_audit(None, 10).await.expect("audit");
    assert_eq!(
        newest_first.iter().map(|a| a.at_ms).collect::<Vec<_>>(),
        [1, 0]
    );
    assert!(newest_first.iter().all(|a| a.actor == "clerk-boss"));
}

async fn case_items_keep_their_sealed_bytes_and_an_append_only_trail(b: Backend) {
    let c = &b.cases;
    let case = CaseRecord {
        ticket_id: "t1".into(),
        centre_id: "c1".into(),
        device_id: "kiosk-1".into(),
        clerk_id: "k1".into(),
        ticket_number: "YA001".into(),
        created_ms: T0,
        identity_method: None,
        identity_ms: None,
    };
    c.ensure_case(&case).await.expect("case");
    let mut other = case.clone();
    other.clerk_id = "someone else".into();
    c.ensure_case(&other).await.expect("again");
    assert_eq!(c.case("t1").await.expect("case"), Some(case.clone()));
    // Every byte value, so a text column or an encoding step would show.
    let sealed: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let item = SealedItem {
        meta: ItemMeta {
            id: "it-1".into(),
            ticket_id: "t1".into(),
            kind: "id_card".into(),
            mime: "application/json".into(),
            size_bytes: 512,
            width: None,
            height: Some(0),
            sha256: "cd".repeat(32),
            created_ms: T0 + 1,
        },
        key_id: "mk-1".into(),
        wrapped_key: vec![0, 1, 2, 0xff, 0],
        sealed: sealed.clone(),
    };
    let stored = AuditEntry {
        at_ms: T0 + 1,
        ticket_id: "t1".into(),
        item_id: Some("it-1".into()),
        actor_kind: "device".into(),
        actor_id: "kiosk-1".into(),
        action: "stored".into(),
    };
    c.add_item(&item, &stored, Some("id_card"))
        .await
        .expect("item");
    let got = c.item("t1", "it-1").await.expect("item").expect("present");
    assert_eq!(got.sealed, sealed);
    assert_eq!(got.wrapped_key, item.wrapped_key);
    assert_eq!(got.meta, item.meta);
    assert!(c.item("t2", "it-1").await.expect("item").is_none());
    assert_eq!(c.items("t1").await.expect("items"), vec![item.meta.clone()]);
    let verified = c.case("t1").await.expect("case").expect("present");
    assert_eq!(verified.identity_method.as_deref(), Some("id_card"));
    assert_eq!(verified.identity_ms, Some(T0 + 1));
    assert!(
        c.add_item(&item, &stored, None).await.is_err(),
        "an item id is stored once"
    );
    assert_eq!(c.audit_log("t1").await.expect("log"), vec![stored.clone()]);
    assert_eq!(c.purge_items_before(T0 + 1, T0 + 5).await.expect("none"), 0);
    assert_eq!(c.purge_items_before(T0 + 2, T0 + 5).await.expect("one"), 1);
    assert!(c.items("t1").await.expect("items").is_empty());
    let log = c.audit_log("t1").await.expect("log");
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].action, "purged");
    assert_eq!(log[1].at_ms, T0 + 5);
    assert!(b.execute("DELETE FROM case_audit").await.is_err());
    assert!(
        b.execute("UPDATE case_audit SET action = 'x'")
            .await
            .is_err()
    );
    assert_eq!(c.audit_log("t1").await.expect("log").len(), 2);
}

/// The case key's rotation re-wraps staff second-factor secrets like case items (stopped
/// midway the keyring opens the secret, resumed only the new key does, the sealed secret
/// untouched), and refuses — before any key file or row changes — while a booking depends on a
/// key other than the one it would switch to.
async fn case_key_rotation_rewraps_second_factors_and_refuses_over_bookings(b: Backend) {
    use crate::cases::crypto::{Keyring, MasterKey, Sealed};
    use crate::http::two_factor::secret_object;
    use crate::keys::rotate::{Budget, RotateError, rotate_cases};
    use crate::keys::{KeyBytes, read_key_file, sibling, write_key_file};
    use crate::store::two_factor::SealedSecret;

    async fn run(
        b: &Backend,
        trail: &Trail,
        path: &std::path::Path,
        given: Option<KeyBytes>,
        limit: Option<u64>,
    ) -> Result<crate::keys::rotate::Outcome, RotateError> {
        let mut budget = Budget::new(limit);
        rotate_cases(&*b.cases, trail, "cli:test", path, given, &mut budget).await
    }
    async fn secret_of(b: &Backend) -> Sealed {
        let r = b.main.two_factor("k1").await.expect("read").expect("row");
        Sealed {
            key_id: r.secret.key_id,
            wrapped_key: r.secret.wrapped_key,
            ciphertext: r.secret.sealed,
        }
    }

    seed(&b).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cases.key");
    let old = KeyBytes::new([0x44; 32]);
    let new = KeyBytes::new([0x55; 32]);
    write_key_file(&path, &old).expect("old key");
    let trail = b.trail();
    let untouched = |path: &std::path::Path| {
        assert_eq!(read_key_file(path).expect("key").id(), old.id(), "key kept");
        assert!(!sibling(path, "next").exists(), "no new key written");
        assert!(!sibling(path, "previous").exists());
    };

    let object = secret_object("k1");
    let totp_secret = b"twenty bytes secret!".to_vec();
    let sealed = MasterKey::from_key(&old)
        .seal(&object, &totp_secret)
        .expect("seal");
    assert!(
        b.main
            .begin_two_factor(
                "k1",
                &SealedSecret {
                    key_id: sealed.key_id.clone(),
                    wrapped_key: sealed.wrapped_key.clone(),
                    sealed: sealed.ciphertext.clone(),
                },
                T0,
            )
            .await
            .expect("enroll")
    );
    assert_eq!(
        b.cases
            .other_sealed_not_under(&new.id_hex())
            .await
            .expect("count"),
        OtherSealed {
            second_factors: 1,
            bookings: 0
        }
    );

    // A live booking under the old key: refused, nothing changed.
    let mut booked = appointments::booking(1, "h1", appointments::SLOT);
    if let Some(c) = booked.contact.as_mut() {
        c.key_id = old.id_hex();
    }
    assert_eq!(
        b.appointments.book(&booked, 2).await.expect("book"),
        crate::store::appointments::BookOutcome::Booked
    );
    let err = run(&b, &trail, &path, Some(new.clone()), None)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, RotateError::NotCovered { bookings: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("Nothing was changed"), "{err}");
    untouched(&path);
    assert!(
        matches!(
            run(&b, &trail, &path, None, None).await,
            Err(RotateError::NotCovered { .. })
        ),
        "a random new key is refused the same way"
    );
    untouched(&path);
    assert_eq!(secret_of(&b).await.key_id, old.id_hex());

    // Cancelled and past its day, the booking's contact and number hash are purged.
    assert!(
        b.appointments
            .cancel_booking("ap-1", T0 + 10)
            .await
            .expect("cancel")
    );
    assert_eq!(
        b.appointments
            .purge_booking_contacts(appointments::SLOT.end_ms + 1, T0 + 20)
            .await
            .expect("purge"),
        1
    );

    // Stopped before any write: the new key waits, the keyring still opens the secret.
    let first = run(&b, &trail, &path, Some(new.clone()), Some(0))
        .await
        .expect("first run");
    assert!(!first.complete);
    assert!(sibling(&path, "next").exists());
    let ring = Keyring::load(&path).expect("ring");
    assert_eq!(
        ring.open(&object, &secret_of(&b).await).expect("midway"),
        totp_secret
    );
    // Resumed: the secret's key is re-wrapped, its ciphertext untouched.
    let second = run(&b, &trail, &path, None, None).await.expect("resumed");
    assert!(second.complete);
    assert_eq!((second.rewrapped, second.second_factors), (1, 1));
    assert_eq!(read_key_file(&path).expect("key").id(), new.id());
    let now = secret_of(&b).await;
    assert_eq!(now.key_id, new.id_hex());
    assert_eq!(
        now.ciphertext, sealed.ciphertext,
        "the secret was not rewritten"
    );
    assert_eq!(
        MasterKey::from_key(&new)
            .open(&object, &now)
            .expect("new key opens"),
        totp_secret
    );
    let old_key = MasterKey::from_key(&old);
    assert!(
        old_key.open(&object, &now).is_err(),
        "the old key alone does not"
    );
    let forged = Sealed {
        key_id: old_key.id().to_owned(),
        ..now
    };
    assert!(
        old_key.open(&object, &forged).is_err(),
        "not even under the old id"
    );
    assert!(
        !b.cases
            .other_sealed_not_under(&new.id_hex())
            .await
            .expect("count")
            .any()
    );
    let rows = trail.last(1).await.expect("trail");
    assert!(
        rows[0].detail.contains("second_factors=1"),
        "{}",
        rows[0].detail
    );
}

/// A master key rotation on this database: stopped after two items, everything still opens
/// (under the old or the new key); resumed, every item is under the new key only, its sealed
/// contents byte for byte what they were; the trail has the runs with their counts.
async fn case_keys_rotate_without_touching_contents(b: Backend) {
    use crate::cases::crypto::{Keyring, MasterKey, Sealed};
    use crate::cases::{CaseOrigin, CaseService};
    use crate::keys::rotate::{Budget, rotate_cases};
    use crate::keys::{KeyBytes, sibling, write_key_file};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cases.key");
    let old = KeyBytes::new([0x11; 32]);
    write_key_file(&path, &old).expect("old key");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
    let service = CaseService::with_store(
        b.cases.clone(),
        MasterKey::load(&path).expect("load"),
        clock,
        180,
    );
    let origin = CaseOrigin {
        ticket_id: "t-rot".into(),
        centre_id: "c1".into(),
        device_id: "kiosk-1".into(),
        clerk_id: "k1".into(),
        ticket_number: "YA009".into(),
    };
    let mut plain = Vec::new();
    for i in 0..5u8 {
        let bytes: Vec<u8> = (0..=255u8).map(|x| x ^ i).collect();
        let id = service
            .store_bytes(
                &origin,
                "scan",
                "text/plain",
                bytes.clone(),
                None,
                ("clerk", "k1"),
            )
            .await
            .expect("stored");
        plain.push((id, bytes));
    }
    let before: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        for (id, _) in &plain {
            v.push(
                b.cases
                    .item("t-rot", id)
                    .await
                    .expect("item")
                    .expect("present")
                    .sealed,
            );
        }
        v
    };
    let sealed_of = |item: SealedItem| Sealed {
        key_id: item.key_id,
        wrapped_key: item.wrapped_key,
        ciphertext: item.sealed,
    };
    let trail = b.trail();

    let new = KeyBytes::new([0x22; 32]);
    let first = rotate_cases(
        &*b.cases,
        &trail,
        "cli:test",
        &path,
        Some(new.clone()),
        &mut Budget::new(Some(2)),
    )
    .await
    .expect("first run");
    assert_eq!(first.rewrapped, 2);
    assert!(!first.complete);
    assert!(
        sibling(&path, "next").exists(),
        "the new key waits beside the old"
    );
    assert_eq!(
        b.cases.count_not_under(&new.id_hex()).await.expect("count"),
        3
    );
    // Midway, the relay's keyring (current + next) opens every item.
    let ring = Keyring::load(&path).expect("ring");
    for (id, bytes) in &plain {
        let item = b
            .cases
            .item("t-rot", id)
            .await
            .expect("item")
            .expect("present");
        assert_eq!(
            &ring.open(id, &sealed_of(item)).expect("opens midway"),
            bytes
        );
    }
    // A different new key cannot be started over a pending one.
    assert!(
        rotate_cases(
            &*b.cases,
            &trail,
            "cli:test",
            &path,
            Some(KeyBytes::new([0x33; 32])),
            &mut Budget::new(None)
        )
        .await
        .is_err()
    );

    let second = rotate_cases(
        &*b.cases,
        &trail,
        "cli:test",
        &path,
        None,
        &mut Budget::new(None),
    )
    .await
    .expect("resumed");
    assert!(second.complete);
    assert_eq!(second.rewrapped, 3);
    assert!(!sibling(&path, "next").exists());
    assert!(!sibling(&path, "previous").exists());
    let now_key = MasterKey::load(&path).expect("new key in place");
    assert_eq!(now_key.id(), new.id_hex());
    let old_key = MasterKey::from_key(&old);
    for ((id, bytes), sealed_before) in plain.iter().zip(&before) {
        let item = b
            .cases
            .item("t-rot", id)
            .await
            .expect("item")
            .expect("present");
        assert_eq!(
            &item.sealed, sealed_before,
            "the contents were not rewritten"
        );
        let sealed = sealed_of(item);
        assert_eq!(&now_key.open(id, &sealed).expect("new key opens"), bytes);
        assert!(
            old_key.open(id, &sealed).is_err(),
            "the old key alone does not"
        );
        let forged = Sealed {
            key_id: old_key.id().to_owned(),
            ..sealed
        };
        assert!(
            old_key.open(id, &forged).is_err(),
            "not even under the old id"
        );
    }
    let rows = trail.last(10).await.expect("trail");
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert!(
        kinds.ends_with(&[
            "keys.rotate.start",
            "keys.rotate.end",
            "keys.rotate.start",
            "keys.rotate.end"
        ]),
        "{kinds:?}"
    );
    let last = rows.last().expect("row");
    assert!(
        last.detail.contains("rewrapped=3") && last.detail.contains("complete=true"),
        "{}",
        last.detail
    );
    let first_end = &rows[rows.len() - 3];
    assert!(
        first_end.detail.contains("rewrapped=2 ") && first_end.detail.contains("complete=false"),
        "{}",
        first_end.detail
    );
}

fn session(ticket: &str, started_ms: i64) -> Session {
    Session {
        ticket_id: ticket.into(),
        ticket_number: "YA001".into(),
        centre_id: "c1".into(),
        device_id: "kiosk-1".into(),
        extension_point_id: Some("p1".into()),
        window_id: "w1".into(),
        clerk_id: "k1".into(),
        category_id: "civil".into(),
        started_ms,
    }
}

fn evaluation(id: &str, ticket: &str, level: Option<EvaluationLevel>) -> EvaluationRecord {
    EvaluationRecord {
        id: id.into(),
        ticket_id: ticket.into(),
        ticket_number: "YA001".into(),
        centre_id: "c1".into(),
        centre_name: "中心".into(),
        category_id: "civil".into(),
        category_name: "事项 A".into(),
        window_id: "w1".into(),
        window_name: "1号窗口".into(),
        clerk_id: "k1".into(),
        clerk_name: "窗口 k1".into(),
        extension_point_id: "p1".into(),
        extension_point_name: "天平路居委会".into(),
        device_id: "kiosk-1".into(),
        level,
        reasons: if level.is_some() {
            vec!["r1".into(), "r2".into()]
        } else {
            Vec::new()
        },
        service_started_ms: T0,
        service_ended_ms: T0 + 60_000,
        evaluated_ms: T0 + 61_000,
        received_ms: T0 + 62_000,
    }
}

async fn evaluations_sessions_and_forwarding(b: Backend) {
    let e = &b.evaluations;
    e.remember_session(&session("t1", T0), T0 + 10)
        .await
        .expect("session");
    e.remember_session(&session("t1", T0 + 1), T0 + 5)
        .await
        .expect("older end");
    assert_eq!(
        e.ended_session("t1").await.expect("session"),
        Some((session("t1", T0), T0 + 10)),
        "the latest ended session wins"
    );
    e.remember_session(&session("t1", T0 + 2), T0 + 20)
        .await
        .expect("newer end");
    assert_eq!(
        e.ended_session("t1").await.expect("session"),
        Some((session("t1", T0 + 2), T0 + 20))
    );
    assert_eq!(e.forget_sessions_before(T0 + 21).await.expect("forget"), 1);
    assert_eq!(e.ended_session("t1").await.expect("session"), None);

    let bad = evaluation("ev-1", "t1", EvaluationLevel::from_score(1));
    let followup = NewFollowUp {
        due_date: "2026-12-09".into(),
        due_ms: T0 + 86_400_000,
    };
    assert_eq!(
        e.insert_evaluation(&bad, Some(&followup), T0 + 100)
            .await
            .expect("insert"),
        InsertOutcome::Stored
    );
    assert_eq!(
        e.insert_evaluation(&bad, Some(&followup), T0 + 100)
            .await
            .expect("repeat"),
        InsertOutcome::Duplicate {
            device_id: "kiosk-1".into()
        }
    );
    assert_eq!(
        e.insert_evaluation(&evaluation("ev-2", "t1", None), None, T0)
            .await
            .expect("second for the ticket"),
        InsertOutcome::TicketEvaluated
    );
    let stored = e.evaluation("ev-1").await.expect("get").expect("present");
    assert_eq!(stored.record, bad);
    assert_eq!(stored.forwarding.state, ForwardState::Pending);
    let unrated = evaluation("ev-3", "t3", None);
    e.insert_evaluation(&unrated, None, T0 + 50)
        .await
        .expect("unrated");
    assert_eq!(
        e.evaluation("ev-3")
            .await
            .expect("get")
            .expect("present")
            .record,
        unrated
    );
    assert_eq!(e.next_forward_ms().await.expect("next"), Some(T0 + 50));
    let due = e.due_forwards(T0 + 100, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|d| d.record.id.as_str()).collect::<Vec<_>>(),
        ["ev-3", "ev-1"]
    );
    e.forward_delivered("ev-3", 1, T0 + 200)
        .await
        .expect("delivered");
    e.forward_failed("ev-1", 1, Some(T0 + 1_000), "HTTP 503")
        .await
        .expect("retry");
    assert_eq!(e.next_forward_ms().await.expect("next"), Some(T0 + 1_000));
    e.forward_failed("ev-1", 2, None, "HTTP 400")
        .await
        .expect("dead");
    assert_eq!(e.next_forward_ms().await.expect("next"), None);
    let dead = e.dead_letters("c1", 10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].forwarding.error.as_deref(), Some("HTTP 400"));
    assert_eq!(
        dead[0].forwarding.next_ms,
        T0 + 1_000,
        "kept on a dead letter"
    );
    assert!(
        !e.requeue_dead_letter("c2", "ev-1", T0)
            .await
            .expect("other centre")
    );
    assert!(
        e.requeue_dead_letter("c1", "ev-1", T0 + 2_000)
            .await
            .expect("requeue")
    );
    let again = e.evaluation("ev-1").await.expect("get").expect("present");
    assert_eq!(again.forwarding.state, ForwardState::Pending);
    assert_eq!(again.forwarding.attempts, 0);
    let delivered = e.evaluation("ev-3").await.expect("get").expect("present");
    assert_eq!(delivered.forwarding.forwarded_ms, Some(T0 + 200));
    let between = e
        .evaluations_between("c1", T0, T0 + 61_001, 10)
        .await
        .expect("between");
    assert_eq!(between.len(), 2);

    let open = e
        .followups("c1", FollowUpFilter::Open, 10)
        .await
        .expect("followups");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].1, bad);
    assert_eq!(open[0].0.due_date, "2026-12-09");
    let update = FollowUpUpdate {
        visited_ms: Some(T0 + 3_000),
        verification: "已核实".into(),
        rectification: "已整改".into(),
        feedback: "居民满意".into(),
        close: true,
    };
    assert_eq!(
        e.update_followup("c2", "ev-1", &update, "boss", T0 + 4_000)
            .await
            .expect("other centre"),
        FollowUpSaved::NotFound
    );
    let draft = FollowUpUpdate {
        close: false,
        ..update.clone()
    };
    let FollowUpSaved::Saved(saved) = e
        .update_followup("c1", "ev-1", &draft, "boss", T0 + 3_500)
        .await
        .expect("save")
    else {
        panic!("a draft is saved")
    };
    assert_eq!(saved.state, FollowUpState::Open);
    let FollowUpSaved::Saved(closed) = e
        .update_followup("c1", "ev-1", &update, "boss", T0 + 4_000)
        .await
        .expect("update")
    else {
        panic!("the follow-up is closed")
    };
    // A closed follow-up is final, through the store and through SQL.
    assert_eq!(
        e.update_followup("c1", "ev-1", &draft, "someone", T0 + 5_000)
            .await
            .expect("again"),
        FollowUpSaved::AlreadyClosed
    );
    assert!(
        b.execute("UPDATE evaluation_followups SET feedback = 'x' WHERE evaluation_id = 'ev-1'")
            .await
            .is_err()
    );
    // Every saved version is kept, append-only, and each save is in the audit trail.
    assert_eq!(
        b.scalar("SELECT COUNT(*) FROM evaluation_followup_history WHERE evaluation_id = 'ev-1'")
            .await,
        2
    );
    assert!(
        b.execute("DELETE FROM evaluation_followup_history")
            .await
            .is_err()
    );
    let kinds: Vec<String> = b
        .trail()
        .last(10)
        .await
        .expect("trail")
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["evaluation.followup.saved", "evaluation.followup.closed"]
    );
    assert!(b.trail().verify().await.expect("verify").is_sound());
    assert_eq!(closed.state, FollowUpState::Closed);
    assert_eq!(closed.closed_ms, Some(T0 + 4_000));
    assert_eq!(closed.updated_by.as_deref(), Some("boss"));
    assert!(
        e.followups("c1", FollowUpFilter::Open, 10)
            .await
            .expect("open")
            .is_empty()
    );
    assert_eq!(
        e.followups("c1", FollowUpFilter::All, 10)
            .await
            .expect("all")
            .len(),
        1
    );
}

fn actor() -> Actor {
    Actor {
        id: "k1".into(),
        name: "周涛".into(),
    }
}

async fn registry_lifecycle_with_conflicts_and_an_append_only_trail(b: Backend) {
    seed(&b).await;
    let r = &b.registry;
    let fields = draft().validate(&Divisions::builtin()).expect("fields");
    let apply = lifecycle::decide(
        None,
        lifecycle::Command::Apply {
            id: "tp-01".into(),
            centre_id: "c1".into(),
            fields: fields.clone(),
        },
        &actor(),
        T0,
    )
    .expect("apply");
    let first = r.commit(&apply).await.expect("commit");
    assert!(matches!(
        r.commit(&apply).await,
        Err(CommitError::PointInUse(_))
    ));
    let counter = r.counter("tp-01").await.expect("counter").expect("present");
    assert_eq!(counter, apply.counter);
    let activate = lifecycle::decide(
        Some(&counter),
        lifecycle::Command::Activate {
            secret_hash: "sha256:aa".into(),
            note: "市运管中心已审核".into(),
        },
        &actor(),
        T0 + 1,
    )
    .expect("activate");
    let second = r.commit(&activate).await.expect("commit");
    assert!(second > first, "event ids grow");
    assert!(
        matches!(r.commit(&activate).await, Err(CommitError::Conflict)),
        "a second writer from the same version loses"
    );
    let active = r.counter("tp-01").await.expect("counter").expect("present");
    assert_eq!(active.state, CounterState::Active);
    // Activation wrote what the queue and the kiosk handshake read.
    let p = b
        .main
        .extension_point("tp-01")
        .await
        .expect("point")
        .expect("made");
    assert_eq!(p.centre_id, "c1");
    let kiosk = b
        .main
        .device(&fields.device_id)
        .await
        .expect("device")
        .expect("enrolled");
    assert!(kiosk.active);
    assert_eq!(kiosk.secret_hash, "sha256:aa");
    assert_eq!(
        r.counters(&Scope::Centre("c1".into()))
            .await
            .expect("counters")
            .len(),
        1
    );
    assert!(
        r.counters(&Scope::District("nowhere".into()))
            .await
            .expect("counters")
            .is_empty()
    );
    let all = r
        .events(&EventQuery {
            scope: Scope::All,
            district: None,
            counter_id: Some("tp-01".into()),
            actions: Vec::new(),
            from_ms: None,
            to_ms: None,
            limit: 10,
        })
        .await
        .expect("events");
    assert_eq!(
        all.iter().map(|e| e.action).collect::<Vec<_>>(),
        [EventAction::Apply, EventAction::Activate],
        "oldest first"
    );
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        [first, second]
    );
    let only_activations = r
        .events(&EventQuery {
            scope: Scope::Centre("c1".into()),
            district: Some(fields.district.clone()),
            counter_id: None,
            actions: vec![EventAction::Activate, EventAction::Close],
            from_ms: Some(T0),
            to_ms: Some(T0 + 2),
            limit: 10,
        })
        .await
        .expect("events");
    assert_eq!(only_activations.len(), 1);
    assert_eq!(only_activations[0].snapshot, activate.event.snapshot);
    assert!(b.execute("DELETE FROM registry_events").await.is_err());
    assert!(
        b.execute("UPDATE registry_events SET reason = 'x'")
            .await
            .is_err()
    );

    assert_eq!(r.district_scope("k1").await.expect("scope"), None);
    r.set_district_scope("k1", Some("徐汇区"), T0)
        .await
        .expect("grant");
    assert_eq!(
        r.district_scope("k1").await.expect("scope").as_deref(),
        Some("徐汇区")
    );
    r.set_district_scope("k1", None, T0).await.expect("revoke");
    assert_eq!(r.district_scope("k1").await.expect("scope"), None);
}

async fn kiosk_health_alerts_and_inspections(b: Backend) {
    seed(&b).await;
    let r = &b.registry;
    r.record_device_status("kiosk-1", PartKind::Camera, DeviceStatus::Online, T0)
        .await
        .expect("status");
    r.record_device_status("kiosk-1", PartKind::Camera, DeviceStatus::Online, T0 + 5)
        .await
        .expect("same status");
    r.record_device_status(
        "kiosk-1",
        PartKind::QrScanner,
        DeviceStatus::HardwareError,
        T0 + 6,
    )
    .await
    .expect("status");
    let health = r
        .health_data(&Scope::Centre("c1".into()))
        .await
        .expect("health");
    assert_eq!(health.points.len(), 1);
    assert_eq!(health.kiosks.len(), 1);
    let camera = health
        .statuses
        .iter()
        .find(|s| s.kind == PartKind::Camera)
        .expect("camera");
    assert_eq!((camera.since_ms, camera.updated_ms), (T0, T0 + 5));
    assert_eq!(health.statuses.len(), 2);
    assert!(
        r.health_data(&Scope::Centre("c2".into()))
            .await
            .expect("health")
            .points
            .is_empty()
    );

    let mut alert = Alert {
        key: "kiosk_offline:kiosk-1".into(),
        kind: AlertKind::KioskOffline,
        state: AlertState::Firing,
        centre_id: "c1".into(),
        extension_point_id: "p1".into(),
        extension_point_name: "天平路居委会".into(),
        device_id: "kiosk-1".into(),
        device: None,
        status: None,
        since_ms: T0,
        at_ms: T0 + 100,
        message_zh: "一体机离线".into(),
        message_en: "kiosk offline".into(),
    };
    r.record_alert(&alert).await.expect("fire");
    r.record_alert(&alert).await.expect("fire again: still one");
    assert_eq!(r.open_alerts().await.expect("open"), vec![alert.clone()]);
    alert.state = AlertState::Resolved;
    alert.at_ms = T0 + 200;
    r.record_alert(&alert).await.expect("resolve");
    assert!(r.open_alerts().await.expect("open").is_empty());
    let recent = r
        .recent_alerts(&Scope::Centre("c1".into()), T0)
        .await
        .expect("recent");
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].state, AlertState::Resolved);
    assert_eq!(recent[0].at_ms, T0 + 200);

    let report = InspectionReport {
        technician: "李工".into(),
        automatic: false,
        started_ms: T0,
        finished_ms: T0 + 60_000,
        agent_version: "1.0".into(),
        profile: Some("simulated-kiosk".into()),
        checks: Vec::new(),
    };
    let record = |n: i64| InspectionRecord {
        id: 0,
        device_id: "kiosk-1".into(),
        extension_point_id: "p1".into(),
        centre_id: "c1".into(),
        technician: "李工".into(),
        automatic: n == 2,
        started_ms: T0 + n,
        finished_ms: T0 + n + 1,
        received_ms: T0 + n + 2,
        overall: CheckOutcome::Pass,
        report: report.clone(),
    };
    let a = r.add_inspection(&record(1)).await.expect("inspection");
    let c = r.add_inspection(&record(2)).await.expect("inspection");
    assert!(c > a, "inspection ids grow");
    let listed = r
        .inspections(&Scope::All, Some("p1"), 10)
        .await
        .expect("inspections");
    assert_eq!(listed.iter().map(|i| i.id).collect::<Vec<_>>(), [c, a]);
    let mut expected = record(2);
    expected.id = c;
    assert_eq!(listed[0], expected);
    let health = r.health_data(&Scope::All).await.expect("health");
    assert_eq!(
        health
            .last_inspections
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        [c]
    );
}

fn case_entry(ticket: &str, action: &str, at_ms: i64) -> AuditEntry {
    AuditEntry {
        at_ms,
        ticket_id: ticket.into(),
        item_id: None,
        actor_kind: "clerk".into(),
        actor_id: "k1".into(),
        action: action.into(),
    }
}

async fn a_case(b: &Backend, ticket: &str) {
    b.cases
        .ensure_case(&CaseRecord {
            ticket_id: ticket.into(),
            centre_id: "c1".into(),
            device_id: "kiosk-1".into(),
            clerk_id: "k1".into(),
            ticket_number: "YA001".into(),
            created_ms: T0,
            identity_method: None,
            identity_ms: None,
        })
        .await
        .expect("case");
}

/// The hash-chained audit trail: written by the trail and inside the stores' transactions,
/// read back, verified; refused edits through SQL; and with the triggers taken off, an edited,
/// deleted, forged or cut-off row is found by `verify`, which names the first broken row.
async fn the_audit_trail_is_one_chain_and_tampering_is_found(b: Backend) {
    seed(&b).await;
    a_case(&b, "t1").await;
    let trail = b.trail();
    assert!(trail.verify().await.expect("verify").is_sound());
    assert_eq!(
        trail
            .record(
                "login.ok",
                "clerk:k1",
                Some([203, 0, 113, 1].into()),
                "clerk:k1",
                ""
            )
            .await
            .expect("record"),
        1
    );
    b.cases
        .audit(&case_entry("t1", "revealed", T0 + 1))
        .await
        .expect("case audit");
    b.recordings
        .audit_recording_access(&RecordingAccess {
            at_ms: T0 + 2,
            actor: "k1".into(),
            action: AccessAction::Play,
            recording_id: Some("rec-1".into()),
            centre_id: Some("c1".into()),
            detail: String::new(),
        })
        .await
        .expect("recording access");
    for i in 0..3 {
        trail
            .record(
                "admin.add_clerk",
                "cli:root",
                None,
                &format!("clerk:n{i}"),
                "ok",
            )
            .await
            .expect("record");
    }
    // A store write that fails leaves no trail row: they commit together.
    let dup = SealedItem {
        meta: ItemMeta {
            id: "it-1".into(),
            ticket_id: "t1".into(),
            kind: "photo".into(),
            mime: "image/jpeg".into(),
            size_bytes: 1,
            width: None,
            height: None,
            sha256: "ab".repeat(32),
            created_ms: T0 + 3,
        },
        key_id: "mk".into(),
        wrapped_key: vec![1],
        sealed: vec![2],
    };
    let stored = AuditEntry {
        item_id: Some("it-1".into()),
        ..case_entry("t1", "stored", T0 + 3)
    };
    b.cases.add_item(&dup, &stored, None).await.expect("item");
    assert!(b.cases.add_item(&dup, &stored, None).await.is_err());

    let report = trail.verify().await.expect("verify");
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.sound_rows, 7);
    let rows = trail.last(100).await.expect("rows");
    assert_eq!(
        rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        vec![
            "login.ok",
            "case.revealed",
            "recording.play",
            "admin.add_clerk",
            "admin.add_clerk",
            "admin.add_clerk",
            "case.stored",
        ]
    );
    assert_eq!(rows[0].source, "203.0.113.1");
    assert_eq!(rows[1].subject, "ticket:t1");
    assert_eq!(rows[2].actor, "clerk:k1");
    assert_eq!(report.head, rows[6].hash);
    assert_eq!(trail.last(2).await.expect("last"), rows[5..].to_vec());
    assert_eq!(
        trail.rows_after(4, 2).await.expect("after"),
        rows[4..6].to_vec()
    );

    // Through SQL the table refuses to change.
    for sql in [
        "UPDATE audit_log SET actor = 'clerk:x' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 7",
    ] {
        assert!(b.execute(sql).await.is_err(), "{sql} was accepted");
    }
    if matches!(b.raw, Raw::Postgres(_)) {
        assert!(b.execute("TRUNCATE audit_log").await.is_err());
    }
    assert_eq!(trail.verify().await.expect("verify").sound_rows, 7);

    trail.set_shipped_seq(7).await.expect("shipped");
    assert_eq!(trail.shipped_seq().await.expect("shipped"), Some(7));
    b.take_off_trail_triggers().await;

    // An edited row.
    b.execute("UPDATE audit_log SET actor = 'clerk:someone-else' WHERE seq = 3")
        .await
        .expect("edit");
    let report = trail.verify().await.expect("verify");
    assert_eq!(report.first_broken, Some((3, Break::Hash)));
    assert_eq!(report.sound_rows, 2);
    b.execute("UPDATE audit_log SET actor = 'clerk:k1' WHERE seq = 3")
        .await
        .expect("put back");
    assert!(trail.verify().await.expect("verify").is_sound());

    // An edited row with its hash recomputed: the next row no longer follows it.
    let r3 = &rows[2];
    let forged = crate::audit::chain::row_hash(
        &r3.prev_hash,
        3,
        r3.at_ms,
        &r3.kind,
        "clerk:someone-else",
        &r3.source,
        &r3.subject,
        &r3.detail,
    );
    b.execute_with(
        "UPDATE audit_log SET actor = 'clerk:someone-else', hash = ? WHERE seq = 3",
        "UPDATE audit_log SET actor = 'clerk:someone-else', hash = $1 WHERE seq = 3",
        &[&forged],
    )
    .await
    .expect("forge");
    assert_eq!(
        trail.verify().await.expect("verify").first_broken,
        Some((4, Break::PrevHash))
    );
    b.execute_with(
        "UPDATE audit_log SET actor = 'clerk:k1', hash = ? WHERE seq = 3",
        "UPDATE audit_log SET actor = 'clerk:k1', hash = $1 WHERE seq = 3",
        &[&r3.hash],
    )
    .await
    .expect("put back");
    assert!(trail.verify().await.expect("verify").is_sound());

    // Rows cut off the end: the chain that is left is sound, but syslog had more.
    b.execute("DELETE FROM audit_log WHERE seq = 7")
        .await
        .expect("cut");
    let report = trail.verify().await.expect("verify");
    assert_eq!(report.first_broken, None);
    assert_eq!(report.missing_shipped, Some(7));
    assert!(!report.is_sound());

    // A deleted row in the middle.
    b.execute("DELETE FROM audit_log WHERE seq = 2")
        .await
        .expect("delete");
    assert_eq!(
        trail.verify().await.expect("verify").first_broken,
        Some((3, Break::Gap { expected_seq: 2 }))
    );

    // A forged row slipped in where it was, chaining onto row 1: the row after it breaks.
    let ghost =
        crate::audit::chain::row_hash(&rows[0].hash, 2, T0, "login.ok", "clerk:ghost", "", "", "");
    b.execute_with(
        "INSERT INTO audit_log (seq, at_ms, kind, actor, source, subject, detail, prev_hash, hash)
         VALUES (2, 1795000000000, 'login.ok', 'clerk:ghost', '', '', '', ?, ?)",
        "INSERT INTO audit_log (seq, at_ms, kind, actor, source, subject, detail, prev_hash, hash)
         VALUES (2, 1795000000000, 'login.ok', 'clerk:ghost', '', '', '', $1, $2)",
        &[&rows[0].hash, &ghost],
    )
    .await
    .expect("insert");
    let report = trail.verify().await.expect("verify");
    assert_eq!(report.first_broken, Some((3, Break::PrevHash)));
    assert_eq!(report.sound_rows, 2, "the forged row itself chains");
}

/// Appends from many connections at once — the trail's own and the stores' transactions —
/// make one chain: every append succeeds, sequence numbers are unique and verify is sound.
async fn concurrent_appends_keep_one_chain(b: Backend) {
    const TASKS: usize = 8;
    const EACH: usize = 15;
    seed(&b).await;
    a_case(&b, "t1").await;
    let b = Arc::new(b);
    let trail = b.trail();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let b = b.clone();
        let trail = trail.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                if (t + i) % 2 == 0 {
                    seqs.push(
                        trail
                            .record(
                                "login.ok",
                                &format!("clerk:t{t}"),
                                None,
                                &format!("n{i}"),
                                "",
                            )
                            .await
                            .expect("append through the trail"),
                    );
                } else {
                    b.cases
                        .audit(&case_entry("t1", "revealed", T0 + i as i64))
                        .await
                        .expect("append inside a store transaction");
                }
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(
            tokio::time::timeout(std::time::Duration::from_secs(60), task)
                .await
                .expect("appends finish")
                .expect("task"),
        );
    }
    let total = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), total, "two appends got one sequence number");
    let report = trail.verify().await.expect("verify");
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.sound_rows, (TASKS * EACH) as u64);
}

fn window_event(clerk: Option<&str>, pause: Option<WindowPause>) -> Event {
    Event::Window {
        window_id: "w1".into(),
        clerk_id: clerk.map(Into::into),
        clerk_name: clerk.map(|c| format!("窗口 {c}")),
        clerk_connected: true,
        pause,
    }
}

/// A window's pause (暂停服务) is written with the queue's events and read back with the queue;
/// a later event in the same batch wins; resuming or signing out clears it.
async fn window_pauses_survive_a_reload(b: Backend) {
    seed(&b).await;
    let m = &b.main;
    let pause = WindowPause {
        reason: PauseReason::Meeting,
        since_ms: T0,
        until_ms: T0 + 30 * 60_000,
    };
    m.persist_queue_events(&[window_event(Some("k1"), Some(pause))])
        .await
        .expect("pause");
    let snapshot = m.load_queue("c1", DAY).await.expect("load");
    assert_eq!(snapshot.window_pauses, vec![("w1".to_owned(), pause)]);
    let later = WindowPause {
        reason: PauseReason::Training,
        since_ms: T0,
        until_ms: T0 + 60 * 60_000,
    };
    m.persist_queue_events(&[
        window_event(Some("k1"), None),
        window_event(Some("k1"), Some(later)),
    ])
    .await
    .expect("batch");
    assert_eq!(
        m.load_queue("c1", DAY).await.expect("load").window_pauses,
        vec![("w1".to_owned(), later)]
    );
    m.persist_queue_events(&[window_event(Some("k1"), None)])
        .await
        .expect("resume");
    assert!(
        m.load_queue("c1", DAY)
            .await
            .expect("load")
            .window_pauses
            .is_empty()
    );
    m.persist_queue_events(&[window_event(Some("k1"), Some(pause))])
        .await
        .expect("pause");
    m.persist_queue_events(&[window_event(None, Some(pause))])
        .await
        .expect("sign out");
    assert!(
        m.load_queue("c1", DAY)
            .await
            .expect("load")
            .window_pauses
            .is_empty(),
        "a window nobody is signed in to shows no pause"
    );
    assert!(
        b.execute("UPDATE windows SET pause_reason = 'lunch' WHERE id = 'w1'")
            .await
            .is_err(),
        "only the known reasons are stored"
    );
}

/// Staff profiles (岗位、工号、照片): card and photo set separately keep each other, every byte
/// of the photo survives, and a profile for someone who is not staff is refused.
async fn staff_profiles_keep_card_and_photo(b: Backend) {
    seed(&b).await;
    let staff = &b.staff;
    assert_eq!(staff.staff_profile("k1").await.expect("read"), None);
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend(0..=255u8);
    staff
        .set_staff_photo("k1", PhotoType::Jpeg, &jpeg, "k1", T0)
        .await
        .expect("photo");
    staff
        .set_staff_card("k1", "综合窗口受理员", "SH0815", "sup", T0 + 10)
        .await
        .expect("card");
    let p = staff
        .staff_profile("k1")
        .await
        .expect("read")
        .expect("profile");
    assert_eq!(
        (p.post.as_str(), p.staff_number.as_str()),
        ("综合窗口受理员", "SH0815")
    );
    assert_eq!(p.photo, Some((PhotoType::Jpeg, jpeg)));
    assert_eq!(p.updated_ms, T0 + 10);
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    staff
        .set_staff_photo("k1", PhotoType::Png, &png, "sup", T0 + 20)
        .await
        .expect("new photo");
    let p = staff.staff_profile("k1").await.expect("read").expect("p");
    assert_eq!(p.post, "综合窗口受理员");
    assert_eq!(p.photo, Some((PhotoType::Png, png)));
    assert!(
        staff
            .set_staff_card("nobody", "x", "y", "sup", T0)
            .await
            .is_err()
    );
}

/// Instantiates every listed test once per back end.
/// The second factor's rows: an enrollment that waits for its first code, activation with
/// recovery codes, each TOTP step and each recovery code usable once (also when two logins
/// race), logins at each stage seen only by the calls they are meant for, and a reset or a
/// password set by someone else ending every login.
async fn second_factor_state_and_one_time_uses(b: Backend) {
    use crate::store::two_factor::{SealedSecret, SecondFactorStage};
    seed(&b).await;
    let m = &b.main;
    let day = T0 + 24 * 3600 * 1000;
    assert_eq!(m.two_factor("k1").await.expect("read"), None);
    let secret = |n: u8| SealedSecret {
        key_id: "key-1".into(),
        wrapped_key: vec![n, 0, 255, 1],
        sealed: (0..=255).collect(),
    };
    assert!(
        m.begin_two_factor("k1", &secret(1), T0)
            .await
            .expect("begin")
    );
    // Restarting an enrollment replaces the pending secret.
    assert!(
        m.begin_two_factor("k1", &secret(2), T0 + 1)
            .await
            .expect("restart")
    );
    let pending = m.two_factor("k1").await.expect("read").expect("pending");
    assert_eq!(pending.secret, secret(2));
    assert!(!pending.enabled);
    assert!(
        !m.use_totp_step("k1", 5).await.expect("step"),
        "not active yet"
    );
    let hashes: Vec<String> = (0..10).map(|i| format!("hash-{i}")).collect();
    assert!(
        m.enable_two_factor("k1", 100, &hashes, T0 + 2)
            .await
            .expect("enable")
    );
    assert!(
        !m.enable_two_factor("k1", 101, &hashes, T0 + 3)
            .await
            .expect("twice")
    );
    assert!(
        !m.begin_two_factor("k1", &secret(3), T0 + 4)
            .await
            .expect("active"),
        "an active factor is not replaced"
    );
    let active = m.two_factor("k1").await.expect("read").expect("active");
    assert!(active.enabled);
    assert_eq!(active.last_step, 100);
    assert_eq!(active.secret, secret(2));

    // Each step once, only forward; concurrent uses of one step: exactly one wins.
    assert!(!m.use_totp_step("k1", 100).await.expect("replay"));
    assert!(!m.use_totp_step("k1", 99).await.expect("older"));
    let (a, c) = tokio::join!(m.use_totp_step("k1", 101), m.use_totp_step("k1", 101));
    assert!(
        a.expect("a") ^ c.expect("c"),
        "one of two racing logins wins"
    );
    assert_eq!(m.recovery_codes_left("k1").await.expect("left"), 10);
    assert!(
        m.use_recovery_code("k1", "hash-3", T0 + 5)
            .await
            .expect("use")
    );
    assert!(
        !m.use_recovery_code("k1", "hash-3", T0 + 6)
            .await
            .expect("again")
    );
    assert!(
        !m.use_recovery_code("k1", "no-such", T0 + 6)
            .await
            .expect("unknown")
    );
    assert_eq!(m.recovery_codes_left("k1").await.expect("left"), 9);

    // Logins at each stage.
    m.create_staged_login(
        &login("s-code", "k1", T0, T0 + 300_000),
        SecondFactorStage::AwaitingCode,
    )
    .await
    .expect("pending");
    m.create_staged_login(
        &login("s-enroll", "k1", T0, day),
        SecondFactorStage::MustEnroll,
    )
    .await
    .expect("enroll-only");
    m.create_login(&login("s-full", "k1", T0, day))
        .await
        .expect("full");
    for (token, stage) in [
        ("s-code", SecondFactorStage::AwaitingCode),
        ("s-enroll", SecondFactorStage::MustEnroll),
        ("s-full", SecondFactorStage::Done),
    ] {
        let staged = m
            .staged_login(token, T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .expect(token);
        assert_eq!(staged.stage, stage, "{token}");
        assert_eq!(staged.clerk.id, "k1");
    }
    assert!(
        m.staged_login("s-code", T0 + 300_000, NO_IDLE)
            .await
            .expect("read")
            .is_none(),
        "expired"
    );
    assert!(
        m.login_clerk("s-code", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        m.login_clerk("s-enroll", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        m.password_change_login("s-code", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        m.password_change_login("s-enroll", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        m.login_clerk("s-full", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .is_some()
    );
    let listed = m.clerk_logins("k1", T0 + 1, NO_IDLE).await.expect("list");
    assert!(
        listed.iter().all(|l| l.id != "s-code"),
        "a pending code step is not a session"
    );
    assert_eq!(m.count_code_try("s-code").await.expect("try"), 1);
    assert_eq!(m.count_code_try("s-code").await.expect("try"), 2);
    assert_eq!(
        m.staged_login("s-code", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .expect("pending")
            .code_tries,
        2
    );

    // A reset removes the factor and its codes and ends every login.
    assert_eq!(m.reset_two_factor("k1").await.expect("reset"), 3);
    assert_eq!(m.two_factor("k1").await.expect("read"), None);
    assert_eq!(m.recovery_codes_left("k1").await.expect("left"), 0);
    assert!(
        m.login_clerk("s-full", T0 + 1, NO_IDLE)
            .await
            .expect("read")
            .is_none()
    );
    // A password set by someone else: logins end, a change is required.
    m.create_login(&login("s-again", "k1", T0, day))
        .await
        .expect("login");
    assert_eq!(
        m.set_password_by_other("k1", "$argon2id$new")
            .await
            .expect("set"),
        1
    );
    assert!(m.must_change_password("k1").await.expect("flag"));
    let k1 = m.clerk("k1").await.expect("read").expect("clerk");
    assert_eq!(k1.password_hash, "$argon2id$new");
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::open_sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::open_postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    centre_setup_round_trips,
    staff_and_logins,
    staff_sessions,
    points_and_devices,
    queue_survives_a_reload,
    a_failed_batch_leaves_nothing,
    recordings_are_saved_completed_listed_and_purged_with_an_audit_entry,
    the_access_trail_cannot_be_changed,
    case_items_keep_their_sealed_bytes_and_an_append_only_trail,
    case_keys_rotate_without_touching_contents,
    case_key_rotation_rewraps_second_factors_and_refuses_over_bookings,
    evaluations_sessions_and_forwarding,
    registry_lifecycle_with_conflicts_and_an_append_only_trail,
    kiosk_health_alerts_and_inspections,
    the_audit_trail_is_one_chain_and_tampering_is_found,
    concurrent_appends_keep_one_chain,
    window_pauses_survive_a_reload,
    staff_profiles_keep_card_and_photo,
    second_factor_state_and_one_time_uses,
    bookings_round_trip_and_change_state_once,
    capacity_holds_under_concurrent_bookings,
    one_live_booking_per_number_category_and_day,
    no_shows_and_purge_clear_personal_data,
);

mod appointments;
use appointments::{
    bookings_round_trip_and_change_state_once, capacity_holds_under_concurrent_bookings,
    no_shows_and_purge_clear_personal_data, one_live_booking_per_number_category_and_day,
};

/// Centre leases and fencing exist on PostgreSQL only (several nodes share it).
mod fencing_on_postgres {
    use std::time::Duration;

    use super::*;
    use crate::store::StoreError;

    async fn store() -> PgStore {
        let url = PrivatePostgres::fresh_database()
            .await
            .expect("a private PostgreSQL server");
        let s = PgStore::connect(&url, Durability::PowerLoss)
            .await
            .expect("postgres store");
        let b = Backend {
            main: Arc::new(s.clone()),
            recordings: Arc::new(s.clone()),
            evaluations: Arc::new(s.clone()),
            registry: Arc::new(s.clone()),
            cases: Arc::new(s.clone()),
            staff: Arc::new(s.clone()),
            appointments: Arc::new(s.clone()),
            raw: Raw::Postgres(s.pool().clone()),
        };
        seed(&b).await;
        s
    }

    async fn tickets(s: &PgStore) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
            .fetch_one(s.pool())
            .await
            .expect("count")
    }

    /// The lease runs out as if the owner had been paused past it.
    async fn expire(s: &PgStore, centre: &str) {
        sqlx::query(
            "UPDATE centre_leases SET lease_until = now() - interval '1 second'
             WHERE centre_id = $1",
        )
        .bind(centre)
        .execute(s.pool())
        .await
        .expect("expire");
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_stale_epoch_cannot_write_and_only_a_live_owner_renews() {
        let s = store().await;
        let a = s
            .acquire_lease("c1", "node-a", LEASE)
            .await
            .expect("a")
            .expect("granted");
        assert_eq!(a.epoch, 1);
        assert!(
            s.acquire_lease("c1", "node-b", LEASE)
                .await
                .expect("b")
                .is_none(),
            "a live lease is not taken over"
        );
        let renewed = s
            .acquire_lease("c1", "node-a", LEASE)
            .await
            .expect("renew")
            .expect("mine");
        assert_eq!(renewed.epoch, 1, "renewing keeps the epoch");
        // Other centres are independent.
        assert_eq!(
            s.acquire_lease("c2", "node-b", LEASE)
                .await
                .expect("c2")
                .map(|l| l.epoch),
            Some(1)
        );

        let mut q = queue_core();
        let first = q.decide(T0, &remote_ticket("kiosk-1")).expect("decide");
        s.persist_queue_events_fenced(&a, &first)
            .await
            .expect("the owner writes");
        q.apply(&first);
        assert_eq!(tickets(&s).await, 1);

        // node-a stalls past its lease; node-b takes the centre over with a new epoch.
        expire(&s, "c1").await;
        let b = s
            .acquire_lease("c1", "node-b", LEASE)
            .await
            .expect("b")
            .expect("taken over");
        assert_eq!(b.epoch, 2);
        // node-a wakes up and writes with its old epoch: refused, nothing written.
        let stale = q.decide(T0 + 1, &remote_ticket("kiosk-2")).expect("decide");
        match s.persist_queue_events_fenced(&a, &stale).await {
            Err(StoreError::Fenced { epoch, current, .. }) => {
                assert_eq!((epoch, current), (1, Some(2)));
            }
            other => panic!("a stale epoch's write must be refused, got {other:?}"),
        }
        assert_eq!(tickets(&s).await, 1);
        assert!(
            s.acquire_lease("c1", "node-a", LEASE)
                .await
                .expect("a again")
                .is_none(),
            "the old owner cannot renew"
        );
        s.persist_queue_events_fenced(&b, &stale)
            .await
            .expect("the new owner writes");
        assert_eq!(tickets(&s).await, 2);

        // A drain hands over at once, with a new epoch.
        assert!(s.release_lease(&b).await.expect("release"));
        assert!(
            !s.release_lease(&a).await.expect("not a's"),
            "a stale lease releases nothing"
        );
        let c = s
            .acquire_lease("c1", "node-c", LEASE)
            .await
            .expect("c")
            .expect("free");
        assert_eq!(c.epoch, 3);
        assert!(matches!(
            s.persist_queue_events_fenced(&b, &stale).await,
            Err(StoreError::Fenced { .. })
        ));
        // The same node after its own lease ran out gets a new epoch too: writes decided
        // under the old one are refused.
        expire(&s, "c1").await;
        let c2 = s
            .acquire_lease("c1", "node-c", LEASE)
            .await
            .expect("c")
            .expect("again");
        assert_eq!(c2.epoch, 4);
        assert!(matches!(
            s.persist_queue_events_fenced(&c, &stale).await,
            Err(StoreError::Fenced { .. })
        ));
        // A centre nobody leased cannot be written with a lease at all.
        let mut nobody = c2.clone();
        nobody.centre_id = "c9".into();
        assert!(matches!(
            s.persist_queue_events_fenced(&nobody, &stale).await,
            Err(StoreError::Fenced { current: None, .. })
        ));
    }
}
