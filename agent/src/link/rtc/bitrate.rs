//! Splitting the congestion-control estimate between the encoders. Pure: no clock, no I/O.
//!
//! GCC estimates one rate for the whole connection. The microphone takes a fixed share (Opus
//! at a constant rate is cheap and speech must not starve); the document preview, when sent,
//! takes a modest share; the camera takes the rest. A margin stays unallocated for RTP and
//! SRTP overhead, retransmissions and keyframe overshoot: the estimate is what the path
//! carries, and everything sent above it becomes queueing delay on the path (the pacer
//! releases up to 2.5 × the estimate to smooth bursts, so it no longer holds the excess).

use super::RtcError;

/// Bounds for the estimate and for each encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateLimits {
    /// Where the estimator starts before any feedback.
    pub start_bps: u32,
    /// The estimator's floor and ceiling for the whole connection.
    pub min_bps: u32,
    pub max_bps: u32,
    pub camera_min_bps: u32,
    pub camera_max_bps: u32,
    pub document_min_bps: u32,
    pub document_max_bps: u32,
    /// Reserved for the microphone (Opus payload plus packet overhead).
    pub audio_bps: u32,
}

impl Default for BitrateLimits {
    fn default() -> BitrateLimits {
        BitrateLimits {
            start_bps: 1_000_000,
            min_bps: 150_000,
            max_bps: 2_500_000,
            camera_min_bps: 100_000,
            camera_max_bps: 1_500_000,
            document_min_bps: 50_000,
            document_max_bps: 400_000,
            audio_bps: 45_000,
        }
    }
}

impl BitrateLimits {
    pub(crate) fn validate(&self) -> Result<(), RtcError> {
        let ordered = self.min_bps <= self.start_bps
            && self.start_bps <= self.max_bps
            && self.camera_min_bps <= self.camera_max_bps
            && self.document_min_bps <= self.document_max_bps
            && self.min_bps >= 30_000;
        if ordered {
            Ok(())
        } else {
            Err(RtcError::Config(format!(
                "bitrate limits out of order or below 30 kbit/s: {self:?}"
            )))
        }
    }
}

/// Encoder targets for one estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateAllocation {
    pub camera_bps: u32,
    pub document_bps: u32,
}

/// Share of the estimate handed to encoders; the rest is headroom (see module docs).
const USABLE_SHARE: f64 = 0.85;
/// The document preview's share of what video gets, when both are sent.
const DOCUMENT_SHARE: f64 = 0.2;

/// Splits `estimate_bps` between the camera and the document preview.
///
/// An encoder that is not sending still gets a value (its minimum), so resuming it starts
/// conservatively. A nonsensical estimate (NaN, negative) counts as the floor.
pub fn allocate_bitrate(
    estimate_bps: f64,
    limits: &BitrateLimits,
    camera_sending: bool,
    document_sending: bool,
    audio_sending: bool,
) -> BitrateAllocation {
    let estimate = if estimate_bps.is_finite() && estimate_bps > 0.0 {
        estimate_bps.clamp(f64::from(limits.min_bps), f64::from(limits.max_bps))
    } else {
        f64::from(limits.min_bps)
    };
    let audio = if audio_sending {
        f64::from(limits.audio_bps)
    } else {
        0.0
    };
    let video = (estimate * USABLE_SHARE - audio).max(0.0);
    let clamp = |v: f64, min: u32, max: u32| v.clamp(f64::from(min), f64::from(max)) as u32;

    match (camera_sending, document_sending) {
        (true, true) => {
            let document = clamp(
                video * DOCUMENT_SHARE,
                limits.document_min_bps,
                limits.document_max_bps,
            );
            let camera = clamp(
                video - f64::from(document),
                limits.camera_min_bps,
                limits.camera_max_bps,
            );
            BitrateAllocation {
                camera_bps: camera,
                document_bps: document,
            }
        }
        (true, false) => BitrateAllocation {
            camera_bps: clamp(video, limits.camera_min_bps, limits.camera_max_bps),
            document_bps: limits.document_min_bps,
        },
        (false, true) => BitrateAllocation {
            camera_bps: limits.camera_min_bps,
            document_bps: clamp(video, limits.document_min_bps, limits.document_max_bps),
        },
        (false, false) => BitrateAllocation {
            camera_bps: limits.camera_min_bps,
            document_bps: limits.document_min_bps,
        },
    }
}

/// Whether a new target differs enough from the current one to be worth reconfiguring the
/// encoder (each change resets part of libvpx's rate control).
pub(crate) fn worth_changing(current: u32, target: u32) -> bool {
    let (current, target) = (f64::from(current), f64::from(target));
    current <= 0.0 || ((target - current) / current).abs() >= 0.05
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BitrateLimits = BitrateLimits {
        start_bps: 1_000_000,
        min_bps: 150_000,
        max_bps: 2_500_000,
        camera_min_bps: 100_000,
        camera_max_bps: 1_500_000,
        document_min_bps: 50_000,
        document_max_bps: 400_000,
        audio_bps: 45_000,
    };

    #[test]
    fn camera_alone_gets_the_usable_share_minus_audio() {
        let a = allocate_bitrate(1_000_000.0, &LIMITS, true, false, true);
        assert_eq!(a.camera_bps, 805_000);
    }

    #[test]
    fn both_videos_split_and_stay_within_the_estimate() {
        let a = allocate_bitrate(2_000_000.0, &LIMITS, true, true, true);
        assert_eq!(a.document_bps, 331_000);
        assert_eq!(a.camera_bps, 1_324_000);
        assert!(f64::from(a.camera_bps + a.document_bps + LIMITS.audio_bps) <= 2_000_000.0);
    }

    #[test]
    fn high_estimates_hit_the_encoder_ceilings() {
        let a = allocate_bitrate(50_000_000.0, &LIMITS, true, true, true);
        assert_eq!(a.camera_bps, LIMITS.camera_max_bps);
        assert_eq!(a.document_bps, LIMITS.document_max_bps);
    }

    #[test]
    fn low_or_nonsense_estimates_give_the_floors() {
        for estimate in [0.0, -5.0, f64::NAN, f64::INFINITY, 10_000.0] {
            let a = allocate_bitrate(estimate, &LIMITS, true, true, true);
            assert_eq!(a.camera_bps, LIMITS.camera_min_bps, "estimate {estimate}");
            assert_eq!(
                a.document_bps, LIMITS.document_min_bps,
                "estimate {estimate}"
            );
        }
    }

    #[test]
    fn idle_encoders_sit_at_their_minimum() {
        let a = allocate_bitrate(2_000_000.0, &LIMITS, false, true, false);
        assert_eq!(a.camera_bps, LIMITS.camera_min_bps);
        assert_eq!(a.document_bps, LIMITS.document_max_bps);
    }

    #[test]
    fn small_changes_are_not_worth_a_reconfigure() {
        assert!(!worth_changing(1_000_000, 1_030_000));
        assert!(worth_changing(1_000_000, 1_060_000));
        assert!(worth_changing(1_000_000, 900_000));
        assert!(worth_changing(0, 1));
    }

    #[test]
    fn limits_validate_ordering() {
        assert!(LIMITS.validate().is_ok());
        let bad = BitrateLimits {
            start_bps: 10_000_000,
            ..LIMITS
        };
        assert!(bad.validate().is_err());
    }
}
