//! Lets inbound keyframe requests (PLI, FIR) through to the application.
//!
//! In webrtc-rs 0.21 inbound RTCP ends at the end of the interceptor chain unless an
//! interceptor marks it `DeliverToApplication`; the stock chain marks nothing, so a sender
//! never hears that the SFU or a browser needs a keyframe. This interceptor, placed
//! application-most, marks exactly the keyframe requests, which then arrive on the send
//! track's event stream (`TrackLocal::poll`) where the peer turns them into forced keyframes.
//! Everything else passes through unmarked and ends where it always did.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where the interceptor sits: above every named slot (the jitter buffer is 13 000), so every
/// other interceptor has seen the RTCP first.
pub const KEYFRAME_FORWARDER_SLOT: usize = 14_000;

/// Whether an RTCP packet asks the sender for a keyframe.
#[allow(clippy::borrowed_box)]
pub fn is_keyframe_request(packet: &Box<dyn rtcp::Packet>) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The interceptor; see the module docs.
#[derive(Default)]
pub struct KeyframeRequestForwarder {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl KeyframeRequestForwarder {
    pub fn new() -> KeyframeRequestForwarder {
        KeyframeRequestForwarder::default()
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let (requests, rest): (Vec<_>, Vec<_>) =
                packets.iter().cloned().partition(is_keyframe_request);
            if !requests.is_empty() {
                if !rest.is_empty() {
                    // The rest of a compound packet keeps its usual, unmarked path.
                    self.read_queue.push_back(TaggedPacket {
                        now: msg.now,
                        transport: msg.transport,
                        message: Packet::Rtcp(rest).into(),
                    });
                }
                msg.message.packet = Packet::Rtcp(requests);
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::receiver_report::ReceiverReport;

    fn inbound(packets: Vec<Box<dyn rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: Packet::Rtcp(packets).into(),
        }
    }

    fn drain(forwarder: &mut KeyframeRequestForwarder) -> Vec<TaggedPacket> {
        std::iter::from_fn(|| forwarder.poll_read()).collect()
    }

    #[test]
    fn keyframe_requests_are_marked_for_the_application() {
        let mut forwarder = KeyframeRequestForwarder::new();
        let pli: Box<dyn rtcp::Packet> = Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        });
        forwarder.handle_read(inbound(vec![pli])).expect("read");
        let out = drain(&mut forwarder);
        assert_eq!(out.len(), 1);
        assert!(out[0].message.has(&Attribute::DeliverToApplication));
    }

    #[test]
    fn compound_packets_are_split_and_only_the_request_is_marked() {
        let mut forwarder = KeyframeRequestForwarder::new();
        let rr: Box<dyn rtcp::Packet> = Box::new(ReceiverReport::default());
        let fir: Box<dyn rtcp::Packet> = Box::new(FullIntraRequest::default());
        forwarder.handle_read(inbound(vec![rr, fir])).expect("read");
        let out = drain(&mut forwarder);
        assert_eq!(out.len(), 2);
        let marked: Vec<bool> = out
            .iter()
            .map(|p| p.message.has(&Attribute::DeliverToApplication))
            .collect();
        assert_eq!(marked, [false, true]);
        let Packet::Rtcp(requests) = &out[1].message.packet else {
            panic!("RTCP expected");
        };
        assert!(requests.iter().all(is_keyframe_request));
    }

    #[test]
    fn other_rtcp_and_outbound_traffic_pass_unchanged() {
        let mut forwarder = KeyframeRequestForwarder::new();
        let rr: Box<dyn rtcp::Packet> = Box::new(ReceiverReport::default());
        forwarder.handle_read(inbound(vec![rr])).expect("read");
        let out = drain(&mut forwarder);
        assert_eq!(out.len(), 1);
        assert!(!out[0].message.has(&Attribute::DeliverToApplication));
        let rr: Box<dyn rtcp::Packet> = Box::new(ReceiverReport::default());
        forwarder.handle_write(inbound(vec![rr])).expect("write");
        assert!(forwarder.poll_write().is_some());
        assert!(forwarder.poll_write().is_none());
    }
}
