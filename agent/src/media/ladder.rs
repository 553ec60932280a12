//! Which resolution the camera is encoded at, from the bitrate it is given. Pure: the caller
//! hands in the time and the camera's target; nothing here touches a pipeline.
//!
//! On a poor line the picture should get smaller before it gets choppy: a resident holding an
//! ID card to the camera is better served by 15 sharp-enough frames a second at 360p than by
//! two frames of 720p. libvpx at a fixed resolution keeps its quality only by dropping frames
//! once the target falls far below what that size needs, so the ladder steps down
//! (720p → 540p → 360p → 180p) at bitrates where the frame rate still holds, and back up when
//! the target has stayed comfortably above the next rung's need for a while.
//!
//! Hysteresis, both ways: stepping down waits for the target to stay below the rung's floor
//! for [`LadderConfig::down_after`] (a keyframe's short dip must not shrink the picture), or
//! goes at once when the target falls far below it; stepping up needs the target at
//! [`LadderConfig::up_margin`] × the higher rung's floor for [`LadderConfig::up_after`]. Each
//! change costs a keyframe, so flapping would cost more than it saves.

use std::time::{Duration, Instant};

/// One size of the camera picture (16:9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rung {
    P180,
    P360,
    P540,
    P720,
}

impl Rung {
    /// Width and height in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Rung::P720 => (1280, 720),
            Rung::P540 => (960, 540),
            Rung::P360 => (640, 360),
            Rung::P180 => (320, 180),
        }
    }

    /// The size to encode a capture of `width`×`height` at on this rung: the rung's height
    /// with the capture's aspect ratio (even numbers), never larger than the capture. The
    /// ladder's top rung is the capture's own size, whatever its height ([`Rung::fitting`]).
    pub fn scaled(self, width: u32, height: u32) -> (u32, u32) {
        let (_, rung_height) = self.size();
        if rung_height >= height || height == 0 {
            return (width, height);
        }
        let scaled_width = u64::from(width) * u64::from(rung_height) / u64::from(height);
        let even = |v: u64| (u32::try_from(v).unwrap_or(u32::MAX) & !1).max(16);
        (even(scaled_width), even(u64::from(rung_height)))
    }

    /// The rung a capture of `height` lines stands for: the highest rung not taller than it.
    pub fn fitting(height: u32) -> Rung {
        [Rung::P720, Rung::P540, Rung::P360]
            .into_iter()
            .find(|r| r.size().1 <= height)
            .unwrap_or(Rung::P180)
    }

    fn lower(self) -> Option<Rung> {
        match self {
            Rung::P720 => Some(Rung::P540),
            Rung::P540 => Some(Rung::P360),
            Rung::P360 => Some(Rung::P180),
            Rung::P180 => None,
        }
    }

    fn higher(self) -> Option<Rung> {
        match self {
            Rung::P180 => Some(Rung::P360),
            Rung::P360 => Some(Rung::P540),
            Rung::P540 => Some(Rung::P720),
            Rung::P720 => None,
        }
    }
}

/// Thresholds of the ladder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LadderConfig {
    /// Below this camera bitrate the rung is left for the one under it: 720p, 540p, 360p.
    /// 180p has no floor. The defaults are where VP8 at 30 fps on the kiosk's test pattern
    /// starts dropping frames to hold the rate (libwebrtc uses similar figures).
    pub floor_720p_bps: u32,
    pub floor_540p_bps: u32,
    pub floor_360p_bps: u32,
    /// How long the target must stay below a floor before stepping down.
    pub down_after: Duration,
    /// Below this share of the floor the step down is immediate.
    pub down_at_once: f64,
    /// Stepping up needs the target at this multiple of the higher rung's floor…
    pub up_margin: f64,
    /// …for this long.
    pub up_after: Duration,
}

impl Default for LadderConfig {
    fn default() -> LadderConfig {
        LadderConfig {
            floor_720p_bps: 700_000,
            floor_540p_bps: 400_000,
            floor_360p_bps: 200_000,
            down_after: Duration::from_secs(1),
            down_at_once: 0.6,
            up_margin: 1.3,
            up_after: Duration::from_secs(5),
        }
    }
}

impl LadderConfig {
    fn floor(&self, rung: Rung) -> u32 {
        match rung {
            Rung::P720 => self.floor_720p_bps,
            Rung::P540 => self.floor_540p_bps,
            Rung::P360 => self.floor_360p_bps,
            Rung::P180 => 0,
        }
    }
}

/// The ladder's state: the rung in use and how long the target has argued for a change.
#[derive(Debug, Clone)]
pub struct ResolutionLadder {
    config: LadderConfig,
    top: Rung,
    rung: Rung,
    below_since: Option<Instant>,
    above_since: Option<Instant>,
}

impl ResolutionLadder {
    /// Starts at `top`, the largest rung the capture allows.
    pub fn new(config: LadderConfig, top: Rung) -> ResolutionLadder {
        ResolutionLadder {
            config,
            top,
            rung: top,
            below_since: None,
            above_since: None,
        }
    }

    pub fn rung(&self) -> Rung {
        self.rung
    }

    /// The rung that stands for the capture's own size.
    pub fn top(&self) -> Rung {
        self.top
    }

    /// Starts a rung at once, for a target known before any frame (a new connection starts
    /// at the estimator's start rate): the highest rung whose floor the target meets.
    pub fn reset_to(&mut self, camera_bps: u32) -> Rung {
        let mut rung = self.top;
        while camera_bps < self.config.floor(rung)
            && let Some(lower) = rung.lower()
        {
            rung = lower;
        }
        self.rung = rung;
        self.below_since = None;
        self.above_since = None;
        rung
    }

    /// Folds in the camera's current target; returns the new rung when it changes.
    pub fn update(&mut self, now: Instant, camera_bps: u32) -> Option<Rung> {
        self.update_holding(now, camera_bps, false)
    }

    /// As [`ResolutionLadder::update`]; with `hold_up` the ladder may step down but not up
    /// (and the time spent above the next floor starts again once the hold ends). Used while
    /// the line loses many packets: a larger picture means more packets per frame, so more
    /// frames that wait for a repair and more chances of one lost for good.
    pub fn update_holding(&mut self, now: Instant, camera_bps: u32, hold_up: bool) -> Option<Rung> {
        let floor = self.config.floor(self.rung);
        if let Some(lower) = self.rung.lower()
            && camera_bps < floor
        {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            let far_below = f64::from(camera_bps) < f64::from(floor) * self.config.down_at_once;
            if far_below || now.saturating_duration_since(since) >= self.config.down_after {
                self.rung = lower;
                // A further step needs its own evidence, except when far below again.
                self.below_since = Some(now);
                return Some(lower);
            }
            return None;
        }
        self.below_since = None;
        let Some(higher) = self.rung.higher().filter(|&h| h <= self.top) else {
            self.above_since = None;
            return None;
        };
        let needed = f64::from(self.config.floor(higher)) * self.config.up_margin;
        if hold_up {
            self.above_since = None;
        } else if f64::from(camera_bps) >= needed {
            let since = *self.above_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.config.up_after {
                self.rung = higher;
                self.above_since = None;
                return Some(higher);
            }
        } else {
            self.above_since = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_keeps_the_rung_from_rising_but_not_from_falling() {
        let (mut ladder, t0) = ladder();
        let s = Duration::from_secs;
        assert_eq!(ladder.reset_to(500_000), Rung::P540);
        for i in 0..10 {
            assert_eq!(ladder.update_holding(t0 + s(i), 2_000_000, true), None);
        }
        // Released: the wait above the next floor starts afresh.
        assert_eq!(ladder.update_holding(t0 + s(10), 2_000_000, false), None);
        assert_eq!(
            ladder.update_holding(t0 + s(15), 2_000_000, false),
            Some(Rung::P720)
        );
        // Held, it still steps down at once when far below.
        assert_eq!(
            ladder.update_holding(t0 + s(16), 100_000, true),
            Some(Rung::P540)
        );
    }

    fn ladder() -> (ResolutionLadder, Instant) {
        (
            ResolutionLadder::new(LadderConfig::default(), Rung::P720),
            Instant::now(),
        )
    }

    /// Feeds `bps` every 100 ms for `seconds`; returns the changes seen.
    fn feed(ladder: &mut ResolutionLadder, t: &mut Instant, bps: u32, seconds: u64) -> Vec<Rung> {
        let mut changes = Vec::new();
        for _ in 0..seconds * 10 {
            *t += Duration::from_millis(100);
            changes.extend(ladder.update(*t, bps));
        }
        changes
    }

    #[test]
    fn the_picture_shrinks_step_by_step_as_the_rate_falls() {
        let (mut ladder, mut t) = ladder();
        assert!(feed(&mut ladder, &mut t, 1_200_000, 5).is_empty());
        assert_eq!(feed(&mut ladder, &mut t, 600_000, 3), [Rung::P540]);
        assert_eq!(feed(&mut ladder, &mut t, 300_000, 3), [Rung::P360]);
        assert_eq!(feed(&mut ladder, &mut t, 150_000, 3), [Rung::P180]);
        assert!(feed(&mut ladder, &mut t, 100_000, 10).is_empty());
        assert_eq!(ladder.rung(), Rung::P180);
    }

    #[test]
    fn a_short_dip_does_not_change_the_size() {
        let (mut ladder, mut t) = ladder();
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 650_000), None);
        t += Duration::from_millis(500);
        assert_eq!(ladder.update(t, 650_000), None);
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 1_000_000), None);
        assert!(feed(&mut ladder, &mut t, 1_000_000, 5).is_empty());
        assert_eq!(ladder.rung(), Rung::P720);
    }

    #[test]
    fn a_collapse_steps_down_at_once() {
        let (mut ladder, mut t) = ladder();
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 150_000), Some(Rung::P540));
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 150_000), Some(Rung::P360));
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 100_000), Some(Rung::P180));
    }

    #[test]
    fn recovery_waits_for_a_margin_held_long_enough() {
        let (mut ladder, mut t) = ladder();
        ladder.reset_to(150_000);
        assert_eq!(ladder.rung(), Rung::P180);
        // Just above 360p's floor is not enough: it needs the margin.
        assert!(feed(&mut ladder, &mut t, 250_000, 10).is_empty());
        // With the margin, it steps up only after holding it.
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 400_000), None);
        t += Duration::from_secs(4);
        assert_eq!(ladder.update(t, 400_000), None);
        t += Duration::from_secs(1);
        assert_eq!(ladder.update(t, 400_000), Some(Rung::P360));
        // All the way up, one rung per hold.
        assert_eq!(
            feed(&mut ladder, &mut t, 1_500_000, 20),
            [Rung::P540, Rung::P720]
        );
        assert!(feed(&mut ladder, &mut t, 1_500_000, 20).is_empty());
    }

    #[test]
    fn a_dip_during_the_hold_restarts_it() {
        let (mut ladder, mut t) = ladder();
        ladder.reset_to(300_000);
        assert_eq!(ladder.rung(), Rung::P360);
        assert!(feed(&mut ladder, &mut t, 700_000, 4).is_empty());
        t += Duration::from_millis(100);
        assert_eq!(ladder.update(t, 500_000), None);
        assert!(feed(&mut ladder, &mut t, 700_000, 4).is_empty());
        assert_eq!(feed(&mut ladder, &mut t, 700_000, 2), [Rung::P540]);
    }

    #[test]
    fn the_ladder_never_climbs_above_the_capture() {
        let mut ladder = ResolutionLadder::new(LadderConfig::default(), Rung::fitting(480));
        assert_eq!(ladder.rung(), Rung::P360);
        let mut t = Instant::now();
        assert!(feed(&mut ladder, &mut t, 5_000_000, 30).is_empty());
        assert_eq!(Rung::fitting(1080), Rung::P720);
        assert_eq!(Rung::fitting(100), Rung::P180);
    }

    #[test]
    fn rungs_keep_the_captures_aspect_and_never_upscale() {
        assert_eq!(Rung::P720.scaled(1280, 720), (1280, 720));
        assert_eq!(Rung::P360.scaled(1280, 720), (640, 360));
        assert_eq!(Rung::P180.scaled(1280, 720), (320, 180));
        assert_eq!(Rung::P360.scaled(640, 480), (480, 360));
        assert_eq!(Rung::P180.scaled(640, 480), (240, 180));
        assert_eq!(Rung::P720.scaled(1920, 1080), (1280, 720));
    }

    #[test]
    fn reset_picks_the_highest_rung_the_rate_affords() {
        let (mut ladder, _) = ladder();
        assert_eq!(ladder.reset_to(1_000_000), Rung::P720);
        assert_eq!(ladder.reset_to(600_000), Rung::P540);
        assert_eq!(ladder.reset_to(250_000), Rung::P360);
        assert_eq!(ladder.reset_to(0), Rung::P180);
    }
}
