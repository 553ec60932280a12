//! Recordings encrypted at rest, still seekable.
//!
//! A sealed file is the plaintext cut into fixed-size chunks, each encrypted on its own with
//! AES-256-GCM under a key made for that file alone. The file key is stored in the header,
//! wrapped (AES-256-GCM) by the relay's master key, so the master key is the only secret to
//! keep and a leaked file key exposes one recording. Because every chunk but the last has the
//! same size, the chunk holding any plaintext offset is found by arithmetic: a player's range
//! request decrypts only the chunks it touches.
//!
//! ```text
//! header  "RVWSEAL1" | u32 chunk_size | u64 plaintext_len | key nonce (12) | wrapped key (32+16)
//! chunk i ciphertext (chunk_size, or the rest for the last) | GCM tag (16)
//! ```
//! Integers big-endian. Chunk i uses nonce `0000 ‖ u64 i` and authenticates the whole header
//! plus `u64 i` as associated data, so chunks cannot be reordered, moved between files, or the
//! length changed without the tag check failing.
//!
//! Not covered: the raw dump written while a session is live, and the muxed plaintext for the
//! moment between muxing and sealing (both in the recordings directory, both deleted once the
//! sealed file is durable).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"RVWSEAL1";
pub const CHUNK: u32 = 64 * 1024;
const TAG: usize = 16;
const KEY: usize = 32;
pub const HEADER_LEN: usize = 8 + 4 + 8 + NONCE_LEN + KEY + TAG;
const WRAP_AAD: &[u8] = b"RVWSEAL1 file key";

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

/// The relay's recording master key. Debug output never shows it.
pub struct MasterKey(LessSafeKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
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
        Ok(Self(aes(bytes)?))
    }

    /// Reads the key file (64 hex digits), creating it (mode 0600) with a fresh random key
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                crate::cases::crypto::check_private(path).map_err(|detail| {
                    SealError::KeyFile(format!("{}: {detail}", path.display()))
                })?;
                let bytes = hex::decode(text.trim()).map_err(|_| SealError::NotSealed)?;
                let bytes: [u8; KEY] = bytes.try_into().map_err(|_| SealError::NotSealed)?;
                Self::from_bytes(&bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)?;
                }
                let bytes = random::<KEY>()?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(hex::encode(bytes).as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()?;
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn chunk_nonce(i: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn chunk_aad(header: &[u8; HEADER_LEN], i: u64) -> [u8; HEADER_LEN + 8] {
    let mut aad = [0u8; HEADER_LEN + 8];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN..].copy_from_slice(&i.to_be_bytes());
    aad
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
    let file_key = random::<KEY>()?;
    let key_nonce = random::<NONCE_LEN>()?;
    let mut wrapped = file_key.to_vec();
    master
        .0
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(key_nonce),
            Aad::from(WRAP_AAD),
            &mut wrapped,
        )
        .map_err(|_| SealError::Crypto)?;
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&CHUNK.to_be_bytes());
    header[12..20].copy_from_slice(&plaintext_len.to_be_bytes());
    header[20..20 + NONCE_LEN].copy_from_slice(&key_nonce);
    header[20 + NONCE_LEN..].copy_from_slice(&wrapped);
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
        input.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        let tag = key
            .seal_in_place_separate_tag(
                chunk_nonce(i),
                Aad::from(chunk_aad(&header, i)),
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
    if let Some(dir) = out.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(Sealed {
        path: out.to_path_buf(),
        plaintext_len,
        sealed_len,
        plaintext_sha256_hex: hex::encode(hasher.finalize()),
    })
}

/// Random access to the plaintext of a sealed file.
pub struct SealedReader {
    file: File,
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
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

/// The size of a sealed file holding `len` plaintext bytes in `chunk`-byte chunks; `None`
/// when no file could be that large.
fn sealed_size(chunk: u64, len: u64) -> Option<u64> {
    let chunks = len.div_ceil(chunk);
    chunks
        .checked_mul(TAG as u64)?
        .checked_add(len)?
        .checked_add(HEADER_LEN as u64)
}

impl SealedReader {
    pub fn open(master: &MasterKey, path: &Path) -> Result<Self, SealError> {
        let file = File::open(path)?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, 0).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                SealError::NotSealed
            } else {
                SealError::Io(e)
            }
        })?;
        if &header[..8] != MAGIC {
            return Err(SealError::NotSealed);
        }
        let chunk = u64::from(u32::from_be_bytes([
            header[8], header[9], header[10], header[11],
        ]));
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&header[12..20]);
        let len = u64::from_be_bytes(len_bytes);
        if chunk == 0 || chunk > 16 * 1024 * 1024 {
            return Err(SealError::NotSealed);
        }
        // The length is authenticated only when a chunk is opened; until then it is whatever
        // the file says. One whose chunks could not all have offsets in a file is refused
        // here, so the offset arithmetic below cannot overflow.
        if sealed_size(chunk, len).is_none() {
            return Err(SealError::NotSealed);
        }
        let mut key_nonce = [0u8; NONCE_LEN];
        key_nonce.copy_from_slice(&header[20..20 + NONCE_LEN]);
        let mut wrapped = header[20 + NONCE_LEN..].to_vec();
        let file_key = master
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(key_nonce),
                Aad::from(WRAP_AAD),
                &mut wrapped,
            )
            .map_err(|_| SealError::WrongKey)?;
        let key = aes(file_key)?;
        Ok(Self {
            file,
            key,
            header,
            chunk,
            len,
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
        let start = i * self.chunk;
        if start >= self.len {
            return Err(SealError::Corrupt(i));
        }
        let n = usize::try_from((self.len - start).min(self.chunk))
            .map_err(|_| SealError::Corrupt(i))?;
        let at = i
            .checked_mul(self.chunk + TAG as u64)
            .and_then(|o| o.checked_add(HEADER_LEN as u64))
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
                Aad::from(chunk_aad(&self.header, i)),
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
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; KEY]).expect("key")
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
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
        let mut r = SealedReader::open(&key(7), &out).expect("open");
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
            SealedReader::open(&key(2), &out),
            Err(SealError::WrongKey)
        ));
        let mut raw = std::fs::read(&out).expect("read");
        let i = HEADER_LEN + CHUNK as usize + TAG + 10;
        raw[i] ^= 1;
        std::fs::write(&out, &raw).expect("write");
        let mut r = SealedReader::open(&key(1), &out).expect("header intact");
        let first = r.read_range(0, 100, |_| true);
        assert!(first.is_ok(), "chunk 0 untouched");
        let second = r.read_range(u64::from(CHUNK), u64::from(CHUNK) + 10, |_| true);
        assert!(matches!(second, Err(SealError::Corrupt(1))), "{second:?}");
        // A truncated file fails on its missing chunk, never panics.
        raw.truncate(HEADER_LEN + 100);
        std::fs::write(&out, &raw).expect("write");
        let mut r = SealedReader::open(&key(1), &out).expect("header intact");
        assert!(r.read_range(0, 10, |_| true).is_err());
        assert!(matches!(
            SealedReader::open(&key(1), &plain),
            Err(SealError::NotSealed)
        ));
    }

    /// The header's chunk size and length are not authenticated until a chunk is opened: a
    /// file edited to claim 1-byte chunks and an impossible length is refused when opened, and
    /// a length that is only a lie fails its first chunk — neither overflows the offsets a
    /// range request at the far end would compute.
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
            SealedReader::open(&key(1), &out),
            Err(SealError::NotSealed)
        ));
        edit(1, u64::MAX / 32);
        let mut r = SealedReader::open(&key(1), &out).expect("a possible length");
        let far = r.len() - 10;
        let read = r.read_range(far, far + 5, |_| true);
        assert!(read.is_err(), "{read:?}");
    }

    #[test]
    fn the_master_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/recording.key");
        let plain = dir.path().join("r.webm");
        std::fs::write(&plain, sample(1000)).expect("write");
        let k1 = MasterKey::load_or_create(&path).expect("created");
        seal_file(&k1, &plain, &sealed_path(&plain)).expect("seal");
        let k2 = MasterKey::load_or_create(&path).expect("loaded");
        assert!(SealedReader::open(&k2, &sealed_path(&plain)).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // A key file others may read is refused at start.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(SealError::KeyFile(_))
        ));
    }
}
