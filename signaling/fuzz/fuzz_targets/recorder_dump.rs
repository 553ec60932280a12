//! A recorder's raw dump as the muxing step and crash recovery read it back (a dump can be
//! torn by a crash, or tampered with on disk). The reader must never panic, must stop at the
//! first bad record, and every record it yields must be written back to the same bytes'
//! meaning: written again and read again, it is the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::recorder::dump::{DumpReader, RecordMeta, write_header, write_record};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = DumpReader::new(data) else {
        return;
    };
    let mut copy = Vec::new();
    write_header(&mut copy, &reader.header).expect("a header read back writes");
    let mut records = Vec::new();
    let mut scratch = Vec::new();
    while let Some(record) = reader.next_record() {
        assert!(
            records.len() <= data.len() / 32,
            "more records than bytes allow"
        );
        let meta = RecordMeta {
            t_micros: record.t_micros,
            slot: record.slot,
            codec: record.codec,
            marker: record.marker,
            pt: record.pt,
            ssrc: record.ssrc,
            seq: record.seq,
            rtp_ts: record.rtp_ts,
        };
        write_record(&mut copy, &meta, &record.payload, &mut scratch).expect("vec write");
        records.push(record);
    }
    assert!(
        reader.next_record().is_none(),
        "a finished reader stays finished"
    );
    let mut again = DumpReader::new(&copy[..]).expect("a rewritten header reads");
    assert_eq!(again.header, reader.header);
    for record in &records {
        assert_eq!(again.next_record().as_ref(), Some(record));
    }
    assert!(again.next_record().is_none());
    assert!(!again.torn_tail);
});
