//! Faults a simulated kiosk can be given (`[devices.simulated_faults]`), so technicians'
//! tools and tests see a broken device without hardware. Each fault changes what a simulator
//! produces or whether it exists — never what the checks do with it: a black camera is a test
//! source drawing black frames, analysed by the same black-frame check a kiosk runs; an absent
//! reader is a serial port that does not exist, opened by the real driver.

use serde::{Deserialize, Serialize};

/// `[devices.simulated_faults]`: at most one fault per device. Only with `simulated = true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedFaults {
    pub camera: Option<CameraFault>,
    pub microphone: Option<MicrophoneFault>,
    pub speaker: Option<SpeakerFault>,
    pub id_card_reader: Option<IdCardFault>,
    pub qr_scanner: Option<ScannerFault>,
}

impl SimulatedFaults {
    pub fn is_empty(&self) -> bool {
        *self == SimulatedFaults::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraFault {
    /// The source draws black frames (covered lens, dead sensor).
    Black,
    /// The source repeats one picture (a stuck driver).
    Frozen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MicrophoneFault {
    /// The capsule delivers digital silence (unplugged, muted, dead).
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerFault {
    /// Nothing the speaker is given reaches the room (unplugged, volume at zero).
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdCardFault {
    /// No reader on the port (unplugged): the port path does not exist.
    Absent,
    /// The SAM answers every command with SW3 0x60 (self-test failed).
    SamSelfTestFailure,
    /// No card is ever placed.
    NoCard,
    /// Reading the card fails with SW3 0x41.
    ReadFailure,
    /// Every reply is slow.
    SlowReplies,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScannerFault {
    /// No scanner on the port (unplugged).
    Absent,
}

/// A serial port path that cannot exist, for the "unplugged" faults: the real drivers open it
/// and fail the way they fail on a kiosk whose device is gone.
pub const ABSENT_PORT: &str = "/dev/rvw-simulated-device-unplugged";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_toml_and_refuses_unknown_faults() {
        let faults: SimulatedFaults = toml::from_str(
            "camera = \"black\"\nmicrophone = \"silent\"\nid_card_reader = \"sam_self_test_failure\"",
        )
        .expect("faults");
        assert_eq!(faults.camera, Some(CameraFault::Black));
        assert_eq!(faults.id_card_reader, Some(IdCardFault::SamSelfTestFailure));
        assert!(!faults.is_empty());
        assert!(toml::from_str::<SimulatedFaults>("camera = \"melted\"").is_err());
        assert!(toml::from_str::<SimulatedFaults>("printer = \"jam\"").is_err());
    }

    #[test]
    fn faults_need_simulated_devices() {
        let mut devices = crate::devices::config::DevicesConfig {
            simulated_faults: SimulatedFaults {
                camera: Some(CameraFault::Black),
                ..SimulatedFaults::default()
            },
            ..Default::default()
        };
        assert!(
            devices
                .validate()
                .is_err_and(|e| e.contains("simulated = true"))
        );
        devices.simulated = true;
        assert!(devices.validate().is_ok());
    }
}
