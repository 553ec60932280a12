//! A kiosk's self-test record (`POST /api/v1/inspections`, 巡检记录), read and checked as the
//! handler does. Never a panic; an accepted report has an overall result and serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::inspection::InspectionReport;
use signaling::registry::inspections::check;

/// 2026-12-01, a relay clock the report's times are judged against.
const NOW_MS: i64 = 1_796_083_200_000;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = serde_json::from_slice::<InspectionReport>(data) else {
        return;
    };
    if let Ok(report) = check(report, NOW_MS) {
        let _ = report.overall();
        serde_json::to_vec(&report).expect("an accepted report serialises");
    }
});
