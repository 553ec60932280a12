//! What the kiosk screen needs from the devices: what a device is doing right now ("正在读取
//! 身份证…", "请将材料放在高拍仪下") and the prompt the clerk put on the screen, both in one
//! `watch` value, plus the way back for the resident's answer.
//!
//! The screen itself (issue 5) reads [`KioskScreen::subscribe`] or `GET /api/devices/activity`
//! and answers with `POST /api/prompt/answer`. One prompt at a time: the screen worker serves
//! one `Screen.Prompt` command at a time. Prompt text is written by the clerk for the resident
//! and is never logged.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::device::{DeviceKind, PromptAnswer, PromptKind};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

/// A device at work, for the resident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub device: DeviceKind,
    /// Chinese text for the resident.
    pub text: String,
}

/// A prompt on the screen.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct PromptView {
    pub id: u64,
    pub kind: PromptKind,
    pub text: String,
}

impl std::fmt::Debug for PromptView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptView")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Everything the kiosk screen shows for the devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScreenState {
    /// Newest first; at most one per device.
    pub activities: Vec<Activity>,
    pub prompt: Option<PromptView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerError {
    #[error("没有待回答的提示 / no prompt is waiting for an answer")]
    NoPrompt,
    #[error("该提示只能回答“知道了” / this message can only be acknowledged")]
    WrongAnswer,
}

/// The shared screen state and the pending prompt's answer channel.
pub struct KioskScreen {
    state: watch::Sender<ScreenState>,
    pending: Mutex<Option<(u64, PromptKind, oneshot::Sender<PromptAnswer>)>>,
    next_id: AtomicU64,
}

impl Default for KioskScreen {
    fn default() -> Self {
        Self::new()
    }
}

impl KioskScreen {
    pub fn new() -> Self {
        KioskScreen {
            state: watch::Sender::new(ScreenState::default()),
            pending: Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<ScreenState> {
        self.state.subscribe()
    }

    pub fn current(&self) -> ScreenState {
        self.state.borrow().clone()
    }

    /// Shows `text` for `device`, replacing that device's earlier activity.
    pub fn set_activity(&self, device: DeviceKind, text: &str) {
        self.state.send_modify(|s| {
            s.activities.retain(|a| a.device != device);
            s.activities.insert(
                0,
                Activity {
                    device,
                    text: text.to_owned(),
                },
            );
        });
    }

    pub fn clear_activity(&self, device: DeviceKind) {
        self.state.send_if_modified(|s| {
            let before = s.activities.len();
            s.activities.retain(|a| a.device != device);
            s.activities.len() != before
        });
    }

    /// Puts a prompt on the screen (replacing any other); the receiver gets the answer.
    pub fn show_prompt(
        &self,
        kind: PromptKind,
        text: &str,
    ) -> (u64, oneshot::Receiver<PromptAnswer>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            *p = Some((id, kind, tx));
        }
        self.state.send_modify(|s| {
            s.prompt = Some(PromptView {
                id,
                kind,
                text: text.to_owned(),
            });
        });
        (id, rx)
    }

    /// Takes prompt `id` off the screen (answered, timed out or cancelled).
    pub fn clear_prompt(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock()
            && p.as_ref().is_some_and(|(pid, _, _)| *pid == id)
        {
            *p = None;
        }
        self.state.send_if_modified(|s| {
            if s.prompt.as_ref().is_some_and(|p| p.id == id) {
                s.prompt = None;
                true
            } else {
                false
            }
        });
    }

    /// The resident's answer to prompt `id` (the current one when `None`).
    pub fn answer(&self, id: Option<u64>, answer: PromptAnswer) -> Result<(), AnswerError> {
        let taken = {
            let Ok(mut p) = self.pending.lock() else {
                return Err(AnswerError::NoPrompt);
            };
            match p.as_ref() {
                Some((pid, kind, _)) if id.is_none_or(|id| id == *pid) => {
                    let fits = match kind {
                        PromptKind::Message => answer == PromptAnswer::Acknowledged,
                        PromptKind::Confirm => answer != PromptAnswer::Acknowledged,
                    };
                    if !fits {
                        return Err(AnswerError::WrongAnswer);
                    }
                    p.take()
                }
                _ => return Err(AnswerError::NoPrompt),
            }
        };
        let Some((pid, _, tx)) = taken else {
            return Err(AnswerError::NoPrompt);
        };
        let _ = tx.send(answer);
        self.clear_prompt(pid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prompts_are_answered_once_and_must_fit_their_kind() {
        let screen = KioskScreen::new();
        assert_eq!(
            screen.answer(None, PromptAnswer::Confirmed),
            Err(AnswerError::NoPrompt)
        );
        let (id, rx) = screen.show_prompt(PromptKind::Confirm, "是否同意？");
        assert_eq!(screen.current().prompt.map(|p| p.id), Some(id));
        assert_eq!(
            screen.answer(Some(id), PromptAnswer::Acknowledged),
            Err(AnswerError::WrongAnswer)
        );
        assert_eq!(
            screen.answer(Some(id + 1), PromptAnswer::Confirmed),
            Err(AnswerError::NoPrompt)
        );
        screen
            .answer(Some(id), PromptAnswer::Confirmed)
            .expect("answered");
        assert_eq!(rx.await.expect("answer"), PromptAnswer::Confirmed);
        assert_eq!(screen.current().prompt, None);
        assert_eq!(
            screen.answer(Some(id), PromptAnswer::Confirmed),
            Err(AnswerError::NoPrompt)
        );
    }

    #[test]
    fn activities_are_one_per_device_newest_first() {
        let screen = KioskScreen::new();
        screen.set_activity(DeviceKind::IdCardReader, "正在读取身份证…");
        screen.set_activity(DeviceKind::DocumentCamera, "请将材料放在高拍仪下");
        screen.set_activity(DeviceKind::IdCardReader, "请将身份证放在阅读区");
        let s = screen.current();
        assert_eq!(s.activities.len(), 2);
        assert_eq!(s.activities[0].text, "请将身份证放在阅读区");
        screen.clear_activity(DeviceKind::IdCardReader);
        assert_eq!(screen.current().activities.len(), 1);
    }
}
