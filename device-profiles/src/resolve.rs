//! The resolver: which detected device fills each slot of a kiosk, and with which profile.
//! Pure: the caller enumerates hardware and passes it in.

use crate::catalog::Catalog;
use crate::glob::glob_match;
use crate::model::{Bus, DeviceProfile, KioskProfile, MatchRule, UsbId};
use protocol::device::DeviceKind;

/// A device the agent found, as its enumerator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedDevice {
    pub bus: Bus,
    /// Device node, e.g. `/dev/video0`, `/dev/ttyUSB0`, `hw:1,0`, a pty path for simulators.
    pub path: String,
    /// V4L2 card name, ALSA card name, evdev device name, or the kind for simulators.
    pub name: Option<String>,
    pub usb_id: Option<UsbId>,
}

/// How specifically `rule` matches `device`, or `None`. A USB id outweighs a name, which
/// outweighs a path, which outweighs a bare bus match.
fn rule_score(rule: &MatchRule, device: &DetectedDevice) -> Option<u32> {
    if rule.bus != device.bus {
        return None;
    }
    let mut score = 1;
    if let Some(id) = rule.usb_id {
        if device.usb_id != Some(id) {
            return None;
        }
        score += 8;
    }
    if let Some(pattern) = &rule.name {
        if !device
            .name
            .as_deref()
            .is_some_and(|n| glob_match(pattern, n))
        {
            return None;
        }
        score += 4;
    }
    if let Some(pattern) = &rule.path {
        if !glob_match(pattern, &device.path) {
            return None;
        }
        score += 2;
    }
    Some(score)
}

/// The best score of any of the profile's rules on `device`.
pub(crate) fn profile_score(profile: &DeviceProfile, device: &DetectedDevice) -> Option<u32> {
    profile
        .rules
        .iter()
        .filter_map(|r| rule_score(r, device))
        .max()
}

impl Catalog {
    /// The most specific profile of `kind` for `device` (ties: lowest id), e.g. to label a
    /// device in the technician's view.
    pub fn best_match(&self, kind: DeviceKind, device: &DetectedDevice) -> Option<&DeviceProfile> {
        self.devices()
            .filter(|p| p.kind == kind)
            .filter_map(|p| profile_score(p, device).map(|s| (s, p)))
            .max_by(|(a, pa), (b, pb)| a.cmp(b).then_with(|| pb.id.cmp(&pa.id)))
            .map(|(_, p)| p)
    }
}

/// What [`resolve`] decided for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSlot {
    pub kind: DeviceKind,
    pub profile_id: String,
    pub required: bool,
    /// The device that fills the slot, if any matched.
    pub device: Option<DetectedDevice>,
    /// Other unassigned devices that matched equally well: non-zero means the choice was a
    /// guess (detection order) and the site should pin a path.
    pub ambiguous_with: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub kiosk_id: String,
    pub slots: Vec<ResolvedSlot>,
}

impl Resolution {
    /// Required slots that no device fills.
    pub fn missing_required(&self) -> impl Iterator<Item = &ResolvedSlot> {
        self.slots
            .iter()
            .filter(|s| s.required && s.device.is_none())
    }

    pub fn slot(&self, kind: DeviceKind) -> Option<&ResolvedSlot> {
        self.slots.iter().find(|s| s.kind == kind)
    }
}

/// Assigns detected devices to the kiosk's slots, in slot order. Each device fills at most one
/// slot; within a slot the most specific match wins, ties going to the earlier detected device
/// (so the caller should pass devices in a stable order, e.g. sorted by path). A slot whose
/// profile id is missing from the catalog stays empty (the catalog validation prevents this for
/// loaded kiosks).
pub fn resolve(catalog: &Catalog, kiosk: &KioskProfile, detected: &[DetectedDevice]) -> Resolution {
    let mut taken = vec![false; detected.len()];
    let mut slots = Vec::with_capacity(kiosk.slots.len());
    for slot in &kiosk.slots {
        let profile = catalog.device(&slot.profile);
        let mut best: Option<(u32, usize)> = None;
        let mut ties = 0;
        if let Some(profile) = profile {
            for (i, device) in detected.iter().enumerate() {
                if taken[i]
                    || slot
                        .path
                        .as_deref()
                        .is_some_and(|p| !glob_match(p, &device.path))
                {
                    continue;
                }
                let Some(score) = profile_score(profile, device) else {
                    continue;
                };
                match best {
                    Some((b, _)) if score < b => {}
                    Some((b, _)) if score == b => ties += 1,
                    _ => {
                        best = Some((score, i));
                        ties = 0;
                    }
                }
            }
        }
        if let Some((_, i)) = best {
            taken[i] = true;
        }
        slots.push(ResolvedSlot {
            kind: slot.kind,
            profile_id: slot.profile.clone(),
            required: slot.required,
            device: best.map(|(_, i)| detected[i].clone()),
            ambiguous_with: ties,
        });
    }
    Resolution {
        kiosk_id: kiosk.id.clone(),
        slots,
    }
}
