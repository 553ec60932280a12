//! Golden JSON of the control protocol: each message's exact wire form. A change here is a
//! change of the protocol that every deployed kiosk and console must understand.

use protocol::control::{
    Arrival, Availability, BookableSlot, CategoryStaffing, CentreInfo, CheckInKey, ClerkToRelay,
    ErrorBody, ErrorCode, EvaluationLevel, ExtensionPointInfo, IceServer, IssueTicketRequest,
    KioskBooking, KioskEvaluation, KioskMedia, KioskTicketStatus, KioskToRelay, RelayToClerk,
    RelayToKiosk,
};
use protocol::queue::{AppointmentSlot, PauseReason, QueueOp, TicketState, WindowPause};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Serialises to exactly `json` and reads back to the same value.
fn golden<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, json: &str) {
    let expected: Value = serde_json::from_str(json).expect("golden JSON is valid");
    let actual = serde_json::to_value(value).expect("serialises");
    assert_eq!(actual, expected, "wire form changed");
    let back: T = serde_json::from_str(json).expect("golden JSON parses");
    assert_eq!(&back, value);
}

fn status() -> KioskTicketStatus {
    KioskTicketStatus {
        ticket_id: "c1-20780-7".into(),
        number: "YA007".into(),
        category_name: "社会保障".into(),
        state: TicketState::Called,
        ahead: None,
        eta_seconds: None,
        window_name: Some("8号远程虚拟窗口".into()),
        recalls: 1,
        availability: None,
        serving_clerk: None,
        appointment: None,
    }
}

#[test]
fn kiosk_to_relay() {
    golden(
        &KioskToRelay::Hello {
            protocol_versions: vec![1],
            device_id: "kiosk-01".into(),
            secret: "s3cret".into(),
            agent_version: "0.1.0".into(),
        },
        r#"{"type":"hello","protocol_versions":[1],"device_id":"kiosk-01","secret":"s3cret","agent_version":"0.1.0"}"#,
    );
    golden(
        &KioskToRelay::Heartbeat { seq: 9 },
        r#"{"type":"heartbeat","seq":9}"#,
    );
    golden(
        &KioskToRelay::TakeTicket {
            request_id: 3,
            category_id: "social".into(),
        },
        r#"{"type":"take_ticket","request_id":3,"category_id":"social"}"#,
    );
    golden(
        &KioskToRelay::CancelTicket {
            request_id: 4,
            ticket_id: "t1".into(),
        },
        r#"{"type":"cancel_ticket","request_id":4,"ticket_id":"t1"}"#,
    );
    golden(
        &KioskToRelay::MediaOffer {
            request_id: 5,
            sdp: "v=0".into(),
        },
        r#"{"type":"media_offer","request_id":5,"sdp":"v=0"}"#,
    );
}

#[test]
fn relay_to_kiosk() {
    golden(
        &RelayToKiosk::Welcome {
            protocol_version: 1,
            device_id: "kiosk-01".into(),
            extension_point: ExtensionPointInfo {
                id: "p1".into(),
                name: "示范居委会延伸服务点".into(),
                phone: "021-12345678".into(),
                service_hours: "周一至周五 9:00-17:00".into(),
                hours: None,
            },
            centre: CentreInfo {
                id: "c1".into(),
                name: "示范中心".into(),
            },
            categories: vec![],
            ticket: None,
            server_time_ms: 1_795_000_000_000,
            heartbeat_interval_ms: 15_000,
            ice_servers: vec![IceServer {
                urls: vec!["turn:relay.example:3478?transport=udp".into()],
                username: Some("1795000600:kiosk-01".into()),
                credential: Some("abc=".into()),
            }],
        },
        r#"{"type":"welcome","protocol_version":1,"device_id":"kiosk-01",
            "extension_point":{"id":"p1","name":"示范居委会延伸服务点","phone":"021-12345678","service_hours":"周一至周五 9:00-17:00","hours":null},
            "centre":{"id":"c1","name":"示范中心"},"categories":[],"ticket":null,
            "server_time_ms":1795000000000,"heartbeat_interval_ms":15000,
            "ice_servers":[{"urls":["turn:relay.example:3478?transport=udp"],"username":"1795000600:kiosk-01","credential":"abc="}]}"#,
    );
    golden(
        &RelayToKiosk::TicketStatus { ticket: status() },
        r#"{"type":"ticket_status","ticket":{"ticket_id":"c1-20780-7","number":"YA007","category_name":"社会保障",
            "state":"called","ahead":null,"eta_seconds":null,"window_name":"8号远程虚拟窗口","recalls":1,"availability":null,"serving_clerk":null}}"#,
    );
    golden(
        &RelayToKiosk::Staffing {
            categories: vec![
                CategoryStaffing {
                    category_id: "social-security".into(),
                    availability: Availability {
                        open: 0,
                        paused: Some(WindowPause {
                            reason: PauseReason::Meeting,
                            since_ms: 1_795_000_000_000,
                            until_ms: 1_795_001_800_000,
                        }),
                    },
                    next_opening_ms: None,
                },
                CategoryStaffing {
                    category_id: "civil".into(),
                    availability: Availability {
                        open: 2,
                        paused: None,
                    },
                    next_opening_ms: None,
                },
            ],
        },
        r#"{"type":"staffing","categories":[
            {"category_id":"social-security","open":0,"paused":{"reason":"meeting","since_ms":1795000000000,"until_ms":1795001800000}},
            {"category_id":"civil","open":2,"paused":null}]}"#,
    );
    golden(
        &RelayToKiosk::MediaSending { sending: true },
        r#"{"type":"media_sending","sending":true}"#,
    );
    golden(
        &RelayToKiosk::Error {
            request_id: Some(3),
            error: ErrorBody {
                code: ErrorCode::QueueEmpty,
                message: "当前没有可叫的号".into(),
            },
        },
        r#"{"type":"error","request_id":3,"code":"queue_empty","message":"当前没有可叫的号"}"#,
    );
}

#[test]
fn clerk_to_relay() {
    golden(
        &ClerkToRelay::Hello {
            protocol_versions: vec![1],
        },
        r#"{"type":"hello","protocol_versions":[1]}"#,
    );
    golden(
        &ClerkToRelay::OpenWindow {
            request_id: 1,
            window_id: "w8".into(),
        },
        r#"{"type":"open_window","request_id":1,"window_id":"w8"}"#,
    );
    golden(
        &ClerkToRelay::Queue {
            request_id: 2,
            op: QueueOp::CallNext,
        },
        r#"{"type":"queue","request_id":2,"op":{"op":"call_next"}}"#,
    );
    golden(
        &ClerkToRelay::Queue {
            request_id: 3,
            op: QueueOp::Transfer {
                ticket_id: "t1".into(),
                category_id: Some("social".into()),
                window_id: None,
            },
        },
        r#"{"type":"queue","request_id":3,"op":{"op":"transfer","ticket_id":"t1","category_id":"social","window_id":null}}"#,
    );
    golden(
        &ClerkToRelay::Queue {
            request_id: 4,
            op: QueueOp::ReturnToQueue {
                ticket_id: "t1".into(),
            },
        },
        r#"{"type":"queue","request_id":4,"op":{"op":"return_to_queue","ticket_id":"t1"}}"#,
    );
    golden(
        &ClerkToRelay::Queue {
            request_id: 5,
            op: QueueOp::PauseWindow {
                reason: PauseReason::Away,
                minutes: 15,
            },
        },
        r#"{"type":"queue","request_id":5,"op":{"op":"pause_window","reason":"away","minutes":15}}"#,
    );
    golden(
        &ClerkToRelay::Queue {
            request_id: 6,
            op: QueueOp::ResumeWindow,
        },
        r#"{"type":"queue","request_id":6,"op":{"op":"resume_window"}}"#,
    );
    golden(&ClerkToRelay::Ping { seq: 5 }, r#"{"type":"ping","seq":5}"#);
}

#[test]
fn relay_to_clerk() {
    golden(
        &RelayToClerk::MediaSession {
            ticket_id: Some("t1".into()),
            kiosk_media: KioskMedia::Lost,
        },
        r#"{"type":"media_session","ticket_id":"t1","kiosk_media":"lost"}"#,
    );
    golden(
        &RelayToClerk::Error {
            request_id: None,
            error: ErrorBody {
                code: ErrorCode::UnknownType,
                message: "未知的消息类型".into(),
            },
        },
        r#"{"type":"error","request_id":null,"code":"unknown_type","message":"未知的消息类型"}"#,
    );
    golden(
        &RelayToClerk::Pong {
            seq: 5,
            server_time_ms: 1,
        },
        r#"{"type":"pong","seq":5,"server_time_ms":1}"#,
    );
}

#[test]
fn ticket_machine_request() {
    golden(
        &IssueTicketRequest {
            category_id: "social".into(),
            appointment: Some(AppointmentSlot {
                start_ms: 10,
                end_ms: 20,
            }),
        },
        r#"{"category_id":"social","appointment":{"start_ms":10,"end_ms":20}}"#,
    );
    // The appointment may be left out.
    let plain: IssueTicketRequest =
        serde_json::from_str(r#"{"category_id":"social"}"#).expect("parses");
    assert_eq!(plain.appointment, None);
}

#[test]
fn unknown_fields_are_ignored_and_unknown_types_refused() {
    let m: ClerkToRelay = serde_json::from_str(r#"{"type":"ping","seq":1,"added_later":true}"#)
        .expect("unknown fields are ignored within a version");
    assert_eq!(m, ClerkToRelay::Ping { seq: 1 });
    assert!(serde_json::from_str::<ClerkToRelay>(r#"{"type":"fly"}"#).is_err());
    // A welcome from an older relay without ice_servers still parses.
    let old = r#"{"type":"welcome","protocol_version":1,"device_id":"k","extension_point":{"id":"p","name":"n","phone":"","service_hours":""},
                  "centre":{"id":"c","name":"n"},"categories":[],"ticket":null,"server_time_ms":0,"heartbeat_interval_ms":15000}"#;
    assert!(serde_json::from_str::<RelayToKiosk>(old).is_ok());
}

#[test]
fn evaluations() {
    golden(
        &KioskToRelay::Evaluation {
            request_id: 6,
            evaluation: KioskEvaluation {
                evaluation_id: "k1-0123abcd".into(),
                ticket_id: "c1-20780-7".into(),
                level: Some(EvaluationLevel::Dissatisfied),
                reasons: vec!["too_slow".into(), "unclear".into()],
                evaluated_ms: 1_795_000_000_000,
            },
        },
        r#"{"type":"evaluation","request_id":6,"evaluation":{"evaluation_id":"k1-0123abcd",
            "ticket_id":"c1-20780-7","level":"dissatisfied","reasons":["too_slow","unclear"],
            "evaluated_ms":1795000000000}}"#,
    );
    // Unrated: no answer within the time.
    golden(
        &KioskToRelay::Evaluation {
            request_id: 7,
            evaluation: KioskEvaluation {
                evaluation_id: "k1-ffff".into(),
                ticket_id: "t2".into(),
                level: None,
                reasons: vec![],
                evaluated_ms: 5,
            },
        },
        r#"{"type":"evaluation","request_id":7,"evaluation":{"evaluation_id":"k1-ffff",
            "ticket_id":"t2","level":null,"reasons":[],"evaluated_ms":5}}"#,
    );
    golden(
        &RelayToKiosk::EvaluationStored {
            request_id: 6,
            evaluation_id: "k1-0123abcd".into(),
            duplicate: false,
        },
        r#"{"type":"evaluation_stored","request_id":6,"evaluation_id":"k1-0123abcd","duplicate":false}"#,
    );
    for (level, wire, score) in [
        (EvaluationLevel::VerySatisfied, "very_satisfied", 5),
        (EvaluationLevel::Satisfied, "satisfied", 4),
        (EvaluationLevel::Basic, "basic", 3),
        (EvaluationLevel::Dissatisfied, "dissatisfied", 2),
        (EvaluationLevel::VeryDissatisfied, "very_dissatisfied", 1),
    ] {
        golden(&level, &format!("\"{wire}\""));
        assert_eq!(level.score(), score);
        assert_eq!(EvaluationLevel::from_score(score), Some(level));
        assert_eq!(level.is_bad(), score <= 2);
    }
    // Reasons may be left out.
    let plain: KioskEvaluation = serde_json::from_str(
        r#"{"evaluation_id":"a","ticket_id":"t","level":"satisfied","evaluated_ms":1}"#,
    )
    .expect("parses");
    assert!(plain.reasons.is_empty());
}

#[test]
fn typed_messages() {
    use protocol::control::{TYPED_MESSAGE_MAX_CHARS, TypedMessage, TypedTextError, typed_text};
    let message = TypedMessage {
        message_id: 12,
        ticket_id: "c1-20780-7".into(),
        text: "请带户口本原件".into(),
        sent_ms: 1_765_000_000_000,
    };
    golden(
        &ClerkToRelay::TypeToResident {
            request_id: 8,
            ticket_id: "c1-20780-7".into(),
            text: "请带户口本原件".into(),
        },
        r#"{"type":"type_to_resident","request_id":8,"ticket_id":"c1-20780-7","text":"请带户口本原件"}"#,
    );
    golden(
        &RelayToClerk::TypedMessageSent {
            request_id: 8,
            message: message.clone(),
        },
        r#"{"type":"typed_message_sent","request_id":8,"message":{"message_id":12,"ticket_id":"c1-20780-7","text":"请带户口本原件","sent_ms":1765000000000}}"#,
    );
    golden(
        &RelayToKiosk::TypedMessage { message },
        r#"{"type":"typed_message","message":{"message_id":12,"ticket_id":"c1-20780-7","text":"请带户口本原件","sent_ms":1765000000000}}"#,
    );

    // Length is counted in characters, not bytes: 200 Chinese characters pass, 201 do not.
    let longest = "字".repeat(TYPED_MESSAGE_MAX_CHARS);
    assert_eq!(typed_text(&longest).as_deref(), Ok(longest.as_str()));
    let longer = "字".repeat(TYPED_MESSAGE_MAX_CHARS + 1);
    assert_eq!(typed_text(&longer), Err(TypedTextError::TooLong));
    assert_eq!(typed_text("  \n "), Err(TypedTextError::Empty));
    assert_eq!(typed_text("  徐汇区 "), Ok("徐汇区".into()));
    assert_eq!(
        typed_text("a\u{1b}[2Jb"),
        Err(TypedTextError::ControlCharacter)
    );
    assert_eq!(
        typed_text("1\n2\n3\n4\n5\n6"),
        Err(TypedTextError::ControlCharacter)
    );
    assert_eq!(typed_text("上海市\n徐汇区"), Ok("上海市\n徐汇区".into()));
}

/// 预约 at the kiosk: check-in, booking, the appointment on the ticket and the next opening.
#[test]
fn appointments_at_the_kiosk() {
    golden(
        &KioskToRelay::CheckIn {
            request_id: 7,
            key: CheckInKey::Qr {
                qr: "APPT1:b-42:9f3a".into(),
            },
        },
        r#"{"type":"check_in","request_id":7,"key":{"by":"qr","qr":"APPT1:b-42:9f3a"}}"#,
    );
    golden(
        &KioskToRelay::CheckIn {
            request_id: 8,
            key: CheckInKey::Code {
                phone_tail: "5678".into(),
                code: "K7P2Q9".into(),
            },
        },
        r#"{"type":"check_in","request_id":8,"key":{"by":"code","phone_tail":"5678","code":"K7P2Q9"}}"#,
    );
    golden(
        &KioskToRelay::ListSlots {
            request_id: 9,
            category_id: "social".into(),
        },
        r#"{"type":"list_slots","request_id":9,"category_id":"social"}"#,
    );
    golden(
        &KioskToRelay::RequestVerification {
            request_id: 10,
            phone: "13812345678".into(),
        },
        r#"{"type":"request_verification","request_id":10,"phone":"13812345678"}"#,
    );
    golden(
        &KioskToRelay::Book {
            request_id: 11,
            category_id: "social".into(),
            slot_start_ms: 1_795_000_000_000,
            phone: "13812345678".into(),
            verification_code: "123456".into(),
            name: String::new(),
        },
        r#"{"type":"book","request_id":11,"category_id":"social","slot_start_ms":1795000000000,
            "phone":"13812345678","verification_code":"123456","name":""}"#,
    );
    let mut ticket = status();
    ticket.state = TicketState::Waiting;
    ticket.window_name = None;
    ticket.recalls = 0;
    ticket.appointment = Some(AppointmentSlot {
        start_ms: 1_795_000_000_000,
        end_ms: 1_795_001_800_000,
    });
    golden(
        &RelayToKiosk::CheckedIn {
            request_id: 7,
            arrival: Arrival::OnTime,
            ticket,
        },
        r#"{"type":"checked_in","request_id":7,"arrival":"on_time","ticket":{"ticket_id":"c1-20780-7",
            "number":"YA007","category_name":"社会保障","state":"waiting","ahead":null,"eta_seconds":null,
            "window_name":null,"recalls":0,"availability":null,"serving_clerk":null,
            "appointment":{"start_ms":1795000000000,"end_ms":1795001800000}}}"#,
    );
    golden(
        &RelayToKiosk::BookingSlots {
            request_id: 9,
            category_id: "social".into(),
            slots: vec![BookableSlot {
                start_ms: 1_795_000_000_000,
                end_ms: 1_795_001_800_000,
                free: 3,
            }],
        },
        r#"{"type":"booking_slots","request_id":9,"category_id":"social",
            "slots":[{"start_ms":1795000000000,"end_ms":1795001800000,"free":3}]}"#,
    );
    golden(
        &RelayToKiosk::VerificationSent { request_id: 10 },
        r#"{"type":"verification_sent","request_id":10}"#,
    );
    golden(
        &RelayToKiosk::Booked {
            request_id: 11,
            booking: KioskBooking {
                booking_code: "K7P2Q9".into(),
                qr: "APPT1:b-42:9f3a".into(),
                category_name: "社会保障".into(),
                slot: AppointmentSlot {
                    start_ms: 1_795_000_000_000,
                    end_ms: 1_795_001_800_000,
                },
                phone_masked: "138****5678".into(),
                qr_image: None,
            },
        },
        r#"{"type":"booked","request_id":11,"booking":{"booking_code":"K7P2Q9","qr":"APPT1:b-42:9f3a",
            "category_name":"社会保障","slot":{"start_ms":1795000000000,"end_ms":1795001800000},
            "phone_masked":"138****5678"}}"#,
    );
    golden(
        &RelayToKiosk::Staffing {
            categories: vec![CategoryStaffing {
                category_id: "social".into(),
                availability: Availability {
                    open: 0,
                    paused: None,
                },
                next_opening_ms: Some(1_795_030_000_000),
            }],
        },
        r#"{"type":"staffing","categories":[{"category_id":"social","open":0,"paused":null,
            "next_opening_ms":1795030000000}]}"#,
    );
    golden(
        &RelayToKiosk::Error {
            request_id: Some(3),
            error: ErrorBody {
                code: ErrorCode::NoOpenWindow,
                message: "现在没有开放的远程窗口".into(),
            },
        },
        r#"{"type":"error","request_id":3,"code":"no_open_window","message":"现在没有开放的远程窗口"}"#,
    );
}
