//! Selective forwarding of media between kiosk and clerk peers.
