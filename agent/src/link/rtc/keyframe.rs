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
