//! Frames handed between GStreamer's streaming threads and async code, and the bounded
//! drop-oldest channel that carries them.
//!
//! For live media the newest frame is the valuable one: a producer never blocks on a slow
//! consumer (that would stall capture) and never grows a queue without bound; it evicts the
//! oldest queued frame and counts it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;

/// One encoded video frame or audio packet, as the encoder produced it.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub data: Bytes,
    /// Presentation time in the pipeline's running time; the RTP timestamp derives from it.
    pub pts: Option<Duration>,
    pub duration: Option<Duration>,
    /// True for a video keyframe (and for every audio packet).
    pub keyframe: bool,
}

/// One decoded video frame in I420 (planar Y, U, V).
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    pub width: u32,
    pub height: u32,
    /// The frame's bytes as GStreamer laid them out; see `offsets` and `strides`.
    pub data: Bytes,
    pub offsets: [usize; 3],
    pub strides: [usize; 3],
    pub pts: Option<Duration>,
    /// When the decoder handed the frame out.
    pub decoded_at: SystemTime,
}

impl DecodedFrame {
    /// The luma plane, row by row with `strides[0]` bytes per row, or `None` if the layout
    /// does not fit in `data` (never expected from GStreamer, but checked rather than trusted).
    pub fn luma(&self) -> Option<&[u8]> {
        let len = self.strides[0].checked_mul(self.height as usize)?;
        let end = self.offsets[0].checked_add(len)?;
        self.data.get(self.offsets[0]..end)
    }
}

/// What happened to a pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// The queue was full; the oldest item was dropped to make room.
    DroppedOldest,
    /// The receiver is gone; the item was discarded.
    Closed,
}

struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    capacity: usize,
    notify: Notify,
    dropped: AtomicU64,
    senders: AtomicUsize,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
}

/// Creates a bounded channel that drops the oldest item when full. `capacity` is at least 1.
pub fn frame_channel<T>(capacity: usize) -> (FrameSender<T>, FrameReceiver<T>) {
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::with_capacity(capacity)),
        capacity,
        notify: Notify::new(),
        dropped: AtomicU64::new(0),
        senders: AtomicUsize::new(1),
        sender_gone: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
    });
    (
        FrameSender {
            shared: Arc::clone(&shared),
        },
        FrameReceiver { shared },
    )
}

/// The producing half; usable from any thread without an async runtime. Clones feed the
/// same queue (successive pipelines can hand frames to one consumer); the receiver sees the
/// end once every clone is gone.
pub struct FrameSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for FrameSender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        FrameSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> FrameSender<T> {
    pub fn push(&self, item: T) -> PushOutcome {
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return PushOutcome::Closed;
        }
        let outcome = {
            // A poisoned lock only means another thread panicked mid-push; the deque itself is
            // still a valid deque, so keep going rather than lose media.
            let mut queue = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let outcome = if queue.len() >= self.shared.capacity {
                queue.pop_front();
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                PushOutcome::DroppedOldest
            } else {
                PushOutcome::Queued
            };
            queue.push_back(item);
            outcome
        };
        self.shared.notify.notify_one();
        outcome
    }

    /// Items dropped so far because the receiver fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl<T> Drop for FrameSender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.sender_gone.store(true, Ordering::Release);
            self.shared.notify.notify_one();
        }
    }
}

/// The consuming half.
pub struct FrameReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> FrameReceiver<T> {
    /// The next item; `None` once the sender is gone and the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.shared.sender_gone.load(Ordering::Acquire) {
                // Drain anything pushed between the check above and the sender's drop.
                return self.try_recv();
            }
            // `notify_one` stores a permit when nobody waits, so a push that lands between
            // `try_recv` and here still wakes us.
            self.shared.notify.notified().await;
        }
    }

    pub fn try_recv(&mut self) -> Option<T> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// Items dropped so far because this receiver fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for FrameReceiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_when_full_and_counts() {
        let (tx, mut rx) = frame_channel(2);
        assert_eq!(tx.push(1), PushOutcome::Queued);
        assert_eq!(tx.push(2), PushOutcome::Queued);
        assert_eq!(tx.push(3), PushOutcome::DroppedOldest);
        assert_eq!(rx.dropped(), 1);
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), Some(3));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn recv_ends_after_sender_drops_and_queue_drains() {
        let (tx, mut rx) = frame_channel(4);
        tx.push(7);
        drop(tx);
        assert_eq!(rx.recv().await, Some(7));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn recv_wakes_for_a_push_from_another_thread() {
        let (tx, mut rx) = frame_channel(1);
        let handle = std::thread::spawn(move || {
            tx.push(42u32);
            tx
        });
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.ok().flatten(), Some(42));
        drop(handle.join());
    }

    #[tokio::test]
    async fn the_end_comes_after_the_last_clone() {
        let (tx, mut rx) = frame_channel(4);
        let tx2 = tx.clone();
        drop(tx);
        tx2.push(1);
        assert_eq!(rx.recv().await, Some(1));
        drop(tx2);
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn push_after_receiver_drop_reports_closed() {
        let (tx, rx) = frame_channel::<u8>(1);
        drop(rx);
        assert_eq!(tx.push(1), PushOutcome::Closed);
    }

    #[test]
    fn luma_checks_layout_against_data() {
        let frame = DecodedFrame {
            width: 4,
            height: 2,
            data: Bytes::from(vec![0u8; 12]),
            offsets: [0, 8, 10],
            strides: [4, 2, 2],
            pts: None,
            decoded_at: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(frame.luma().map(<[u8]>::len), Some(8));
        let broken = DecodedFrame {
            strides: [100, 2, 2],
            ..frame
        };
        assert!(broken.luma().is_none());
    }
}
