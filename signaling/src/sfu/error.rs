use super::{PeerId, Role};

/// Everything the SFU can refuse. Bad input from the network or from a client's SDP ends up
/// here (and in a metrics counter), never in a panic.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("{0} is already added")]
    PeerExists(PeerId),
    #[error("{0} is not known")]
    UnknownPeer(PeerId),
    #[error("too many peers (limit {0})")]
    TooManyPeers(usize),
    #[error("offer is not valid SDP: {0}")]
    BadSdp(String),
    #[error("offer was refused: {0}")]
    OfferRefused(String),
    #[error("offer does not follow the media layout: {0}")]
    LayoutMismatch(String),
    #[error("{peer} has role {actual:?}, expected {expected:?}")]
    WrongRole {
        peer: PeerId,
        expected: Role,
        actual: Role,
    },
    #[error("{0} is already connected to {1}")]
    AlreadyConnected(PeerId, PeerId),
    #[error("{0} and {1} are not connected to each other")]
    NotConnected(PeerId, PeerId),
    #[error("datagram is not STUN, DTLS, RTP or RTCP")]
    MalformedDatagram,
    #[error("no peer accepts the datagram")]
    NoPeerForDatagram,
    #[error("the SFU driver has stopped")]
    DriverGone,
    #[error("the SFU driver did not answer in time")]
    DriverTimeout,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}
