//! Conformance of [`AppointmentStore`] on both databases: round trip, state changes that
//! happen once, capacity under concurrent bookings, the one-live-booking rule, no-shows and
//! the purge of personal data.

use protocol::queue::AppointmentSlot;

use super::{Backend, T0, seed};
use crate::store::appointments::{
    BookOutcome, BookingRecord, BookingState, RescheduleOutcome, SealedContact,
};

pub(super) const SLOT: AppointmentSlot = AppointmentSlot {
    start_ms: T0 + 3_600_000,
    end_ms: T0 + 5_400_000,
};
const NEXT: AppointmentSlot = AppointmentSlot {
    start_ms: T0 + 5_400_000,
    end_ms: T0 + 7_200_000,
};
const DAY: i64 = 20_775;

pub(super) fn booking(n: u32, mobile_hash: &str, slot: AppointmentSlot) -> BookingRecord {
    BookingRecord {
        id: format!("ap-{n}"),
        code: format!("CODE{n:04}"),
        centre_id: "c1".into(),
        extension_point_id: "p1".into(),
        category_id: "civil".into(),
        service_day: DAY,
        slot,
        state: BookingState::Booked,
        mobile_hash: Some(mobile_hash.into()),
        name_masked: "张*".into(),
        mobile_masked: "138****5678".into(),
        contact: Some(SealedContact {
            key_id: "k".into(),
            wrapped_key: (0..=255u8).collect(),
            ciphertext: vec![0, 1, 2, 0xFF, 0x80],
        }),
        ticket_id: None,
        late: false,
        created_ms: T0 + i64::from(n),
        updated_ms: T0 + i64::from(n),
    }
}

pub(super) async fn bookings_round_trip_and_change_state_once(b: Backend) {
    seed(&b).await;
    let s = &b.appointments;
    let mine = booking(1, "h1", SLOT);
    assert_eq!(s.book(&mine, 2).await.expect("book"), BookOutcome::Booked);
    assert_eq!(
        s.booking_by_code("CODE0001").await.expect("read"),
        Some(mine.clone())
    );
    assert_eq!(s.booking("ap-1").await.expect("read"), Some(mine.clone()));
    assert_eq!(s.booking_by_code("NOPE").await.expect("read"), None);
    // The same code again is told apart from a duplicate number.
    let mut clash = booking(2, "h2", SLOT);
    clash.code = mine.code.clone();
    assert_eq!(
        s.book(&clash, 2).await.expect("book"),
        BookOutcome::CodeTaken
    );
    // Moved to the next slot; counted there.
    assert_eq!(
        s.reschedule_booking("ap-1", DAY, NEXT, 2, T0 + 10)
            .await
            .expect("move"),
        RescheduleOutcome::Moved
    );
    assert_eq!(
        s.slot_counts("c1", "civil", T0, T0 + 86_400_000)
            .await
            .expect("counts"),
        vec![(NEXT.start_ms, 1)]
    );
    // Checked in once, with the ticket; a second check-in and a cancel are refused.
    assert!(
        s.mark_checked_in("ap-1", "t-1", false, T0 + 20)
            .await
            .expect("check in")
    );
    assert!(
        !s.mark_checked_in("ap-1", "t-2", false, T0 + 21)
            .await
            .expect("again")
    );
    assert!(!s.cancel_booking("ap-1", T0 + 22).await.expect("cancel"));
    assert_eq!(
        s.reschedule_booking("ap-1", DAY, SLOT, 2, T0 + 23)
            .await
            .expect("move"),
        RescheduleOutcome::NotLive
    );
    let used = s.booking("ap-1").await.expect("read").expect("row");
    assert_eq!(used.state, BookingState::CheckedIn);
    assert_eq!(used.ticket_id.as_deref(), Some("t-1"));
    assert_eq!(used.slot, NEXT);
    // A checked-in booking keeps its place in the slot.
    assert_eq!(
        s.slot_counts("c1", "civil", T0, T0 + 86_400_000)
            .await
            .expect("counts"),
        vec![(NEXT.start_ms, 1)]
    );
    // Another is cancelled once and frees its place.
    assert_eq!(
        s.book(&booking(3, "h3", SLOT), 2).await.expect("book"),
        BookOutcome::Booked
    );
    assert!(s.cancel_booking("ap-3", T0 + 30).await.expect("cancel"));
    assert!(!s.cancel_booking("ap-3", T0 + 31).await.expect("cancel"));
    let day = s.day_bookings("c1", DAY).await.expect("day");
    assert_eq!(
        day.iter()
            .map(|b| (b.id.as_str(), b.state))
            .collect::<Vec<_>>(),
        [
            ("ap-3", BookingState::Cancelled),
            ("ap-1", BookingState::CheckedIn)
        ]
    );
    assert!(s.day_bookings("c2", DAY).await.expect("day").is_empty());
    let points = s.active_points().await.expect("points");
    assert_eq!(
        points
            .iter()
            .map(|p| (p.id.as_str(), p.centre_id.as_str()))
            .collect::<Vec<_>>(),
        [("p1", "c1")]
    );
}

pub(super) async fn capacity_holds_under_concurrent_bookings(b: Backend) {
    seed(&b).await;
    let s = b.appointments.clone();
    // 24 residents try for a slot of 5 places at once (and 8 move into it from another).
    let mut tasks = Vec::new();
    for n in 0..24u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.book(&booking(n, &format!("h{n}"), SLOT), 5).await
        }));
    }
    for n in 100..108u32 {
        assert_eq!(
            s.book(&booking(n, &format!("h{n}"), NEXT), 10)
                .await
                .expect("book next"),
            BookOutcome::Booked
        );
    }
    let mut moves = Vec::new();
    for n in 100..108u32 {
        let s = s.clone();
        moves.push(tokio::spawn(async move {
            s.reschedule_booking(&format!("ap-{n}"), DAY, SLOT, 5, T0 + 1)
                .await
        }));
    }
    let mut booked = 0;
    for t in tasks {
        match t.await.expect("task").expect("store") {
            BookOutcome::Booked => booked += 1,
            BookOutcome::SlotFull => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut moved = 0;
    for t in moves {
        match t.await.expect("task").expect("store") {
            RescheduleOutcome::Moved => moved += 1,
            RescheduleOutcome::SlotFull => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(booked + moved, 5, "booked {booked}, moved {moved}");
    let counts = s
        .slot_counts("c1", "civil", T0, T0 + 86_400_000)
        .await
        .expect("counts");
    assert_eq!(counts, vec![(SLOT.start_ms, 5), (NEXT.start_ms, 8 - moved)]);
}

pub(super) async fn one_live_booking_per_number_category_and_day(b: Backend) {
    seed(&b).await;
    let s = &b.appointments;
    assert_eq!(
        s.book(&booking(1, "same", SLOT), 5).await.expect("book"),
        BookOutcome::Booked
    );
    // Same number, category and day, other slot: refused.
    assert_eq!(
        s.book(&booking(2, "same", NEXT), 5).await.expect("book"),
        BookOutcome::AlreadyBooked
    );
    // Another category the same day is fine, as is the same category another day.
    let mut other_category = booking(3, "same", NEXT);
    other_category.category_id = "social".into();
    assert_eq!(
        s.book(&other_category, 5).await.expect("book"),
        BookOutcome::Booked
    );
    let mut tomorrow = booking(4, "same", SLOT);
    tomorrow.service_day = DAY + 1;
    tomorrow.slot = AppointmentSlot {
        start_ms: SLOT.start_ms + 86_400_000,
        end_ms: SLOT.end_ms + 86_400_000,
    };
    assert_eq!(
        s.book(&tomorrow, 5).await.expect("book"),
        BookOutcome::Booked
    );
    // Moving tomorrow's onto today collides with the live one.
    assert_eq!(
        s.reschedule_booking("ap-4", DAY, NEXT, 5, T0 + 1)
            .await
            .expect("move"),
        RescheduleOutcome::AlreadyBooked
    );
    // Once the first is cancelled the number may book that day again.
    assert!(s.cancel_booking("ap-1", T0 + 2).await.expect("cancel"));
    assert_eq!(
        s.book(&booking(5, "same", NEXT), 5).await.expect("book"),
        BookOutcome::Booked
    );
}

pub(super) async fn no_shows_and_purge_clear_personal_data(b: Backend) {
    seed(&b).await;
    let s = &b.appointments;
    for n in 1..=3 {
        assert_eq!(
            s.book(&booking(n, &format!("h{n}"), SLOT), 5)
                .await
                .expect("book"),
            BookOutcome::Booked
        );
    }
    assert!(
        s.mark_checked_in("ap-2", "t-2", false, SLOT.start_ms)
            .await
            .expect("in")
    );
    // Before the slot ends nothing is a no-show.
    assert_eq!(
        s.mark_no_shows(SLOT.end_ms, SLOT.end_ms)
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(
        s.mark_no_shows(SLOT.end_ms + 1, SLOT.end_ms + 1)
            .await
            .expect("sweep"),
        2
    );
    // A late arrival after the sweep still checks in (as an ordinary ticket).
    assert!(
        s.mark_checked_in("ap-3", "t-3", true, SLOT.end_ms + 60_000)
            .await
            .expect("late")
    );
    let late = s.booking("ap-3").await.expect("read").expect("row");
    assert!(late.late && late.state == BookingState::CheckedIn);
    // A live booking of a later slot is never purged; the ended ones are, once.
    assert_eq!(
        s.book(&booking(9, "h9", NEXT), 5).await.expect("book"),
        BookOutcome::Booked
    );
    assert_eq!(
        s.purge_booking_contacts(NEXT.end_ms + 1, T0 + 99)
            .await
            .expect("purge"),
        3
    );
    assert_eq!(
        s.purge_booking_contacts(NEXT.end_ms + 1, T0 + 100)
            .await
            .expect("purge"),
        0
    );
    for id in ["ap-1", "ap-2", "ap-3"] {
        let r = s.booking(id).await.expect("read").expect("row");
        assert_eq!(r.contact, None);
        assert_eq!(r.mobile_hash, None);
        assert!(r.name_masked.is_empty() && r.mobile_masked.is_empty());
    }
    let kept = s.booking("ap-9").await.expect("read").expect("row");
    assert!(kept.contact.is_some());
    assert_eq!(
        b.scalar("SELECT COUNT(*) FROM appointments WHERE sealed IS NOT NULL")
            .await,
        1
    );
}
