//! The division list (区划名录) a relay loads from `registry.divisions_file` when the city
//! supplies one. Never a panic; an accepted list written back as TOML reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::registry::divisions::Divisions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(list) = Divisions::parse(text) else {
        return;
    };
    let written = toml::to_string(&list).expect("a list serialises");
    assert_eq!(Divisions::parse(&written).ok(), Some(list.clone()));
    for d in &list.districts {
        for s in &d.streets {
            assert!(list.check_street(&d.name, s).is_ok());
        }
    }
});
