//! Lets inbound keyframe requests (PLI, FIR) through to the application.
//!
//! In webrtc-rs 0.21 inbound RTCP ends at the end of the interceptor chain unless an
//! interceptor marks it `DeliverToApplication`; the stock chain marks nothing, so a sender
//! never hears that the SFU or a browser needs a keyframe. This interceptor, placed
//! application-most, marks exactly the keyframe requests, which then arrive on the send
//! track's event stream (`TrackLocal::poll`) where the peer turns them into forced keyframes.
//! Everything else passes through unmarked and ends where it always did.
//!
//! It also notices the path coming back after an outage: while the kiosk sends media the relay
//! returns transport-wide feedback every few tens of milliseconds, so feedback that had been
//! flowing and then falls silent for [`OUTAGE_SILENCE`] means nothing crossed the path. When
//! feedback resumes, the interceptor hands the application one keyframe request per video
//! stream, as if the relay had asked. Without it the picture came back only when the clerk's
//! Chromium gave up waiting for the frames lost in the outage and asked for a keyframe itself
//! (about 3 s after the path returned, plus the relay's and the encoder's part).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use super::pacer::SendCounters;

/// Where the interceptor sits: above every named slot (the jitter buffer is 13 000), so every
/// other interceptor has seen the RTCP first.
pub const KEYFRAME_FORWARDER_SLOT: usize = 14_000;

/// Transport-wide feedback silent this long, after it had been flowing, is an outage.
pub const OUTAGE_SILENCE: Duration = Duration::from_millis(1_000);
/// Feedback is flowing when consecutive reports are closer than this.
const FLOWING_GAP: Duration = Duration::from_millis(500);

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
    /// Where inbound NACKs and keyframe requests are counted, if anywhere.
    counters: Option<Arc<SendCounters>>,
    /// Our video streams (a keyframe request after an outage goes to each).
    video_ssrcs: Vec<u32>,
    last_feedback: Option<Instant>,
    feedback_flowing: bool,
}

impl KeyframeRequestForwarder {
    pub fn new() -> KeyframeRequestForwarder {
        KeyframeRequestForwarder::default()
    }

    /// Also counts every inbound NACK, PLI and FIR into `counters` (webrtc-rs 0.21 counts
    /// no NACK for a stream without RTX).
    pub fn counting(counters: Arc<SendCounters>) -> KeyframeRequestForwarder {
        KeyframeRequestForwarder {
            counters: Some(counters),
            ..KeyframeRequestForwarder::default()
        }
    }
}

impl KeyframeRequestForwarder {
    /// Transport-wide feedback arrived at `now`: after an outage, ask for keyframes.
    fn on_feedback(&mut self, now: Instant) {
        if let Some(last) = self.last_feedback {
            let gap = now.saturating_duration_since(last);
            if gap >= OUTAGE_SILENCE && self.feedback_flowing {
                if let Some(counters) = &self.counters {
                    counters.path_returns.fetch_add(1, Ordering::Relaxed);
                }
                for &media_ssrc in &self.video_ssrcs {
                    let pli: Box<dyn rtcp::Packet> = Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc,
                    });
                    let mut request = TaggedPacket {
                        now,
                        transport: Default::default(),
                        message: Packet::Rtcp(vec![pli]).into(),
                    };
                    request.message.add(Attribute::DeliverToApplication);
                    self.read_queue.push_back(request);
                }
            }
            self.feedback_flowing = gap < FLOWING_GAP;
        }
        self.last_feedback = Some(now);
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
            if let Some(counters) = &self.counters {
                packets.iter().for_each(|p| counters.count_inbound(p));
            }
            if packets.iter().any(|p| p.as_any().is::<TransportLayerCc>()) {
                self.on_feedback(msg.now);
            }
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
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("video/")
            && !self.video_ssrcs.contains(&info.ssrc)
        {
            self.video_ssrcs.push(info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.video_ssrcs.retain(|&s| s != info.ssrc);
    }
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

    fn feedback_at(now: Instant) -> TaggedPacket {
        let twcc: Box<dyn rtcp::Packet> = Box::new(TransportLayerCc::default());
        TaggedPacket {
            now,
            transport: Default::default(),
            message: Packet::Rtcp(vec![twcc]).into(),
        }
    }

    fn keyframe_requests_for(out: &[TaggedPacket]) -> Vec<u32> {
        out.iter()
            .filter(|p| p.message.has(&Attribute::DeliverToApplication))
            .flat_map(|p| match &p.message.packet {
                Packet::Rtcp(packets) => packets
                    .iter()
                    .filter_map(|p| p.as_any().downcast_ref::<PictureLossIndication>())
                    .map(|pli| pli.media_ssrc)
                    .collect(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn feedback_returning_after_an_outage_asks_each_video_stream_for_a_keyframe() {
        let counters = Arc::new(SendCounters::default());
        let mut forwarder = KeyframeRequestForwarder::counting(Arc::clone(&counters));
        for (ssrc, mime) in [(7, "video/VP8"), (8, "audio/opus"), (9, "video/VP8")] {
            forwarder.bind_local_stream(&StreamInfo {
                ssrc,
                mime_type: mime.into(),
                ..Default::default()
            });
        }
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Feedback every 100 ms: nothing asked.
        for i in 0..10 {
            forwarder
                .handle_read(feedback_at(t0 + ms(100 * i)))
                .expect("read");
        }
        assert!(keyframe_requests_for(&drain(&mut forwarder)).is_empty());
        // Three seconds of silence, then feedback again: one request per video stream.
        forwarder
            .handle_read(feedback_at(t0 + ms(3_900)))
            .expect("read");
        assert_eq!(keyframe_requests_for(&drain(&mut forwarder)), [7, 9]);
        assert_eq!(counters.path_returns.load(Ordering::Relaxed), 1);
        // Right after the return feedback is not yet flowing again: a second long gap (an
        // idle link's sparse reports) asks nothing.
        forwarder
            .handle_read(feedback_at(t0 + ms(6_000)))
            .expect("read");
        assert!(keyframe_requests_for(&drain(&mut forwarder)).is_empty());
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
