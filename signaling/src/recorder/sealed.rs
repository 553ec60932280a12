//! Recordings encrypted at rest, still seekable, and re-keyable without re-encryption.
//!
//! A sealed file is the plaintext cut into fixed-size chunks, each encrypted on its own with
//! AES-256-GCM under a key made for that file alone (the file key). The file key is stored in
//! the header, wrapped (AES-256-GCM) by the relay's master key, so the master key is the only
//! secret to keep and a leaked file key exposes one recording. Because every chunk but the last
//! has the same size, the chunk holding any plaintext offset is found by arithmetic: a player's
//! range request decrypts only the chunks it touches.
//!
//! ```text
//! fixed header  "RVWSEAL2" | u32 chunk_size | u64 plaintext_len | file id (16 random bytes)
//! key slot × 2  master key id (8) | nonce (12) | wrapped file key (32 + 16)   (all zero: empty)
//! chunk i       ciphertext (chunk_size, or the rest for the last) | GCM tag (16)
//! ```
//! Integers big-endian. Chunk i uses nonce `0000 ‖ u64 i` and authenticates the fixed header
//! plus `u64 i`, so chunks cannot be reordered, moved between files, or the length changed
//! without the tag check failing. The key slots are *not* part of the chunks' associated data:
//! a master key rotation writes the file key wrapped under the new master key into the free
//! slot (the old slot still opens the file if that write is torn), and once the new key is in
//! place clears the old slot — without touching a byte of the body. Each wrapped key
//! authenticates `"RVWSEAL2 file key"` plus the fixed header, so a slot cannot be moved to
//! another file, and the master key id says which master key opens it.
//!
//! The first format, `RVWSEAL1` (one wrapped key inside the authenticated header), is still
//! read; a rotation rewrites such a file once into the current format.
//!
//! Not covered: the raw dump written while a session is live, and the muxed plaintext for the
//! moment between muxing and sealing (both in the recordings directory, 0600 in a 0700
//! directory, both deleted once the sealed file is durable).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::keys::KeyBytes;

/// The current format.
pub const MAGIC: &[u8; 8] = b"RVWSEAL2";
/// The first format (still read).
pub const MAGIC_V1: &[u8; 8] = b"RVWSEAL1";
pub const CHUNK: u32 = 64 * 1024;
const TAG: usize = 16;
const KEY: usize = 32;
const ID: usize = 8;
const FILE_ID: usize = 16;
/// Magic, chunk size, plaintext length, file id: what every chunk authenticates.
const FIXED_LEN: usize = 8 + 4 + 8 + FILE_ID;
const SLOT_LEN: usize = ID + NONCE_LEN + KEY + TAG;
const SLOTS: usize = 2;
/// Where the body starts in the current format.
pub const HEADER_LEN: usize = FIXED_LEN + SLOTS * SLOT_LEN;
/// Where the body starts in the first format.
pub const HEADER_LEN_V1: usize = 8 + 4 + 8 + NONCE_LEN + KEY + TAG;
const WRAP_AAD: &[u8] = b"RVWSEAL2 file key";
const WRAP_AAD_V1: &[u8] = b"RVWSEAL1 file key";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed file i/o: {0}")]
    Io(#[from] io::Error),
    #[error("not a sealed recording")]
    NotSealed,
    #[error("the recording key does not open this file")]
    WrongKey,
    #[error("chunk {0} failed its integrity check")]
    Corrupt(u64),
    #[error("cryptography failed")]
    Crypto,
    #[error("the recording key file {0}")]
    KeyFile(String),
}

/// A recording master key. Debug output shows its id only.
pub struct MasterKey {
    key: LessSafeKey,
    id: [u8; ID],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", hex::encode(self.id))
    }
}

fn aes(key: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Crypto)
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| SealError::Crypto)?;
    Ok(b)
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; KEY]) -> Result<Self, SealError> {
        Ok(Self {
            key: aes(bytes)?,
            id: crate::keys::fingerprint(bytes),
        })
    }

    pub fn from_key(key: &KeyBytes) -> Result<Self, SealError> {
        Self::from_bytes(key.bytes())
    }

    /// Reads the key file `path` (it must exist, be private and hold 64 hex digits).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let key =
            crate::keys::read_key_file(path).map_err(|e| SealError::KeyFile(e.to_string()))?;
        Self::from_key(&key)
    }

    pub fn id(&self) -> [u8; ID] {
        self.id
    }
}

/// The recording master keys a relay holds: the first seals, any opens (during a rotation:
/// the current, the next and the previous key).
#[derive(Debug)]
pub struct Keyring(pub Vec<MasterKey>);

impl From<MasterKey> for Keyring {
    fn from(key: MasterKey) -> Self {
        Keyring(vec![key])
    }
}

impl Keyring {
    /// The key file `path` and its rotation siblings (`path.next`, `path.previous`).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let keys = crate::keys::load_ring(path).map_err(|e| SealError::KeyFile(e.to_string()))?;
        keys.iter()
            .map(MasterKey::from_key)
            .collect::<Result<Vec<_>, _>>()
            .map(Keyring)
    }

    /// The sealing key.
    pub fn sealing(&self) -> Result<&MasterKey, SealError> {
        self.0.first().ok_or(SealError::WrongKey)
    }
}

fn chunk_nonce(i: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn chunk_aad(authenticated: &[u8], i: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(authenticated.len() + 8);
    aad.extend_from_slice(authenticated);
    aad.extend_from_slice(&i.to_be_bytes());
    aad
}

fn slot_aad(fixed: &[u8; FIXED_LEN]) -> Vec<u8> {
    let mut aad = WRAP_AAD.to_vec();
    aad.extend_from_slice(fixed);
    aad
}

/// The file key wrapped under `master` for the file with this fixed header.
fn wrap_slot(
    master: &MasterKey,
    file_key: &[u8; KEY],
    fixed: &[u8; FIXED_LEN],
) -> Result<[u8; SLOT_LEN], SealError> {
    let nonce = random::<NONCE_LEN>()?;
    let mut wrapped = file_key.to_vec();
    master
        .key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(slot_aad(fixed)),
            &mut wrapped,
        )
        .map_err(|_| SealError::Crypto)?;
    let mut slot = [0u8; SLOT_LEN];
    slot[..ID].copy_from_slice(&master.id);
    slot[ID..ID + NONCE_LEN].copy_from_slice(&nonce);
    slot[ID + NONCE_LEN..].copy_from_slice(&wrapped);
    Ok(slot)
}

fn slot_id(slot: &[u8; SLOT_LEN]) -> Option<[u8; ID]> {
    let mut id = [0u8; ID];
    id.copy_from_slice(&slot[..ID]);
    (id != [0u8; ID]).then_some(id)
}

fn unwrap_slot(
    master: &MasterKey,
    slot: &[u8; SLOT_LEN],
    fixed: &[u8; FIXED_LEN],
) -> Result<[u8; KEY], SealError> {
    if slot_id(slot) != Some(master.id) {
        return Err(SealError::WrongKey);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&slot[ID..ID + NONCE_LEN]);
    let mut wrapped = slot[ID + NONCE_LEN..].to_vec();
    let key = master
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(slot_aad(fixed)),
            &mut wrapped,
        )
        .map_err(|_| SealError::WrongKey)?;
    <[u8; KEY]>::try_from(&key[..]).map_err(|_| SealError::WrongKey)
}

/// A parsed header of either format.
enum Header {
    V1 {
        header: [u8; HEADER_LEN_V1],
    },
    V2 {
        fixed: [u8; FIXED_LEN],
        slots: [[u8; SLOT_LEN]; SLOTS],
    },
}

struct Parsed {
    header: Header,
    chunk: u64,
    len: u64,
}

fn read_header(file: &File) -> Result<Parsed, SealError> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let chunk = u64::from(u32::from_be_bytes([head[8], head[9], head[10], head[11]]));
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&head[12..20]);
    let len = u64::from_be_bytes(len_bytes);
    let header = if &head[..8] == MAGIC && got == HEADER_LEN {
        let mut fixed = [0u8; FIXED_LEN];
        fixed.copy_from_slice(&head[..FIXED_LEN]);
        let mut slots = [[0u8; SLOT_LEN]; SLOTS];
        for (i, slot) in slots.iter_mut().enumerate() {
            let at = FIXED_LEN + i * SLOT_LEN;
            slot.copy_from_slice(&head[at..at + SLOT_LEN]);
        }
        Header::V2 { fixed, slots }
    } else if &head[..8] == MAGIC_V1 && got >= HEADER_LEN_V1 {
        let mut header = [0u8; HEADER_LEN_V1];
        header.copy_from_slice(&head[..HEADER_LEN_V1]);
        Header::V1 { header }
    } else {
        return Err(SealError::NotSealed);
    };
    if chunk == 0 || chunk > 16 * 1024 * 1024 {
        return Err(SealError::NotSealed);
    }
    // The length is authenticated only when a chunk is opened; until then it is whatever the
    // file says. One whose chunks could not all have offsets in a file is refused here, so the
    // offset arithmetic of a range request cannot overflow.
    let header_len = match header {
        Header::V2 { .. } => HEADER_LEN,
        Header::V1 { .. } => HEADER_LEN_V1,
    };
    if sealed_size(header_len, chunk, len).is_none() {
        return Err(SealError::NotSealed);
    }
    Ok(Parsed { header, chunk, len })
}

impl Parsed {
    /// The file key, by the first of `keys` that opens one of the file's slots; the index of
    /// that slot (always 0 in the first format) and of that key in `keys`.
    fn file_key(&self, keys: &[MasterKey]) -> Result<([u8; KEY], usize, usize), SealError> {
        match &self.header {
            Header::V1 { header } => {
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&header[20..20 + NONCE_LEN]);
                for (m, master) in keys.iter().enumerate() {
                    let mut wrapped = header[20 + NONCE_LEN..].to_vec();
                    if let Ok(key) = master.key.open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(WRAP_AAD_V1),
                        &mut wrapped,
                    ) && let Ok(key) = <[u8; KEY]>::try_from(&key[..])
                    {
                        return Ok((key, 0, m));
                    }
                }
                Err(SealError::WrongKey)
            }
            Header::V2 { fixed, slots } => {
                for (m, master) in keys.iter().enumerate() {
                    for (i, slot) in slots.iter().enumerate() {
                        if let Ok(key) = unwrap_slot(master, slot, fixed) {
                            return Ok((key, i, m));
                        }
                    }
                }
                Err(SealError::WrongKey)
            }
        }
    }

    /// What every chunk authenticates, and where the body starts.
    fn body(&self) -> (Vec<u8>, u64) {
        match &self.header {
            Header::V1 { header } => (header.to_vec(), HEADER_LEN_V1 as u64),
            Header::V2 { fixed, .. } => (fixed.to_vec(), HEADER_LEN as u64),
        }
    }
}

/// Where a sealed file goes for a plaintext recording (`x.webm` → `x.webm.sealed`).
pub fn sealed_path(plain: &Path) -> PathBuf {
    let mut name = plain.as_os_str().to_owned();
    name.push(".sealed");
    PathBuf::from(name)
}

/// What sealing produced.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub path: PathBuf,
    pub plaintext_len: u64,
    pub sealed_len: u64,
    /// SHA-256 of the plaintext, computed while sealing.
    pub plaintext_sha256_hex: String,
}

/// Encrypt `plain` into `out` (written as `out.part`, synced, renamed). Blocking; the caller
/// removes the plaintext once this returns.
pub fn seal_file(master: &MasterKey, plain: &Path, out: &Path) -> Result<Sealed, SealError> {
    let mut input = File::open(plain)?;
    let plaintext_len = input.metadata()?.len();
    write_sealed(&[master], plaintext_len, out, |_, buf| {
        input.read_exact(buf).map_err(SealError::Io)
    })
}

/// Writes a sealed file of `plaintext_len` bytes whose file key is wrapped under each of
/// `masters` (one slot each), filling chunk after chunk with `fill(offset, buf)`.
fn write_sealed(
    masters: &[&MasterKey],
    plaintext_len: u64,
    out: &Path,
    mut fill: impl FnMut(u64, &mut [u8]) -> Result<(), SealError>,
) -> Result<Sealed, SealError> {
    if masters.is_empty() || masters.len() > SLOTS {
        return Err(SealError::Crypto);
    }
    let file_key = random::<KEY>()?;
    let mut fixed = [0u8; FIXED_LEN];
    fixed[..8].copy_from_slice(MAGIC);
    fixed[8..12].copy_from_slice(&CHUNK.to_be_bytes());
    fixed[12..20].copy_from_slice(&plaintext_len.to_be_bytes());
    fixed[20..].copy_from_slice(&random::<FILE_ID>()?);
    let mut header = [0u8; HEADER_LEN];
    header[..FIXED_LEN].copy_from_slice(&fixed);
    for (i, master) in masters.iter().enumerate() {
        let at = FIXED_LEN + i * SLOT_LEN;
        header[at..at + SLOT_LEN].copy_from_slice(&wrap_slot(master, &file_key, &fixed)?);
    }
    let key = aes(&file_key)?;

    let part = {
        let mut name = out.as_os_str().to_owned();
        name.push(".part");
        PathBuf::from(name)
    };
    let mut w = io::BufWriter::with_capacity(
        256 * 1024,
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)?,
    );
    w.write_all(&header)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut i = 0u64;
    let mut remaining = plaintext_len;
    while remaining > 0 {
        let n = remaining.min(u64::from(CHUNK)) as usize;
        fill(plaintext_len - remaining, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        let tag = key
            .seal_in_place_separate_tag(
                chunk_nonce(i),
                Aad::from(chunk_aad(&fixed, i)),
                &mut buf[..n],
            )
            .map_err(|_| SealError::Crypto)?;
        w.write_all(&buf[..n])?;
        w.write_all(tag.as_ref())?;
        remaining -= n as u64;
        i += 1;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let sealed_len = file.metadata()?.len();
    drop(file);
    std::fs::rename(&part, out)?;
    crate::keys::sync_dir_of(out);
    Ok(Sealed {
        path: out.to_path_buf(),
        plaintext_len,
        sealed_len,
        plaintext_sha256_hex: hex::encode(hasher.finalize()),
    })
}

/// What [`add_master`] did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rekeyed {
    /// The file already had a slot for the new master key.
    Already,
    /// The file key was wrapped under the new master key into the free slot; the body was not
    /// touched.
    SlotWritten,
    /// A file of the first format was rewritten once in the current format (its body had to
    /// be re-encrypted, because its wrapped key was part of every chunk's associated data).
    Resealed,
}

/// First step of a rotation for one file: wrap its file key, opened by any of `keys`, under
/// `new` too, in the slot the opening key does not use (so a torn write never harms the slot
/// that still opens the file). Synced before it returns.
pub fn add_master(keys: &[MasterKey], new: &MasterKey, path: &Path) -> Result<Rekeyed, SealError> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let parsed = read_header(&file)?;
    if let Header::V2 { fixed, slots } = &parsed.header {
        if slots.iter().any(|s| unwrap_slot(new, s, fixed).is_ok()) {
            return Ok(Rekeyed::Already);
        }
        let (file_key, used, _) = parsed.file_key(keys)?;
        let free = 1 - used;
        let slot = wrap_slot(new, &file_key, fixed)?;
        file.write_all_at(&slot, (FIXED_LEN + free * SLOT_LEN) as u64)?;
        file.sync_data()?;
        return Ok(Rekeyed::SlotWritten);
    }
    // The first format: decrypt with the old key and seal again under both keys, through a
    // `.part` file renamed over the original (either the old or the new file is whole).
    let (_, _, m) = parsed.file_key(keys)?;
    let opener = &keys[m];
    let mut reader = SealedReader::from_file(file, &parsed, keys)?;
    let len = reader.len();
    let tmp = {
        let mut name = path.as_os_str().to_owned();
        name.push(".rekey");
        PathBuf::from(name)
    };
    write_sealed(&[opener, new], len, &tmp, |offset, buf| {
        let mut at = 0;
        reader.read_range(offset, offset + buf.len() as u64, |piece| {
            buf[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
            true
        })?;
        if at == buf.len() {
            Ok(())
        } else {
            Err(SealError::Corrupt(offset / u64::from(CHUNK)))
        }
    })?;
    std::fs::rename(&tmp, path)?;
    crate::keys::sync_dir_of(path);
    Ok(Rekeyed::Resealed)
}

/// Last step of a rotation for one file: with a slot that `new` opens in place, clear every
/// other slot, so the old master key alone no longer opens the file. Returns whether anything
/// was cleared. Synced before it returns.
pub fn drop_other_masters(new: &MasterKey, path: &Path) -> Result<bool, SealError> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let parsed = read_header(&file)?;
    let Header::V2 { fixed, slots } = &parsed.header else {
        return Err(SealError::WrongKey);
    };
    if !slots.iter().any(|s| unwrap_slot(new, s, fixed).is_ok()) {
        return Err(SealError::WrongKey);
    }
    let mut changed = false;
    for (i, slot) in slots.iter().enumerate() {
        if slot_id(slot).is_some_and(|id| id != new.id) {
            file.write_all_at(&[0u8; SLOT_LEN], (FIXED_LEN + i * SLOT_LEN) as u64)?;
            changed = true;
        }
    }
    if changed {
        file.sync_data()?;
    }
    Ok(changed)
}

/// Random access to the plaintext of a sealed file.
pub struct SealedReader {
    file: File,
    key: LessSafeKey,
    authenticated: Vec<u8>,
    body_at: u64,
    chunk: u64,
    len: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SealedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedReader")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The size of a sealed file holding `len` plaintext bytes in `chunk`-byte chunks after a
/// `header`-byte header; `None` when no file could be that large.
fn sealed_size(header: usize, chunk: u64, len: u64) -> Option<u64> {
    let chunks = len.div_ceil(chunk);
    chunks
        .checked_mul(TAG as u64)?
        .checked_add(len)?
        .checked_add(header as u64)
}

impl SealedReader {
    /// Opens a sealed file (either format) with whichever of `keys` opens it.
    pub fn open(keys: &[MasterKey], path: &Path) -> Result<Self, SealError> {
        let file = File::open(path)?;
        let parsed = read_header(&file)?;
        Self::from_file(file, &parsed, keys)
    }

    fn from_file(file: File, parsed: &Parsed, keys: &[MasterKey]) -> Result<Self, SealError> {
        let (file_key, _, _) = parsed.file_key(keys)?;
        let (authenticated, body_at) = parsed.body();
        Ok(Self {
            file,
            key: aes(&file_key)?,
            authenticated,
            body_at,
            chunk: parsed.chunk,
            len: parsed.len,
            buf: Vec::new(),
        })
    }

    /// Length of the plaintext.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decrypt chunk `i`; the plaintext is returned as a slice of an internal buffer.
    fn chunk(&mut self, i: u64) -> Result<&[u8], SealError> {
        let start = i.checked_mul(self.chunk).ok_or(SealError::Corrupt(i))?;
        if start >= self.len {
            return Err(SealError::Corrupt(i));
        }
        let n = usize::try_from((self.len - start).min(self.chunk))
            .map_err(|_| SealError::Corrupt(i))?;
        let at = i
            .checked_mul(self.chunk + TAG as u64)
            .and_then(|o| o.checked_add(self.body_at))
            .ok_or(SealError::Corrupt(i))?;
        self.buf.resize(n + TAG, 0);
        self.file.read_exact_at(&mut self.buf, at).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                SealError::Corrupt(i)
            } else {
                SealError::Io(e)
            }
        })?;
        let plain = self
            .key
            .open_in_place(
                chunk_nonce(i),
                Aad::from(chunk_aad(&self.authenticated, i)),
                &mut self.buf,
            )
            .map_err(|_| SealError::Corrupt(i))?;
        Ok(plain)
    }

    /// Hand the plaintext bytes `start..end` to `sink` piece by piece (one decrypted chunk at
    /// a time). `sink` returns false to stop early.
    pub fn read_range(
        &mut self,
        start: u64,
        end: u64,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), SealError> {
        let end = end.min(self.len);
        let mut pos = start;
        while pos < end {
            let i = pos / self.chunk;
            let chunk_start = i * self.chunk;
            let chunk_size = self.chunk;
            let data = self.chunk(i)?;
            let from = (pos - chunk_start) as usize;
            let to = ((end - chunk_start).min(chunk_size) as usize).min(data.len());
            if !sink(&data[from..to]) {
                return Ok(());
            }
            pos = chunk_start + to as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; KEY]).expect("key")
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn read_all(keys: &[MasterKey], path: &Path) -> Result<Vec<u8>, SealError> {
        let mut r = SealedReader::open(keys, path)?;
        let mut got = Vec::new();
        r.read_range(0, r.len(), |p| {
            got.extend_from_slice(p);
            true
        })?;
        Ok(got)
    }

    /// A file of the first format, laid out as the relay wrote them before key slots: the
    /// wrapped key inside the header every chunk authenticates.
    pub(crate) fn seal_v1(master: &MasterKey, data: &[u8], out: &Path) {
        let file_key = [9u8; KEY];
        let key_nonce = [3u8; NONCE_LEN];
        let mut wrapped = file_key.to_vec();
        master
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(key_nonce),
                Aad::from(WRAP_AAD_V1),
                &mut wrapped,
            )
            .expect("wrap");
        let mut header = [0u8; HEADER_LEN_V1];
        header[..8].copy_from_slice(MAGIC_V1);
        header[8..12].copy_from_slice(&CHUNK.to_be_bytes());
        header[12..20].copy_from_slice(&(data.len() as u64).to_be_bytes());
        header[20..20 + NONCE_LEN].copy_from_slice(&key_nonce);
        header[20 + NONCE_LEN..].copy_from_slice(&wrapped);
        let key = aes(&file_key).expect("aes");
        let mut out_bytes = header.to_vec();
        for (i, piece) in data.chunks(CHUNK as usize).enumerate() {
            let mut buf = piece.to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    chunk_nonce(i as u64),
                    Aad::from(chunk_aad(&header, i as u64)),
                    &mut buf,
                )
                .expect("seal");
            out_bytes.extend_from_slice(&buf);
            out_bytes.extend_from_slice(tag.as_ref());
        }
        std::fs::write(out, out_bytes).expect("write");
    }

    fn roundtrip(len: usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("r.webm");
        let data = sample(len);
        std::fs::write(&plain, &data).expect("write");
        let out = sealed_path(&plain);
        let sealed = seal_file(&key(7), &plain, &out).expect("seal");
        assert_eq!(sealed.plaintext_len, len as u64);
        assert_eq!(
            sealed.plaintext_sha256_hex,
            hex::encode(Sha256::digest(&data))
        );
        let raw = std::fs::read(&out).expect("read");
        assert!(
            len < 64 || raw.windows(64).all(|w| data.windows(64).next() != Some(w)),
            "no plaintext run survives sealing"
        );
        let keys = [key(7)];
        let mut r = SealedReader::open(&keys, &out).expect("open");
        assert_eq!(r.len(), len as u64);
        for (a, b) in [
            (0, len),
            (0, 1),
            (len / 3, len / 2),
            (CHUNK as usize - 5, CHUNK as usize + 5),
            (len.saturating_sub(3), len),
        ] {
            let mut got = Vec::new();
            r.read_range(a as u64, b as u64, |p| {
                got.extend_from_slice(p);
                true
            })
            .expect("range");
            assert_eq!(got, data[a.min(len)..b.min(len)], "range {a}..{b} of {len}");
        }
    }

    #[test]
    fn ranges_decrypt_to_the_plaintext() {
        for len in [
            0,
            1,
            1000,
            CHUNK as usize,
            CHUNK as usize + 1,
            3 * CHUNK as usize + 77,
        ] {
            roundtrip(len);
        }
    }

    #[test]
    fn wrong_key_and_tampering_are_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("r.webm");
        std::fs::write(&plain, sample(200_000)).expect("write");
        let out = sealed_path(&plain);
        seal_file(&key(1), &plain, &out).expect("seal");
        assert!(matches!(
            SealedReader::open(&[key(2)], &out),
            Err(SealError::WrongKey)
        ));
        let mut raw = std::fs::read(&out).expect("read");
        // The fixed header is authenticated by every chunk: a changed length fails them all.
        let mut longer = raw.clone();
        longer[19] ^= 1;
        std::fs::write(&out, &longer).expect("write");
        assert!(
            SealedReader::open(&[key(1)], &out).is_err() || read_all(&[key(1)], &out).is_err(),
            "a changed header is found"
        );
        let i = HEADER_LEN + CHUNK as usize + TAG + 10;
        raw[i] ^= 1;
        std::fs::write(&out, &raw).expect("write");
        let mut r = SealedReader::open(&[key(1)], &out).expect("header intact");
        let first = r.read_range(0, 100, |_| true);
        assert!(first.is_ok(), "chunk 0 untouched");
        let second = r.read_range(u64::from(CHUNK), u64::from(CHUNK) + 10, |_| true);
        assert!(matches!(second, Err(SealError::Corrupt(1))), "{second:?}");
        // A truncated file fails on its missing chunk, never panics.
        raw.truncate(HEADER_LEN + 100);
        std::fs::write(&out, &raw).expect("write");
        let mut r = SealedReader::open(&[key(1)], &out).expect("header intact");
        assert!(r.read_range(0, 10, |_| true).is_err());
        raw.truncate(HEADER_LEN - 1);
        std::fs::write(&out, &raw).expect("write");
        assert!(matches!(
            SealedReader::open(&[key(1)], &out),
            Err(SealError::NotSealed)
        ));
        assert!(matches!(
            SealedReader::open(&[key(1)], &plain),
            Err(SealError::NotSealed)
        ));
    }

    /// The header's chunk size and length are not authenticated until a chunk is opened: a
    /// file edited to claim 1-byte chunks and an impossible length is refused when opened, and
    /// a length that is only a lie no longer opens the file (the key slots are bound to the
    /// header) — neither reaches the offsets a range request at the far end would compute.
    #[test]
    fn an_edited_length_in_the_header_is_refused_not_overflowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("r.webm");
        std::fs::write(&plain, sample(1000)).expect("write");
        let out = sealed_path(&plain);
        seal_file(&key(1), &plain, &out).expect("seal");
        let raw = std::fs::read(&out).expect("read");
        let edit = |chunk: u32, len: u64| {
            let mut edited = raw.clone();
            edited[8..12].copy_from_slice(&chunk.to_be_bytes());
            edited[12..20].copy_from_slice(&len.to_be_bytes());
            std::fs::write(&out, &edited).expect("write");
        };
        edit(1, u64::MAX);
        assert!(matches!(
            SealedReader::open(&[key(1)], &out),
            Err(SealError::NotSealed)
        ));
        edit(1, u64::MAX / 32);
        assert!(matches!(
            SealedReader::open(&[key(1)], &out),
            Err(SealError::WrongKey)
        ));
    }

    #[test]
    fn a_new_master_key_is_added_and_the_old_one_dropped_without_touching_the_body() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("r.webm");
        let data = sample(3 * CHUNK as usize + 5);
        std::fs::write(&plain, &data).expect("write");
        let out = sealed_path(&plain);
        seal_file(&key(1), &plain, &out).expect("seal");
        let body = |p: &Path| std::fs::read(p).expect("read")[HEADER_LEN..].to_vec();
        let before = body(&out);

        assert_eq!(
            add_master(&[key(1)], &key(2), &out).expect("add"),
            Rekeyed::SlotWritten
        );
        assert_eq!(
            add_master(&[key(1)], &key(2), &out).expect("again"),
            Rekeyed::Already
        );
        assert_eq!(read_all(&[key(1)], &out).expect("old"), data);
        assert_eq!(read_all(&[key(2)], &out).expect("new"), data);

        assert!(drop_other_masters(&key(2), &out).expect("drop"));
        assert!(!drop_other_masters(&key(2), &out).expect("again"));
        assert!(matches!(
            SealedReader::open(&[key(1)], &out),
            Err(SealError::WrongKey)
        ));
        assert_eq!(read_all(&[key(2)], &out).expect("new"), data);
        assert_eq!(body(&out), before, "the body is the same bytes");

        // A second rotation uses the slot the first one cleared.
        add_master(&[key(2)], &key(3), &out).expect("add");
        drop_other_masters(&key(3), &out).expect("drop");
        assert_eq!(read_all(&[key(3)], &out).expect("third"), data);
        assert!(SealedReader::open(&[key(2)], &out).is_err());
        // Dropping the old slot needs a slot the new key opens.
        assert!(drop_other_masters(&key(4), &out).is_err());
        assert_eq!(read_all(&[key(3)], &out).expect("intact"), data);
    }

    #[test]
    fn a_torn_slot_write_leaves_the_old_slot_working() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("r.webm");
        std::fs::write(&plain, sample(1000)).expect("write");
        let out = sealed_path(&plain);
        seal_file(&key(1), &plain, &out).expect("seal");
        // Half a slot written into the free slot, as a crash in the middle would leave it.
        let f = OpenOptions::new().write(true).open(&out).expect("open");
        f.write_all_at(&key(2).id(), (FIXED_LEN + SLOT_LEN) as u64)
            .expect("write");
        f.write_all_at(&[0xAB; 20], (FIXED_LEN + SLOT_LEN + ID) as u64)
            .expect("write");
        drop(f);
        assert_eq!(read_all(&[key(1)], &out).expect("old").len(), 1000);
        assert!(SealedReader::open(&[key(2)], &out).is_err());
        // Resuming writes the slot again.
        assert_eq!(
            add_master(&[key(1)], &key(2), &out).expect("add"),
            Rekeyed::SlotWritten
        );
        assert_eq!(read_all(&[key(2)], &out).expect("new").len(), 1000);
    }

    #[test]
    fn the_first_format_is_read_and_rekeyed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("old.webm.sealed");
        let data = sample(2 * CHUNK as usize + 9);
        seal_v1(&key(1), &data, &out);
        assert_eq!(read_all(&[key(1)], &out).expect("v1 read"), data);
        assert!(SealedReader::open(&[key(2)], &out).is_err());
        assert_eq!(
            add_master(&[key(1)], &key(2), &out).expect("reseal"),
            Rekeyed::Resealed
        );
        assert_eq!(&std::fs::read(&out).expect("read")[..8], MAGIC);
        assert_eq!(read_all(&[key(1)], &out).expect("old"), data);
        assert_eq!(read_all(&[key(2)], &out).expect("new"), data);
        drop_other_masters(&key(2), &out).expect("drop");
        assert!(SealedReader::open(&[key(1)], &out).is_err());
        assert_eq!(read_all(&[key(2)], &out).expect("new"), data);
    }

    #[test]
    fn key_files_are_read_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recordings.key");
        crate::keys::write_key_file(&path, &KeyBytes::random()).expect("write");
        assert!(MasterKey::load(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(MasterKey::load(&path), Err(SealError::KeyFile(_))));
    }
}
