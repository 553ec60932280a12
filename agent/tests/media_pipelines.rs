//! The agent's GStreamer pipelines with test sources, headless: no camera, no display, no
//! sound card. Every wait is bounded by a count and a timeout; nothing sleeps to synchronise.

use std::time::{Duration, SystemTime};

use agent::link::rtc::RtpPacketizer;
use agent::media::timecode::{self, TimeCode};
use agent::media::{
    AudioOutput, AudioSendConfig, AudioSendPipeline, AudioSource, DecodedFrame, EncodedFrame,
    FrameReceiver, RtpAudioPlayback, RtpVideoReceiver, TestWave, VideoCodec, VideoSendConfig,
    VideoSendPipeline, VideoSource,
};
use bytes::Bytes;
use rtc::shared::marshal::Marshal;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

/// Tests that encode or decode video in real time take turns: on a two-core machine, several
/// at once starve each other's encoders, and frame-rate assertions would measure the
/// contention instead of the pipeline.
static REALTIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn small_camera(codec: VideoCodec) -> VideoSendConfig {
    VideoSendConfig {
        codec,
        width: 320,
        height: 240,
        fps: 30,
        bitrate_bps: 400_000,
        ..VideoSendConfig::camera(VideoSource::Test)
    }
}

async fn collect<T>(rx: &mut FrameReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    let got = timeout(WAIT, async {
        while out.len() < n {
            match rx.recv().await {
                Some(item) => out.push(item),
                None => break,
            }
        }
    })
    .await;
    assert!(got.is_ok(), "timed out after {} of {n} items", out.len());
    out
}

/// Checks the frames follow the configured rate: every PTS gap is a whole number of frame
/// periods (a gap of two means the leaky queue in front of the encoder dropped one, which a
/// machine busy with other builds can cause), and most gaps are exactly one period.
fn assert_frame_rate(frames: &[EncodedFrame], fps: u32, label: &str) {
    let period = Duration::from_secs(1).as_secs_f64() / f64::from(fps);
    let gaps: Vec<f64> = frames
        .windows(2)
        .map(|w| (w[1].pts.expect("pts") - w[0].pts.expect("pts")).as_secs_f64())
        .collect();
    for gap in &gaps {
        let periods = gap / period;
        assert!(
            periods >= 0.9 && (periods - periods.round()).abs() < 0.15,
            "{label}: gap {gap:.4}s is not a whole number of {period:.4}s periods"
        );
    }
    let single = gaps
        .iter()
        .filter(|g| (**g / period - 1.0).abs() < 0.15)
        .count();
    assert!(
        single * 2 > gaps.len(),
        "{label}: only {single} of {} gaps are one frame period",
        gaps.len()
    );
}

#[tokio::test]
async fn vp8_camera_encodes_at_the_configured_rate_and_starts_with_a_keyframe() {
    let _turn = REALTIME.lock().await;
    let mut camera = VideoSendPipeline::new(small_camera(VideoCodec::Vp8)).expect("build");
    let mut frames = camera.take_frames().expect("frames");
    camera.start().expect("start");
    let started = std::time::Instant::now();
    let got = collect(&mut frames, 60).await;
    let wall = started.elapsed();

    assert!(got[0].keyframe, "the stream opens with a keyframe");
    assert_frame_rate(&got, 30, "vp8");
    // Live source: 60 frames take about two seconds of wall time, not less.
    assert!(wall >= Duration::from_millis(1700), "60 frames in {wall:?}");
    let stats = camera.stats();
    assert!(stats.frames_encoded >= 60);
    eprintln!("vp8 320x240@30: {stats:?}");
    assert_eq!(stats.stamp_failures, 0);
    camera.check().expect("pipeline healthy");
}

#[tokio::test]
async fn h264_alternative_encodes_too() {
    let _turn = REALTIME.lock().await;
    let mut camera = VideoSendPipeline::new(small_camera(VideoCodec::H264)).expect("build");
    let mut frames = camera.take_frames().expect("frames");
    camera.start().expect("start");
    let got = collect(&mut frames, 30).await;
    assert!(got[0].keyframe);
    // Annex B byte stream with SPS in front of the first IDR.
    let first = &got[0].data;
    assert!(first.starts_with(&[0, 0, 0, 1]) || first.starts_with(&[0, 0, 1]));
    assert!(
        first
            .windows(5)
            .any(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 7),
        "SPS present in the keyframe"
    );
    assert_frame_rate(&got, 30, "h264");
}

#[tokio::test]
async fn a_keyframe_request_yields_a_keyframe() {
    let _turn = REALTIME.lock().await;
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let config = VideoSendConfig {
            // Long enough that any keyframe after the first is the requested one.
            keyframe_interval_frames: 3000,
            min_keyframe_spacing: Duration::ZERO,
            ..small_camera(codec)
        };
        let mut camera = VideoSendPipeline::new(config).expect("build");
        let mut frames = camera.take_frames().expect("frames");
        camera.start().expect("start");
        let warmup = collect(&mut frames, 10).await;
        assert_eq!(warmup.iter().filter(|f| f.keyframe).count(), 1, "{codec:?}");

        assert!(camera.force_keyframe(), "request sent");
        let found = timeout(WAIT, async {
            let mut seen = 0;
            while let Some(frame) = frames.recv().await {
                seen += 1;
                if frame.keyframe {
                    return Some(seen);
                }
            }
            None
        })
        .await
        .expect("keyframe within the timeout")
        .expect("stream still running");
        // The encoder applies a request on one of the next few frames (queued raw frames
        // ahead of it are already committed).
        assert!(
            found <= 5,
            "{codec:?}: keyframe came {found} frames after the request"
        );
        assert_eq!(camera.stats().keyframes_forced, 1);
    }
}

#[tokio::test]
async fn keyframe_requests_close_together_are_coalesced() {
    let config = VideoSendConfig {
        min_keyframe_spacing: Duration::from_secs(60),
        ..small_camera(VideoCodec::Vp8)
    };
    let camera = VideoSendPipeline::new(config).expect("build");
    camera.start().expect("start");
    assert!(camera.force_keyframe());
    assert!(!camera.force_keyframe());
    let stats = camera.stats();
    assert_eq!(
        (stats.keyframes_forced, stats.keyframe_requests_coalesced),
        (1, 1)
    );
}

/// Encodes with the camera pipeline, packetizes as the peer would, decodes with the receive
/// pipeline, and reads the capture time back out of the decoded pictures.
async fn time_code_round_trip(codec: VideoCodec, width: u32, height: u32, bitrate_bps: u32) {
    let _turn = REALTIME.lock().await;
    let config = VideoSendConfig {
        width,
        height,
        bitrate_bps,
        ..small_camera(codec)
    };
    let mut camera = VideoSendPipeline::new(config).expect("build camera");
    let mut encoded = camera.take_frames().expect("frames");
    let payload_type = match codec {
        VideoCodec::Vp8 => 96,
        VideoCodec::H264 => 102,
    };
    let mut receiver = RtpVideoReceiver::new(
        "test-decoder",
        codec,
        payload_type,
        Duration::from_millis(20),
        64,
    )
    .expect("build decoder");
    let mut decoded = receiver.take_frames().expect("decoded frames");
    // The decoder's keyframe needs go straight to the encoder, as a PLI would.
    let mut needs = receiver.keyframe_requests().expect("keyframe requests");
    let control = camera.control();
    let pli = tokio::spawn(async move {
        let mut asked = 0u32;
        while needs.recv().await.is_some() {
            control.force_keyframe();
            asked += 1;
        }
        asked
    });
    receiver.start().expect("start decoder");
    camera.start().expect("start camera");

    let stream = match codec {
        VideoCodec::Vp8 => agent::link::rtc::codecs::video_payload_type(VideoCodec::Vp8),
        VideoCodec::H264 => agent::link::rtc::codecs::video_payload_type(VideoCodec::H264),
    };
    assert_eq!(stream, payload_type);
    let mut packetizer = RtpPacketizer::new(
        agent::link::rtc::StreamCodec::Video(codec),
        0x1234_5678,
        payload_type,
        100,
        5000,
    );
    let feeder = tokio::spawn(async move {
        let mut sent = 0u32;
        while let Some(frame) = encoded.recv().await {
            for packet in packetizer.packetize(&frame).expect("packetize") {
                let bytes = Bytes::from(packet.marshal().expect("marshal"));
                receiver.push_rtp(bytes).expect("push");
            }
            sent += 1;
            if sent == 300 {
                break;
            }
        }
        receiver
    });

    let frames: Vec<DecodedFrame> = collect(&mut decoded, 40).await;
    drop(camera);
    let receiver = feeder.await.expect("feeder");
    let stats = receiver.stats();
    assert!(stats.frames_decoded >= 40);
    drop(receiver);
    let asked = timeout(WAIT, pli)
        .await
        .expect("pli task ends")
        .expect("pli task");
    assert!(
        asked <= 2,
        "{codec:?}: decoder asked for {asked} keyframes on a lossless path"
    );
    let mut read = 0;
    let mut previous: Option<TimeCode> = None;
    for frame in &frames {
        assert_eq!((frame.width, frame.height), (width, height));
        let Some(code) = timecode::read_frame(frame) else {
            continue;
        };
        read += 1;
        let age = code.age_at(frame.decoded_at).expect("stamp is in the past");
        assert!(
            age < Duration::from_secs(2),
            "{codec:?}: implausible age {age:?}"
        );
        if let Some(prev) = previous {
            assert!(code > prev, "capture times increase");
        }
        previous = Some(code);
    }
    // Every decoded frame should carry a readable stamp; allow the odd damaged one.
    assert!(
        read * 10 >= frames.len() * 9,
        "{codec:?} {width}x{height}: read {read} of {} stamps",
        frames.len()
    );
    let now = TimeCode::from_system_time(SystemTime::now());
    assert!(previous.is_some_and(|p| p <= now));
}

#[tokio::test]
async fn time_code_survives_vp8_encode_and_decode() {
    time_code_round_trip(VideoCodec::Vp8, 320, 240, 300_000).await;
}

#[tokio::test]
async fn time_code_survives_vp8_at_720p_and_low_bitrate() {
    time_code_round_trip(VideoCodec::Vp8, 1280, 720, 300_000).await;
}

#[tokio::test]
async fn time_code_survives_h264_encode_and_decode() {
    time_code_round_trip(VideoCodec::H264, 320, 240, 300_000).await;
}

#[tokio::test]
async fn microphone_encodes_20ms_opus_with_echo_cancellation_against_the_speaker() {
    let _turn = REALTIME.lock().await;
    // The speaker pipeline (null output) provides the echo canceller's far-end probe.
    let playback =
        RtpAudioPlayback::new(&AudioOutput::Null, 111, Duration::from_millis(40)).expect("speaker");
    playback.start().expect("start speaker");
    let config = AudioSendConfig::new(
        AudioSource::Test {
            wave: TestWave::Sine,
            frequency_hz: 440.0,
        },
        Some(playback.echo_probe_name().to_owned()),
    );
    let mut mic = AudioSendPipeline::new(config).expect("build mic");
    let mut packets = mic.take_frames().expect("packets");
    mic.start().expect("start mic");
    let started = std::time::Instant::now();
    let got = collect(&mut packets, 50).await;
    assert!(started.elapsed() >= Duration::from_millis(800), "live pace");
    // The first packet is shorter by the encoder's lookahead; the rest are 20 ms apart.
    for pair in got[1..].windows(2) {
        let (a, b) = (pair[0].pts.expect("pts"), pair[1].pts.expect("pts"));
        assert_eq!(b - a, Duration::from_millis(20), "20 ms frames");
    }
    assert!(got.iter().all(|p| !p.data.is_empty() && p.data.len() < 400));

    // Loop the microphone's packets into the speaker: they decode and reach the probe.
    let mut packetizer = RtpPacketizer::new(agent::link::rtc::StreamCodec::Opus, 42, 111, 0, 0);
    for packet in &got {
        for rtp in packetizer.packetize(packet).expect("packetize") {
            playback
                .push_rtp(Bytes::from(rtp.marshal().expect("marshal")))
                .expect("push");
        }
    }
    let mut played = playback.played();
    timeout(WAIT, played.wait_for(|&n| n >= 20))
        .await
        .expect("speaker played the looped packets")
        .expect("speaker pipeline alive");
    let played = playback.stats();
    assert_eq!(played.packets_rejected, 0);
    mic.check().expect("mic healthy");
    playback.check().expect("speaker healthy");
}

#[tokio::test]
async fn malformed_rtp_is_rejected_not_fatal() {
    let playback =
        RtpAudioPlayback::new(&AudioOutput::Null, 111, Duration::from_millis(40)).expect("speaker");
    playback.start().expect("start");
    assert!(playback.push_rtp(Bytes::from_static(&[1, 2, 3])).is_err());
    assert!(playback.push_rtp(Bytes::from_static(&[0u8; 20])).is_err());
    assert_eq!(playback.stats().packets_rejected, 2);
    playback.check().expect("still healthy");
}

#[tokio::test]
async fn a_missing_camera_is_an_error_not_a_panic() {
    let config = VideoSendConfig {
        source: VideoSource::V4l2 {
            device: "/dev/video-does-not-exist".into(),
            format: agent::media::V4l2Format::Raw,
        },
        ..small_camera(VideoCodec::Vp8)
    };
    let camera = VideoSendPipeline::new(config).expect("building does not open the device");
    let mut health = camera.health();
    let started = camera.start();
    if started.is_ok() {
        let failed = timeout(WAIT, async {
            loop {
                if matches!(
                    *health.borrow_and_update(),
                    agent::media::PipelineHealth::Failed(_)
                ) {
                    return;
                }
                if health.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(failed.is_ok(), "failure reported on the health channel");
    }
    assert!(camera.check().is_err() || started.is_err());
}

#[test]
fn invalid_sizes_are_configuration_errors() {
    let config = VideoSendConfig {
        width: 321,
        ..small_camera(VideoCodec::Vp8)
    };
    assert!(matches!(
        VideoSendPipeline::new(config),
        Err(agent::media::MediaError::Config(_))
    ));
}
