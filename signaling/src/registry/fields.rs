//! The fields of one row of the registry forms (附件1–3) and their validation as a whole.

use protocol::hours::ServiceHours;
use serde::{Deserialize, Serialize};

use super::divisions::Divisions;
use super::rules;

/// One validated row of the forms: a remote device (远程设备) at its extension point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFields {
    /// 区
    pub district: String,
    /// 街镇
    pub street: String,
    /// 设备摆放机构名称
    pub institution: String,
    /// 设备摆放地址
    pub address: String,
    /// 服务时间, as the forms and the public map print it.
    pub hours_text: String,
    /// 服务时间 as data: weekly periods and dated exceptions.
    pub hours: ServiceHours,
    /// 摆放点位联系电话, canonical (see [`rules::phone`]).
    pub phone: String,
    /// 远程设备 ID: the id the kiosk authenticates with.
    pub device_id: String,
    /// 远程设备 URL
    pub device_url: String,
    /// 备注
    #[serde(default)]
    pub remarks: String,
}

/// What a registry operator typed; every field is checked by [`FormDraft::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FormDraft {
    pub district: String,
    pub street: String,
    pub institution: String,
    pub address: String,
    /// Empty: written from the structured hours (e.g. "周一至周五 9:00-17:00").
    pub hours_text: String,
    pub hours: Option<ServiceHours>,
    pub phone: String,
    pub device_id: String,
    pub device_url: String,
    pub remarks: String,
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's wire name (`district`, `phone`, …).
    pub field: String,
    /// Chinese first, then English.
    pub message: String,
}

/// The forms' fields in their order, with the Chinese labels the forms use.
pub const FIELD_LABELS: [(&str, &str); 10] = [
    ("district", "区"),
    ("street", "街镇"),
    ("institution", "设备摆放机构名称"),
    ("address", "设备摆放地址"),
    ("hours_text", "服务时间"),
    ("hours", "服务时间（结构化）"),
    ("phone", "摆放点位联系电话"),
    ("device_id", "远程设备 ID"),
    ("device_url", "远程设备 URL"),
    ("remarks", "备注"),
];

pub fn label(field: &str) -> &str {
    FIELD_LABELS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(field, |(_, l)| l)
}

const MAX_EXCEPTIONS: usize = 200;
const MAX_NOTE_CHARS: usize = 50;

fn hours_problem(hours: Option<&ServiceHours>) -> Option<String> {
    let Some(h) = hours else {
        return Some("请设置服务时间 / set the service hours".into());
    };
    if h.weekly.is_empty() {
        return Some("请至少设置一个每周服务时段 / add at least one weekly period".into());
    }
    if h.weekly
        .iter()
        .any(|w| w.weekdays.is_empty() || w.periods.is_empty())
    {
        return Some(
            "每组服务时段须选择星期并填写时段 / each weekly entry needs weekdays and periods"
                .into(),
        );
    }
    if h.exceptions.len() > MAX_EXCEPTIONS {
        return Some(format!(
            "特殊日期最多{MAX_EXCEPTIONS}个 / at most {MAX_EXCEPTIONS} dated exceptions"
        ));
    }
    if h.exceptions
        .iter()
        .any(|e| e.note.chars().count() > MAX_NOTE_CHARS || e.note.chars().any(char::is_control))
    {
        return Some(format!(
            "特殊日期的说明最多{MAX_NOTE_CHARS}个字 / exception notes: at most {MAX_NOTE_CHARS} characters"
        ));
    }
    h.validate().err().map(|p| p.to_string())
}

impl FormDraft {
    /// Checks every field and returns the canonical row, or every problem at once.
    pub fn validate(&self, divisions: &Divisions) -> Result<FormFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut take = |field: &str, r: Result<String, String>| match r {
            Ok(v) => v,
            Err(message) => {
                errors.push(FieldError {
                    field: field.into(),
                    message,
                });
                String::new()
            }
        };
        let district = take("district", rules::district(divisions, &self.district));
        let street = if district.is_empty() {
            take("street", Err("请先选择区 / choose a district first".into()))
        } else {
            take("street", rules::street(divisions, &district, &self.street))
        };
        // With an invalid street the name is still checked against what was typed, so both
        // mistakes show at once.
        let street_for_name = if street.is_empty() {
            self.street.trim()
        } else {
            street.as_str()
        };
        let institution = take(
            "institution",
            rules::institution_name(street_for_name, &self.institution),
        );
        let address = take(
            "address",
            rules::text(&self.address, rules::MAX_ADDRESS_CHARS, true),
        );
        let hours = match hours_problem(self.hours.as_ref()) {
            Some(p) => {
                take("hours", Err(p));
                None
            }
            None => self.hours.clone(),
        };
        let mut hours_text = take(
            "hours_text",
            rules::text(&self.hours_text, rules::MAX_HOURS_TEXT_CHARS, false),
        );
        if hours_text.is_empty()
            && let Some(h) = &hours
        {
            hours_text = h.describe_zh();
        }
        let phone = take("phone", rules::phone(&self.phone));
        let device_id = take("device_id", rules::device_id(&self.device_id));
        let device_url = take("device_url", rules::url(&self.device_url));
        let remarks = take(
            "remarks",
            rules::text(&self.remarks, rules::MAX_REMARKS_CHARS, false),
        );
        match hours {
            Some(hours) if errors.is_empty() => Ok(FormFields {
                district,
                street,
                institution,
                address,
                hours_text,
                hours,
                phone,
                device_id,
                device_url,
                remarks,
            }),
            _ => Err(errors),
        }
    }
}

impl From<&FormFields> for FormDraft {
    fn from(f: &FormFields) -> Self {
        Self {
            district: f.district.clone(),
            street: f.street.clone(),
            institution: f.institution.clone(),
            address: f.address.clone(),
            hours_text: f.hours_text.clone(),
            hours: Some(f.hours.clone()),
            phone: f.phone.clone(),
            device_id: f.device_id.clone(),
            device_url: f.device_url.clone(),
            remarks: f.remarks.clone(),
        }
    }
}

/// One field's value before and after a change (变更前 / 变更后).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

impl FormFields {
    /// Each field as text, in form order (structured hours as JSON).
    pub fn as_pairs(&self) -> [(&'static str, String); 10] {
        [
            ("district", self.district.clone()),
            ("street", self.street.clone()),
            ("institution", self.institution.clone()),
            ("address", self.address.clone()),
            ("hours_text", self.hours_text.clone()),
            (
                "hours",
                serde_json::to_string(&self.hours).unwrap_or_default(),
            ),
            ("phone", self.phone.clone()),
            ("device_id", self.device_id.clone()),
            ("device_url", self.device_url.clone()),
            ("remarks", self.remarks.clone()),
        ]
    }

    /// The fields that differ from `before`, in form order.
    pub fn changes_from(&self, before: &FormFields) -> Vec<FieldChange> {
        before
            .as_pairs()
            .into_iter()
            .zip(self.as_pairs())
            .filter(|((_, b), (_, a))| a != b)
            .map(|((field, before), (_, after))| FieldChange {
                field: field.into(),
                before,
                after,
            })
            .collect()
    }

    /// The value of a field by wire name, as text.
    pub fn get(&self, field: &str) -> String {
        self.as_pairs()
            .into_iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use protocol::hours::{ClockTime, Date, DateException, Period};

    use super::*;

    pub(crate) fn draft() -> FormDraft {
        FormDraft {
            district: "徐汇区".into(),
            street: "天平路街道".into(),
            institution: "天平路街道永嘉路居委会延伸服务点".into(),
            address: "永嘉路100号".into(),
            hours_text: String::new(),
            hours: Some(ServiceHours::weekdays(
                ClockTime::new(9, 0).expect("time"),
                ClockTime::new(17, 0).expect("time"),
            )),
            phone: "021 6404 1234".into(),
            device_id: "kiosk-tp-01".into(),
            device_url: "http://10.11.160.170".into(),
            remarks: String::new(),
        }
    }

    #[test]
    fn a_good_draft_becomes_a_canonical_row() {
        let f = draft().validate(&Divisions::builtin()).expect("valid");
        assert_eq!(f.institution, "天平路街道永嘉路居委会 延伸服务点");
        assert_eq!(f.phone, "021-64041234");
        assert_eq!(
            f.hours_text, "周一至周五 9:00-17:00",
            "written from the structured hours"
        );
        let mut d = draft();
        d.hours_text = "工作日 9:00-17:00（法定节假日除外）".into();
        let f = d.validate(&Divisions::builtin()).expect("valid");
        assert_eq!(f.hours_text, "工作日 9:00-17:00（法定节假日除外）");
    }

    fn problems(d: &FormDraft) -> Vec<String> {
        d.validate(&Divisions::builtin())
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn every_problem_is_reported_at_once_against_its_field() {
        let d = FormDraft {
            hours: None,
            ..FormDraft::default()
        };
        assert_eq!(
            problems(&d),
            [
                "district",
                "street",
                "institution",
                "address",
                "hours",
                "phone",
                "device_id",
                "device_url"
            ]
        );
    }

    #[test]
    fn structured_hours_are_validated_with_their_exceptions() {
        let t = |h, m| ClockTime::new(h, m).expect("time");
        let mut d = draft();
        d.hours = Some(ServiceHours::default());
        assert_eq!(problems(&d), ["hours"]);
        let mut h = ServiceHours::weekdays(t(9, 0), t(17, 0));
        h.weekly[0].periods.push(Period {
            open: t(16, 0),
            close: t(18, 0),
        });
        d.hours = Some(h);
        assert_eq!(problems(&d), ["hours"], "overlapping periods");
        let mut h = ServiceHours::weekdays(t(9, 0), t(17, 0));
        let day = Date::new(2026, 10, 1).expect("date");
        for _ in 0..2 {
            h.exceptions.push(DateException {
                date: day,
                periods: vec![],
                note: "国庆节".into(),
            });
        }
        d.hours = Some(h.clone());
        assert_eq!(problems(&d), ["hours"], "the same date twice");
        h.exceptions.pop();
        d.hours = Some(h.clone());
        assert!(d.validate(&Divisions::builtin()).is_ok());
        h.exceptions[0].periods.push(Period {
            open: t(12, 0),
            close: t(9, 0),
        });
        d.hours = Some(h);
        assert_eq!(
            problems(&d),
            ["hours"],
            "an exception period that ends before it starts"
        );
        let mut h = ServiceHours::weekdays(t(9, 0), t(17, 0));
        h.weekly[0].weekdays.clear();
        d.hours = Some(h);
        assert_eq!(problems(&d), ["hours"], "a weekly entry without weekdays");
    }

    #[test]
    fn the_name_must_match_the_chosen_street() {
        let mut d = draft();
        d.street = "湖南路街道".into();
        assert_eq!(problems(&d), ["institution"]);
        d.district = "黄浦区".into();
        assert_eq!(problems(&d), ["street", "institution"]);
    }

    #[test]
    fn changes_list_only_the_fields_that_differ() {
        let before = draft().validate(&Divisions::builtin()).expect("valid");
        let mut d = draft();
        d.phone = "13812345678".into();
        d.address = "永嘉路102号".into();
        let after = d.validate(&Divisions::builtin()).expect("valid");
        let changes = after.changes_from(&before);
        assert_eq!(
            changes,
            vec![
                FieldChange {
                    field: "address".into(),
                    before: "永嘉路100号".into(),
                    after: "永嘉路102号".into()
                },
                FieldChange {
                    field: "phone".into(),
                    before: "021-64041234".into(),
                    after: "13812345678".into()
                },
            ]
        );
        assert_eq!(label("phone"), "摆放点位联系电话");
        assert_eq!(after.get("device_id"), "kiosk-tp-01");
    }
}
