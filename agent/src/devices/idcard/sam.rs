//! The SAM serial driver: GA/T 467 business-terminal commands over a tty with `serialport`.
//!
//! Each command clears stale input, writes one frame and reads until one reply frame decodes or
//! the reply timeout passes (every read is bounded). SAM replies do not name their command, so
//! after a timeout the next command first waits up to one reply timeout for the late reply and
//! discards it. A corrupt reply (bad checksum) or a
//! missing one is retried `retries` times — all commands used here are safe to repeat — then
//! reported. Card presence is polled no faster than the configured interval (≥ 300 ms, the
//! readers' limit) using the injected [`Clock`](crate::clock::Clock), so tests can run the polling in virtual time;
//! the serial timeouts are real time, because they bound real I/O.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::Pii;
use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

use super::frame::{self, FrameDecoder, FrameError, Reply};
use super::status::Sw3;
use super::{
    CardRead, IdCardError, IdCardReader, ReadOptions, ReadProgress, ReaderInfo, SamCommand, text,
};
use crate::clock::Clock;

/// The readers' notes: do not poll for a card more often than this.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct SamConfig {
    pub baud: u32,
    /// How long to wait for each reply.
    pub reply_timeout: Duration,
    /// Card-presence polling interval; values below [`MIN_POLL_INTERVAL`] are raised to it.
    pub poll_interval: Duration,
    /// Extra attempts after a corrupt or missing reply.
    pub retries: u8,
}

impl Default for SamConfig {
    fn default() -> Self {
        SamConfig {
            baud: 115_200,
            reply_timeout: Duration::from_millis(1500),
            poll_interval: MIN_POLL_INTERVAL,
            retries: 2,
        }
    }
}

impl SamConfig {
    /// Settings from a device profile.
    pub fn from_profile(
        serial: &device_profiles::SerialSpec,
        id_card: &device_profiles::IdCardSpec,
    ) -> Self {
        SamConfig {
            baud: serial.baud,
            reply_timeout: Duration::from_millis(u64::from(id_card.reply_timeout_ms)),
            poll_interval: Duration::from_millis(u64::from(id_card.poll_interval_ms)),
            ..SamConfig::default()
        }
    }
}

/// Link health counters, for metrics and the self-test report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub commands: u64,
    pub replies: u64,
    pub corrupt_replies: u64,
    pub timeouts: u64,
    pub retries: u64,
    /// Bytes skipped while resynchronising on the preamble.
    pub skipped_bytes: u64,
    /// Replies that arrived after their command had timed out (discarded).
    pub late_replies: u64,
}

/// A SAM reader on a serial port.
pub struct SamSerialReader {
    port: Box<dyn SerialPort>,
    decoder: FrameDecoder,
    config: SamConfig,
    clock: Arc<dyn Clock>,
    /// The serial number of the last card read, until it is seen leaving the field (a failed
    /// presence check). A card with another serial number is a new card, even if the swap
    /// happened while nobody polled.
    awaiting_removal: Option<[u8; 8]>,
    last_poll: Option<Instant>,
    /// The last command timed out: its reply may still arrive.
    late_reply_possible: bool,
    stats: LinkStats,
}

impl SamSerialReader {
    /// Opens `path` at the configured baud, 8N1, no flow control.
    pub fn open(path: &str, config: SamConfig, clock: Arc<dyn Clock>) -> Result<Self, IdCardError> {
        let port = serialport::new(path, config.baud)
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(config.reply_timeout)
            .open()
            .map_err(|source| IdCardError::Open {
                path: path.to_string(),
                source,
            })?;
        Ok(Self::from_port(port, config, clock))
    }

    /// Wraps a port the caller opened.
    pub fn from_port(
        port: Box<dyn SerialPort>,
        mut config: SamConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        config.poll_interval = config.poll_interval.max(MIN_POLL_INTERVAL);
        SamSerialReader {
            port,
            decoder: FrameDecoder::new(),
            config,
            clock,
            awaiting_removal: None,
            last_poll: None,
            late_reply_possible: false,
            stats: LinkStats::default(),
        }
    }

    pub fn link_stats(&self) -> LinkStats {
        LinkStats {
            skipped_bytes: self.decoder.skipped_bytes(),
            ..self.stats
        }
    }

    /// `10 FF`: reset the SAM.
    pub fn reset_sam(&mut self) -> Result<(), IdCardError> {
        self.expect_success(SamCommand::Reset).map(drop)
    }

    /// `11 FF`: the SAM's self-check (0x60 = self-test failed).
    pub fn sam_status(&mut self) -> Result<(), IdCardError> {
        self.expect_success(SamCommand::Status).map(drop)
    }

    /// `12 FF`: the SAM id, formatted as the open implementations do:
    /// `d0:D2 "." d2:D2 "-" u32le@4 "-" u32le@8:D9 "-" u32le@12:D9` over the reply data.
    pub fn sam_id(&mut self) -> Result<String, IdCardError> {
        let data = self.expect_success(SamCommand::ReadSamId)?;
        format_sam_id(&data).ok_or(IdCardError::UnexpectedReply {
            command: SamCommand::ReadSamId,
            reason: "SAM id reply shorter than 16 bytes",
        })
    }

    /// `20 01`: is a card in the field?
    pub fn find_card(&mut self) -> Result<bool, IdCardError> {
        let reply = self.exchange(SamCommand::FindCard)?;
        match Sw3::from_byte(reply.sw3) {
            Sw3::FindSuccess => Ok(true),
            Sw3::FindFailed => Ok(false),
            status => Err(IdCardError::Sam {
                command: SamCommand::FindCard,
                status,
            }),
        }
    }

    /// `20 02`: select the card; returns its 8-byte serial number.
    pub fn select_card(&mut self) -> Result<[u8; 8], IdCardError> {
        let data = self.expect_success(SamCommand::SelectCard)?;
        data.get(..8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .ok_or(IdCardError::UnexpectedReply {
                command: SamCommand::SelectCard,
                reason: "select reply shorter than 8 bytes",
            })
    }

    /// `30 01` (or `30 10` with the fingerprint file): read the selected card.
    pub fn read_selected(&mut self, with_fingerprint: bool) -> Result<CardRead, IdCardError> {
        let command = if with_fingerprint {
            SamCommand::ReadCardWithFingerprint
        } else {
            SamCommand::ReadCard
        };
        let mut data = self.expect_success(command)?;
        let result = parse_read_data(command, &data);
        // The fingerprint (and the rest of the buffer) is wiped before the buffer is freed.
        data.fill(0);
        result
    }

    /// Sends `command` and returns the reply data when SW3 is 0x90.
    fn expect_success(&mut self, command: SamCommand) -> Result<Vec<u8>, IdCardError> {
        let reply = self.exchange(command)?;
        match Sw3::from_byte(reply.sw3) {
            Sw3::Success => Ok(reply.data),
            status => Err(IdCardError::Sam { command, status }),
        }
    }

    /// One command with retries on link errors.
    fn exchange(&mut self, command: SamCommand) -> Result<Reply, IdCardError> {
        let mut attempt = 0;
        loop {
            match self.exchange_once(command) {
                Err(e @ (IdCardError::Timeout { .. } | IdCardError::CorruptReply { .. }))
                    if attempt < self.config.retries =>
                {
                    attempt += 1;
                    self.stats.retries += 1;
                    tracing::debug!(%command, error = %e, attempt, "SAM reader: retrying command");
                }
                other => return other,
            }
        }
    }

    fn exchange_once(&mut self, command: SamCommand) -> Result<Reply, IdCardError> {
        let io = |source| IdCardError::Io { source };
        if self.late_reply_possible {
            // The previous command timed out; its reply may still be on its way. Give it one
            // reply timeout to arrive and discard it, so it cannot answer this command.
            self.late_reply_possible = false;
            let deadline = Instant::now() + self.config.reply_timeout;
            if self.read_frame(deadline).map_err(io)?.is_some() {
                self.stats.late_replies += 1;
            }
        }
        // Bytes left over from earlier exchanges are not this command's reply.
        self.port
            .clear(ClearBuffer::Input)
            .map_err(|e| io(e.into()))?;
        self.decoder.clear();
        let (cmd, para) = command.code();
        self.stats.commands += 1;
        self.port
            .write_all(&frame::command(cmd, para, &[]))
            .map_err(io)?;
        self.port.flush().map_err(io)?;

        let deadline = Instant::now() + self.config.reply_timeout;
        match self.read_frame(deadline).map_err(io)? {
            Some(Ok(reply)) => {
                self.stats.replies += 1;
                Ok(reply)
            }
            Some(Err(source)) => {
                self.stats.corrupt_replies += 1;
                Err(IdCardError::CorruptReply { command, source })
            }
            None => {
                self.stats.timeouts += 1;
                self.late_reply_possible = true;
                Err(IdCardError::Timeout {
                    command,
                    timeout_ms: self.config.reply_timeout.as_millis() as u64,
                })
            }
        }
    }

    /// Reads until one reply frame (or a corrupt one) is complete, or `deadline` passes
    /// (`None`). Frames with an impossible length are taken for noise and skipped.
    fn read_frame(
        &mut self,
        deadline: Instant,
    ) -> std::io::Result<Option<Result<Reply, FrameError>>> {
        let mut buf = [0u8; 512];
        loop {
            while let Some(frame) = self.decoder.next_frame() {
                match frame.and_then(Reply::from_body) {
                    Err(FrameError::Length(_)) => {}
                    other => return Ok(Some(other)),
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(None);
            }
            self.port.set_timeout(remaining)?;
            match self.port.read(&mut buf) {
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the polling interval since the previous presence check has passed.
    fn pace_poll(&mut self) {
        if let Some(last) = self.last_poll {
            let next = last + self.config.poll_interval;
            let now = self.clock.now();
            if next > now {
                self.clock.sleep(next - now);
            }
        }
        self.last_poll = Some(self.clock.now());
    }
}

impl IdCardReader for SamSerialReader {
    fn self_test(&mut self) -> Result<ReaderInfo, IdCardError> {
        self.sam_status()?;
        Ok(ReaderInfo {
            sam_id: self.sam_id()?,
        })
    }

    fn reset(&mut self) -> Result<(), IdCardError> {
        self.awaiting_removal = None;
        self.reset_sam()
    }

    fn read_card(
        &mut self,
        options: &ReadOptions,
        progress: &mut dyn FnMut(ReadProgress),
    ) -> Result<CardRead, IdCardError> {
        let deadline = self.clock.now() + options.wait;
        let mut told: Option<ReadProgress> = None;
        let mut tell = |p: ReadProgress, told: &mut Option<ReadProgress>| {
            if *told != Some(p) {
                *told = Some(p);
                progress(p);
            }
        };
        loop {
            if options.canceled() {
                return Err(IdCardError::Canceled);
            }
            self.pace_poll();
            let present = self.find_card()?;
            if present {
                match self.select_card() {
                    Ok(serial) if self.awaiting_removal == Some(serial) => {
                        tell(ReadProgress::RemoveCard, &mut told);
                    }
                    Ok(serial) => {
                        tell(ReadProgress::CardDetected, &mut told);
                        match self.read_selected(options.with_fingerprint_check) {
                            Ok(read) => {
                                self.awaiting_removal = Some(serial);
                                return Ok(read);
                            }
                            Err(e) => {
                                // After a failed read the card must be lifted and placed again.
                                if matches!(
                                    e,
                                    IdCardError::Sam { .. } | IdCardError::CardData { .. }
                                ) {
                                    self.awaiting_removal = Some(serial);
                                }
                                return Err(e);
                            }
                        }
                    }
                    // The card moved away between find and select: keep polling.
                    Err(IdCardError::Sam {
                        status: Sw3::SelectFailed,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            } else {
                self.awaiting_removal = None;
                tell(ReadProgress::WaitingForCard, &mut told);
            }
            let now = self.clock.now();
            // The next poll would come after the deadline: give up now rather than poll early.
            if now + self.config.poll_interval > deadline {
                return Err(if self.awaiting_removal.is_some() {
                    IdCardError::CardNotRemoved
                } else {
                    IdCardError::NoCard
                });
            }
        }
    }
}

/// Splits the data of a `30 01`/`30 10` reply: big-endian lengths, then the blocks in order.
fn parse_read_data(command: SamCommand, data: &[u8]) -> Result<CardRead, IdCardError> {
    let bad = |reason| IdCardError::UnexpectedReply { command, reason };
    let with_fingerprint = command == SamCommand::ReadCardWithFingerprint;
    let header = if with_fingerprint { 6 } else { 4 };
    if data.len() < header {
        return Err(bad("read reply shorter than its length fields"));
    }
    let field = |i: usize| usize::from(u16::from_be_bytes([data[2 * i], data[2 * i + 1]]));
    let (text_len, photo_len) = (field(0), field(1));
    let fingerprint_len = if with_fingerprint { field(2) } else { 0 };
    if text_len != text::TEXT_LEN {
        return Err(bad("text block is not 256 bytes"));
    }
    if data.len() != header + text_len + photo_len + fingerprint_len {
        return Err(bad("read reply length disagrees with its length fields"));
    }
    let text_block = &data[header..header + text_len];
    let photo = data[header + text_len..header + text_len + photo_len].to_vec();
    let card = text::parse(text_block).map_err(|source| IdCardError::CardData { source })?;
    Ok(CardRead {
        card,
        photo_wlt: Pii::new(photo),
        has_fingerprint: with_fingerprint.then_some(fingerprint_len > 0),
    })
}

/// `data[0]:D2 "." data[2]:D2 "-" u32le@4 "-" u32le@8:D9 "-" u32le@12:D9`.
pub fn format_sam_id(data: &[u8]) -> Option<String> {
    let u32_at = |i: usize| {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    Some(format!(
        "{:02}.{:02}-{}-{:09}-{:09}",
        data.first()?,
        data.get(2)?,
        u32_at(4)?,
        u32_at(8)?,
        u32_at(12)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sam_id_format() {
        let mut data = vec![5, 0, 1, 0];
        data.extend(20101231u32.to_le_bytes());
        data.extend(12345u32.to_le_bytes());
        data.extend(123456789u32.to_le_bytes());
        assert_eq!(
            format_sam_id(&data).as_deref(),
            Some("05.01-20101231-000012345-123456789")
        );
        assert_eq!(format_sam_id(&data[..15]), None);
    }

    fn read_data(fingerprint: Option<usize>) -> Vec<u8> {
        let mut data = vec![0x01, 0x00, 0x04, 0x00];
        if let Some(len) = fingerprint {
            data.extend((len as u16).to_be_bytes());
        }
        data.extend(text::encode(&super::super::fixtures::resident()).expect("fits"));
        data.extend(super::super::fixtures::photo());
        data.extend(vec![0xF5; fingerprint.unwrap_or(0)]);
        data
    }

    #[test]
    fn read_reply_layouts() {
        let plain = parse_read_data(SamCommand::ReadCard, &read_data(None)).expect("parses");
        assert_eq!(plain.has_fingerprint, None);
        assert_eq!(plain.photo_wlt.expose().len(), 1024);
        for (len, has) in [(1024, true), (512, true), (0, false)] {
            let r = parse_read_data(SamCommand::ReadCardWithFingerprint, &read_data(Some(len)))
                .expect("parses");
            assert_eq!(r.has_fingerprint, Some(has));
            assert_eq!(r.photo_wlt.expose(), &super::super::fixtures::photo());
        }
        let mut short = read_data(None);
        short.pop();
        assert!(matches!(
            parse_read_data(SamCommand::ReadCard, &short),
            Err(IdCardError::UnexpectedReply { .. })
        ));
        assert!(matches!(
            parse_read_data(SamCommand::ReadCard, &[1]),
            Err(IdCardError::UnexpectedReply { .. })
        ));
    }
}
