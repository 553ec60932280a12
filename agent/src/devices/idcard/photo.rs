//! The card photo is 1024 bytes of wavelet-compressed "WLT" data. Decoding it needs the
//! licensed vendor library (`libwlt.so`/`wltrs.dll` in the public SDKs), which we neither ship
//! nor reimplement. A site that has a licence plugs a decoder in through [`PhotoDecoder`];
//! without one, [`NoPhotoDecoder`] answers [`PhotoError::NotInstalled`] and the raw WLT bytes
//! are what gets uploaded (encrypted) for the centre to decode.

use protocol::Pii;

/// A decoded photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPhoto {
    /// The image file bytes.
    pub image: Pii<Vec<u8>>,
    /// MIME type of `image`, e.g. `image/bmp`.
    pub mime: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    #[error(
        "未安装身份证照片解码库 / no WLT photo decoder is installed (it needs the reader vendor's licensed library)"
    )]
    NotInstalled,
    #[error("身份证照片解码失败 / the WLT photo did not decode: {0}")]
    Decode(String),
}

/// A WLT photo decoder plug-in. Implementations wrap the vendor's library; they must not
/// log or keep the image.
pub trait PhotoDecoder: Send + Sync {
    /// Name for the self-test report, e.g. the library and its version.
    fn name(&self) -> &str;
    fn decode(&self, wlt: &[u8]) -> Result<DecodedPhoto, PhotoError>;
}

/// The decoder used when none is installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPhotoDecoder;

impl PhotoDecoder for NoPhotoDecoder {
    fn name(&self) -> &str {
        "none"
    }
    fn decode(&self, _wlt: &[u8]) -> Result<DecodedPhoto, PhotoError> {
        Err(PhotoError::NotInstalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_plugin_decoding_says_not_installed() {
        let decoder: &dyn PhotoDecoder = &NoPhotoDecoder;
        assert_eq!(decoder.decode(&[0; 1024]), Err(PhotoError::NotInstalled));
        assert!(PhotoError::NotInstalled.to_string().contains("未安装"));
    }
}
