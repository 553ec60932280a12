//! The agent's view of its WebRTC connection's state, independent of webrtc-rs's types; shared
//! by the peer, which sets it, and the statistics, which report it.

use webrtc::peer_connection::RTCPeerConnectionState;

/// Our view of the connection, independent of webrtc-rs's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    New,
    Connecting,
    Connected,
    /// Connectivity lost; ICE may still recover by itself.
    Disconnected,
    /// ICE gave up; needs an ICE restart or a new connection.
    Failed,
    Closed,
}

impl From<RTCPeerConnectionState> for ConnectionState {
    fn from(state: RTCPeerConnectionState) -> ConnectionState {
        match state {
            RTCPeerConnectionState::Connecting => ConnectionState::Connecting,
            RTCPeerConnectionState::Connected => ConnectionState::Connected,
            RTCPeerConnectionState::Disconnected => ConnectionState::Disconnected,
            RTCPeerConnectionState::Failed => ConnectionState::Failed,
            RTCPeerConnectionState::Closed => ConnectionState::Closed,
            _ => ConnectionState::New,
        }
    }
}
