//! A registry operator's application or change (`POST /api/v1/registry/…`): the JSON body as
//! the handler reads it, validated against the built-in division list. Never a panic, and the
//! canonical row a valid form becomes is itself valid and canonical (validating it again
//! changes nothing), with its service hours describable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::registry::divisions::Divisions;
use signaling::registry::fields::FormDraft;

fuzz_target!(|data: &[u8]| {
    let Ok(draft) = serde_json::from_slice::<FormDraft>(data) else {
        return;
    };
    let divisions = Divisions::builtin();
    if let Ok(fields) = draft.validate(&divisions) {
        let _ = fields.hours.describe_zh();
        let again = FormDraft::from(&fields)
            .validate(&divisions)
            .expect("a canonical row validates");
        assert_eq!(again, fields);
        let _ = fields.changes_from(&again);
    }
});
