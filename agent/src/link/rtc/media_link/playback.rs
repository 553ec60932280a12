//! The clerk's side of the call as the kiosk plays it: the clerk's voice to the speaker and the
//! clerk's video decoded for the kiosk screen.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn play_clerk_audio(inner: std::sync::Weak<Inner>, mut track: RemoteTrack) {
    while let Some(packet) = track.next_rtp().await {
        let Some(inner) = inner.upgrade() else { break };
        let Ok(bytes) = packet.marshal() else {
            continue;
        };
        // Errors are counted by the pipeline (malformed, or pipeline stopped).
        let _ = inner.playback.push_rtp(bytes.freeze());
    }
}

/// Forwards the clerk's video: to the kiosk screen as RTP (with `screen_taps`) and/or to a
/// decoder (with `decode_clerk_video`) built at the first packet (codec and payload type come
/// from the stream itself) and rebuilt if the payload type changes. The track's PLI path is
/// published on the link, so the screen can ask the relay for a keyframe.
pub(super) async fn show_clerk_video(
    mut track: RemoteTrack,
    inner: std::sync::Weak<Inner>,
    holder: Arc<StdMutex<Option<RtpVideoReceiver>>>,
    latency: Duration,
    decode: bool,
    out: FrameSender<DecodedFrame>,
    rtp_out: Option<FrameSender<ClerkVideoPacket>>,
) {
    let mut active_payload_type: Option<u8> = None;
    let mut codec = VideoCodec::Vp8;
    let mut pli_task: Option<JoinHandle<()>> = None;
    let mut published_ssrc: Option<u32> = None;
    while let Some(packet) = track.next_rtp().await {
        if published_ssrc != track.ssrc()
            && let Some(ssrc) = track.ssrc()
        {
            let requester = track.keyframe_requester();
            if let Some(inner) = inner.upgrade() {
                *inner
                    .clerk_keyframes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((requester.clone(), ssrc));
            }
            // Start with a keyframe: the relay may switch us in mid-stream.
            let _ = requester.request_keyframe(ssrc).await;
            published_ssrc = Some(ssrc);
        }
        let payload_type = packet.header.payload_type;
        if active_payload_type != Some(payload_type) {
            codec = match track.video_codec().await {
                Some(codec) => codec,
                None if payload_type == codecs::H264_PAYLOAD_TYPE => VideoCodec::H264,
                None => VideoCodec::Vp8,
            };
            active_payload_type = Some(payload_type);
            if decode {
                if let Some(task) = pli_task.take() {
                    task.abort();
                }
                match start_clerk_decoder(&track, codec, payload_type, latency, out.clone()) {
                    Ok((receiver, task)) => {
                        pli_task = task;
                        *holder.lock().unwrap_or_else(PoisonError::into_inner) = Some(receiver);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "clerk video decoder could not be started");
                        *holder.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    }
                }
            }
        }
        if decode && let Ok(bytes) = packet.marshal() {
            let guard = holder.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(receiver) = guard.as_ref() {
                let _ = receiver.push_rtp(Bytes::from(bytes));
            }
        }
        if let Some(rtp_out) = &rtp_out {
            // Oldest dropped (and counted by the channel) when the screen is behind.
            let _ = rtp_out.push(ClerkVideoPacket { codec, packet });
        }
    }
    if let Some(task) = pli_task {
        task.abort();
    }
}

/// A running decoder for the clerk's video, and the task turning its keyframe needs into PLIs.
fn start_clerk_decoder(
    track: &RemoteTrack,
    codec: VideoCodec,
    payload_type: u8,
    latency: Duration,
    out: FrameSender<DecodedFrame>,
) -> Result<(RtpVideoReceiver, Option<JoinHandle<()>>), MediaError> {
    let mut receiver =
        RtpVideoReceiver::with_output("clerk-video", codec, payload_type, latency, out)?;
    receiver.start()?;
    let task = match (receiver.keyframe_requests(), track.ssrc()) {
        (Some(mut needs), Some(ssrc)) => {
            let requester = track.keyframe_requester();
            Some(tokio::spawn(async move {
                while needs.recv().await.is_some() {
                    if requester.request_keyframe(ssrc).await.is_err() {
                        break;
                    }
                }
            }))
        }
        _ => None,
    };
    Ok((receiver, task))
}
