//! The hash chain, with no I/O: how a row's hash is computed and how a sequence of rows is
//! checked.
//!
//! `hash = SHA-256("rvw-audit-v1" ‖ prev_hash ‖ seq ‖ at_ms ‖ kind ‖ actor ‖ source ‖ subject ‖
//! detail)`, every field length-prefixed (8 bytes, big endian) so that no two different rows
//! encode to the same bytes. The first row's `prev_hash` is 64 zeros.

use sha2::{Digest, Sha256};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the trail as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub actor: String,
    pub source: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash a row must carry, given the hash of the row before it.
#[allow(clippy::too_many_arguments)]
pub fn row_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    kind: &str,
    actor: &str,
    source: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(b"rvw-audit-v1");
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(&at_ms.to_be_bytes());
    field(kind.as_bytes());
    field(actor.as_bytes());
    field(source.as_bytes());
    field(subject.as_bytes());
    field(detail.as_bytes());
    hex::encode(h.finalize())
}

impl Row {
    /// The hash this row should carry.
    pub fn expected_hash(&self) -> String {
        row_hash(
            &self.prev_hash,
            self.seq,
            self.at_ms,
            &self.kind,
            &self.actor,
            &self.source,
            &self.subject,
            &self.detail,
        )
    }
}

/// Why a row breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The sequence number is not the one after the previous row's (a row was deleted or
    /// inserted).
    Gap { expected_seq: i64 },
    /// `prev_hash` is not the previous row's hash (a row before it was removed, replaced or
    /// inserted).
    PrevHash,
    /// The row's contents do not match its hash (the row was edited).
    Hash,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Gap { expected_seq } => write!(
                f,
                "sequence number out of order (expected {expected_seq}): a row was deleted or inserted"
            ),
            Break::PrevHash => write!(
                f,
                "does not follow the previous row's hash: a row before it was deleted, replaced or inserted"
            ),
            Break::Hash => write!(f, "contents do not match its hash: the row was edited"),
        }
    }
}

/// Checks rows in order; feed them one at a time so a long trail need not be held in memory.
#[derive(Debug)]
pub struct Verifier {
    next_seq: i64,
    prev_hash: String,
    checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl Verifier {
    /// Checks the next row; the first error is the first broken row.
    pub fn check(&mut self, row: &Row) -> Result<(), Break> {
        if row.seq != self.next_seq {
            return Err(Break::Gap {
                expected_seq: self.next_seq,
            });
        }
        if row.prev_hash != self.prev_hash {
            return Err(Break::PrevHash);
        }
        if row.expected_hash() != row.hash {
            return Err(Break::Hash);
        }
        self.next_seq = row.seq.saturating_add(1);
        self.prev_hash.clone_from(&row.hash);
        self.checked += 1;
        Ok(())
    }

    /// Rows checked and found sound.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The hash of the last sound row (the head of the chain).
    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Row> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let hash = row_hash(&prev, seq, seq * 10, "k", "a", "", "s", "d");
                let row = Row {
                    seq,
                    at_ms: seq * 10,
                    kind: "k".into(),
                    actor: "a".into(),
                    source: String::new(),
                    subject: "s".into(),
                    detail: "d".into(),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn first_break(rows: &[Row]) -> Option<(i64, Break)> {
        let mut v = Verifier::default();
        rows.iter()
            .find_map(|r| v.check(r).err().map(|b| (r.seq, b)))
    }

    #[test]
    fn a_sound_chain_verifies() {
        assert_eq!(first_break(&chain(5)), None);
    }

    #[test]
    fn field_boundaries_are_part_of_the_hash() {
        assert_ne!(
            row_hash(GENESIS, 1, 1, "ab", "c", "", "", ""),
            row_hash(GENESIS, 1, 1, "a", "bc", "", "", "")
        );
    }

    #[test]
    fn an_edited_row_is_found() {
        let mut rows = chain(5);
        rows[2].detail = "changed".into();
        assert_eq!(first_break(&rows), Some((3, Break::Hash)));
    }

    #[test]
    fn an_edited_row_with_a_recomputed_hash_breaks_the_next_one() {
        let mut rows = chain(5);
        rows[2].detail = "changed".into();
        rows[2].hash = rows[2].expected_hash();
        assert_eq!(first_break(&rows), Some((4, Break::PrevHash)));
    }

    #[test]
    fn a_deleted_row_is_found() {
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(
            first_break(&rows),
            Some((3, Break::Gap { expected_seq: 2 }))
        );
    }
}
