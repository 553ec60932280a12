//! The profile file format. Every struct rejects unknown keys, so a misspelt key in a profile
//! fails loudly instead of silently taking a default.

use std::fmt;
use std::str::FromStr;

use protocol::device::DeviceKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One hardware model (or a generic class of them): `profiles/devices/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// Equal to the file name without `.toml`.
    pub id: String,
    pub kind: DeviceKind,
    pub description: String,
    /// A simulated device (CI and demo): matched only on the `simulated` bus.
    #[serde(default)]
    pub simulated: bool,
    /// A device matches the profile when any one rule matches it.
    #[serde(rename = "match")]
    pub rules: Vec<MatchRule>,
    /// Cameras and document cameras.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoSpec>,
    /// Microphones and speakers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioSpec>,
    /// Devices on a serial line (ID card readers, serial QR scanners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialSpec>,
    /// ID card readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_card: Option<IdCardSpec>,
    /// QR/barcode scanners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<ScannerSpec>,
}

/// How the agent found a device: the enumerator that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bus {
    /// A V4L2 video capture node (`/dev/video*`); name = the driver's card name.
    V4l2,
    /// A tty (`/dev/ttyUSB*`, `/dev/ttyACM*`, `/dev/ttyS*`).
    Serial,
    /// An ALSA capture PCM; name = the card name.
    AlsaCapture,
    /// An ALSA playback PCM; name = the card name.
    AlsaPlayback,
    /// A Linux input device (`/dev/input/event*` or its `by-id` link); name = the device name.
    Evdev,
    /// The agent's built-in simulators; name = the device kind.
    Simulated,
}

/// One match rule: every field given must match. Patterns use `*` and `?` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    pub bus: Bus,
    /// USB vendor and product id, `"1a86:7523"` (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usb_id: Option<UsbId>,
    /// Pattern on the device's name (V4L2 card, ALSA card, evdev name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pattern on the device node path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// USB vendor:product id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsbId {
    pub vendor: u16,
    pub product: u16,
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.product)
    }
}

impl FromStr for UsbId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("USB id {s:?} is not VVVV:PPPP (four hex digits each)");
        let (v, p) = s.split_once(':').ok_or_else(bad)?;
        let hex4 = |x: &str| {
            if x.len() == 4 && x.bytes().all(|c| c.is_ascii_hexdigit()) {
                u16::from_str_radix(x, 16).ok()
            } else {
                None
            }
        };
        Ok(UsbId {
            vendor: hex4(v).ok_or_else(bad)?,
            product: hex4(p).ok_or_else(bad)?,
        })
    }
}

impl Serialize for UsbId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsbId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Video capabilities, in the agent's order of preference. The real modes are enumerated from
/// the device at run time; these lists say which of them to prefer. An empty `resolutions`
/// list means "take the largest the device offers".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSpec {
    pub formats: Vec<PixelFormat>,
    #[serde(default)]
    pub resolutions: Vec<Resolution>,
    pub frame_rates: Vec<u32>,
    pub self_test: VideoSelfTest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelFormat {
    /// Motion JPEG (UVC payload; stills are passed through without re-encoding).
    Mjpeg,
    /// Packed YUV 4:2:2 (V4L2 `YUYV`, Windows `YUY2`).
    Yuyv,
    Nv12,
    /// Planar YUV 4:2:0 (what GStreamer's test source produces).
    I420,
}

/// `"1280x720"` in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

impl Resolution {
    /// Whether this is at least `other` in both dimensions.
    pub fn covers(self, other: Resolution) -> bool {
        self.width >= other.width && self.height >= other.height
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("resolution {s:?} is not WIDTHxHEIGHT with both above zero");
        let (w, h) = s.split_once('x').ok_or_else(bad)?;
        let (width, height): (u32, u32) =
            (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(bad());
        }
        Ok(Resolution { width, height })
    }
}

impl Serialize for Resolution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resolution {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What the technician's camera self-test checks on a captured frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSelfTest {
    /// The device must offer at least this resolution.
    pub min_resolution: Resolution,
    pub min_frame_rate: u32,
    /// Normalised sharpness (0–1, variance of the Laplacian scaled by the agent) below which the
    /// picture is reported as out of focus.
    pub min_sharpness: f64,
    /// Acceptable mean luma (0–255) of a frame: outside it, under- or over-exposed.
    pub mean_luma: [u8; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    /// Preferred sample rates in Hz.
    pub sample_rates: Vec<u32>,
    /// Preferred channel counts.
    pub channels: Vec<u16>,
    pub self_test: AudioSelfTest,
}

/// The speaker→microphone loop test: the speaker plays a tone, the microphone must hear it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSelfTest {
    /// Tone frequency in Hz (speaker plays it; microphone listens for it).
    pub tone_hz: u32,
    pub tone_ms: u32,
    /// Microphones: the tone must reach at least this level (dBFS, negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level_dbfs: Option<f64>,
}

/// Serial line settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSpec {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub flow_control: FlowControl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    None,
    Software,
    Hardware,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdCardSpec {
    pub protocol: IdCardProtocol,
    /// Card-presence polling interval; the SAM readers' notes say no faster than 300 ms.
    pub poll_interval_ms: u32,
    /// How long to wait for each reply frame.
    pub reply_timeout_ms: u32,
    pub self_test: IdCardSelfTest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdCardProtocol {
    /// The GA/T 467 business-terminal frames (`AA AA AA 96 69 …`).
    SamSerial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdCardSelfTest {
    /// Run the SAM status check (`11 FF`, expect 90).
    pub check_sam_status: bool,
    /// Read the SAM id (`12 FF`) for the device registry.
    pub read_sam_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerSpec {
    pub transport: ScannerTransport,
    /// What ends one scan.
    pub terminator: Terminator,
    /// Longest scan accepted, in bytes; longer ones are rejected whole.
    pub max_length: u32,
    /// A pause this long also ends a scan (keyboard wedges without a suffix, serial scanners
    /// without a terminator).
    pub idle_gap_ms: u32,
    /// Keyboard wedge: take the input device exclusively so scans do not type into other apps.
    #[serde(default)]
    pub grab: bool,
    /// Keyboard wedge: the layout the scanner "types" in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard_layout: Option<KeyboardLayout>,
    pub self_test: ScannerSelfTest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScannerTransport {
    /// USB-CDC virtual COM port or RS-232.
    Serial,
    /// USB HID keyboard emulation, read through evdev.
    KeyboardWedge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terminator {
    /// Carriage return, line feed or CR LF, whichever comes.
    Newline,
    /// The Enter key (keyboard wedge).
    Enter,
    /// No suffix: only the idle gap ends a scan.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyboardLayout {
    Us,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerSelfTest {
    /// How long the technician has to scan the test code.
    pub scan_timeout_ms: u32,
}

/// One kiosk's set of devices: `profiles/kiosks/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskProfile {
    pub id: String,
    pub description: String,
    #[serde(rename = "device")]
    pub slots: Vec<KioskSlot>,
}

/// One device of a kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskSlot {
    pub kind: DeviceKind,
    /// Id of the device profile for this slot.
    pub profile: String,
    /// A kiosk without this device cannot serve (it reports the slot as missing).
    #[serde(default = "yes")]
    pub required: bool,
    /// Site pin: only devices whose path matches this pattern fill the slot (e.g. a
    /// `/dev/v4l/by-id/…` link when two cameras would otherwise both match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn yes() -> bool {
    true
}
