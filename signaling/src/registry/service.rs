//! The registry's application service: one lifecycle step from an operator's request to its
//! stored effect. It checks the form (fields, and a new point against its centre's district and
//! street), decides the step ([`decide`], sans-IO), commits it with its effect on the extension
//! points and devices in one transaction, ends the live connections of the devices the step
//! disabled, and counts what happened.
//!
//! What it does not do: decide who may ask (the `http::registry` routes check roles and scope
//! and read the counter the caller may see), parse requests, or know how a kiosk connection is
//! held — the caller passes a function that ends one device's live connection.

use rand::RngCore;
use tracing::info;

use super::fields::{FieldError, FormDraft, FormFields};
use super::lifecycle::{Actor, Command, Counter, LifecycleError, decide};
use super::{Registry, Stats};
use crate::auth::{hash_device_secret, new_token};
use crate::domain::Centre;
use crate::store::registry::CommitError;

/// A step on a counter that exists.
#[derive(Debug)]
pub enum Step {
    /// Amend an application, or change an active point (a new device credential either way).
    Change {
        draft: Box<FormDraft>,
        reason: String,
    },
    /// Open the point: its kiosk's credential is issued.
    Activate {
        note: String,
    },
    Close {
        reason: String,
    },
    /// A new device credential; the old one stops working.
    Reissue {
        reason: String,
    },
}

/// The counter after a step.
#[derive(Debug)]
pub struct Stepped {
    pub counter: Counter,
    /// `device_id:secret`, when the step issued a credential: shown once, only its digest kept.
    pub credential: Option<String>,
    /// The step created the counter (an application).
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The form's fields, each with its problem.
    #[error("the form has {} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// A new application for an extension point.
#[derive(Debug)]
pub struct Application<'a> {
    /// The point's id; generated when `None`.
    pub id: Option<String>,
    /// The centre the point belongs to (the caller checked it is in scope).
    pub centre: &'a Centre,
    pub draft: &'a FormDraft,
}

impl Registry {
    /// Files an application: checks the form against the division list and the centre, then
    /// stores it.
    pub async fn apply(
        &self,
        application: Application<'_>,
        actor: &Actor,
        now_ms: i64,
        end_connection: &(dyn Fn(&str) + Sync),
    ) -> Result<Stepped, StepError> {
        let fields = self.checked(application.draft)?;
        self.centre_matches(application.centre, &fields)?;
        let id = application
            .id
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(new_point_id);
        let command = Command::Apply {
            id,
            centre_id: application.centre.id.clone(),
            fields,
        };
        self.run(None, command, None, actor, now_ms, end_connection)
            .await
    }

    /// One step on `counter` (the caller read it and checked its version).
    pub async fn step(
        &self,
        counter: &Counter,
        step: Step,
        actor: &Actor,
        now_ms: i64,
        end_connection: &(dyn Fn(&str) + Sync),
    ) -> Result<Stepped, StepError> {
        let (command, secret) = match step {
            Step::Change { draft, reason } => {
                let fields = self.checked(&draft)?;
                let (plain, hash) = secret();
                let command = Command::Change {
                    fields,
                    reason,
                    new_secret_hash: hash,
                };
                (command, Some(plain))
            }
            Step::Activate { note } => {
                let (plain, hash) = secret();
                let command = Command::Activate {
                    secret_hash: hash,
                    note,
                };
                (command, Some(plain))
            }
            Step::Close { reason } => (Command::Close { reason }, None),
            Step::Reissue { reason } => {
                let (plain, hash) = secret();
                let command = Command::Reissue {
                    secret_hash: hash,
                    reason,
                };
                (command, Some(plain))
            }
        };
        self.run(
            Some(counter),
            command,
            secret,
            actor,
            now_ms,
            end_connection,
        )
        .await
    }

    /// Decides and stores one lifecycle step; ends the live connections it names.
    async fn run(
        &self,
        current: Option<&Counter>,
        command: Command,
        secret: Option<String>,
        actor: &Actor,
        now_ms: i64,
        end_connection: &(dyn Fn(&str) + Sync),
    ) -> Result<Stepped, StepError> {
        let transition = decide(current, command, actor, now_ms)?;
        if let Err(e) = self.store.commit(&transition).await {
            if matches!(e, CommitError::DeviceInUse(_) | CommitError::PointInUse(_)) {
                Stats::inc(&self.stats.invalid_forms);
            }
            return Err(e.into());
        }
        Stats::inc(&self.stats.commits);
        info!(
            counter = %transition.counter.id,
            action = transition.event.action.as_str(),
            clerk = %actor.id,
            "registry step"
        );
        for device in &transition.effects.disconnect {
            end_connection(device);
        }
        let credential = match (transition.credential_issued, secret) {
            (true, Some(secret)) => {
                Some(format!("{}:{secret}", transition.counter.fields.device_id))
            }
            _ => None,
        };
        Ok(Stepped {
            counter: transition.counter,
            credential,
            created: current.is_none(),
        })
    }

    /// The form's fields, checked against the division list (counted when refused).
    fn checked(&self, draft: &FormDraft) -> Result<FormFields, StepError> {
        draft.validate(&self.divisions).map_err(|errors| {
            Stats::inc(&self.stats.invalid_forms);
            StepError::Invalid(errors)
        })
    }

    /// The check [`Registry::apply`] makes, for an amendment or change of a counter of
    /// `centre`: without it an amended district would move a pending point into another
    /// district's scope before it is activated.
    pub fn check_centre(&self, centre: &Centre, draft: &FormDraft) -> Result<(), StepError> {
        let fields = self.checked(draft)?;
        self.centre_matches(centre, &fields)
    }

    /// A centre serves its own district and street: when the centre's are in the division
    /// list, the point's must match them.
    fn centre_matches(&self, centre: &Centre, fields: &FormFields) -> Result<(), StepError> {
        let mut errors = Vec::new();
        if self.divisions.is_district(&centre.district) && fields.district != centre.district {
            errors.push(FieldError {
                field: "district".into(),
                message: format!(
                    "须为受理中心所在区（{}）/ must be the centre's district",
                    centre.district
                ),
            });
        }
        if self
            .divisions
            .check_street(&centre.district, &centre.street)
            .is_ok()
            && fields.street != centre.street
        {
            errors.push(FieldError {
                field: "street".into(),
                message: format!(
                    "须为受理中心所在街镇（{}）/ must be the centre's street or town",
                    centre.street
                ),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Stats::inc(&self.stats.invalid_forms);
            Err(StepError::Invalid(errors))
        }
    }
}

fn new_point_id() -> String {
    let mut bytes = [0u8; 5];
    rand::rng().fill_bytes(&mut bytes);
    format!("ep-{}", hex::encode(bytes))
}

/// A fresh device secret and its stored digest.
fn secret() -> (String, String) {
    let secret = new_token();
    let hash = hash_device_secret(&secret);
    (secret, hash)
}
