//! The city's three forms, filled from the registry's trail: attachment 1 (接入申请表),
//! attachment 2 (变更备案表) and attachment 3 (关闭备案表) of 沪民基发〔2023〕4号, as CSV and
//! XLSX, for one district and a date range.
//!
//! Each form is first laid out as a [`Sheet`] (a grid of text with merged ranges); the CSV and
//! XLSX writers only render that grid, so both formats carry exactly the same lines:
//!
//! ```text
//! row 0   社区事务受理远程虚拟窗口接入申请表                         (merged across the table)
//! row 1   徐汇区民政局（或负责社区事务受理服务中心标准化建设部门）（盖章）   (the form's "_____区" filled in)
//! row 2   申请日期：2026年3月5日                                      (备案日期 on attachments 2 and 3)
//! row 3   序号 | 区 | 街镇 | 设备摆放机构名称 | … | 备注                (attachment 2: two header rows)
//! row 4…  one row per application / change / closure in the range, oldest first
//! (attachment 1 ends with its 填表说明)
//! ```
//!
//! Which rows go in:
//! - attachment 1: each application filed in the range, with its fields as last amended before
//!   activation (what the city reviews);
//! - attachment 2: each change of an active point in the range; every field pair is filled,
//!   unchanged fields with the same value before and after, so each row identifies its device
//!   on its own; 原因 is the change's reason;
//! - attachment 3: each closure in the range, with the fields at closure; 原因 is the reason.
//!   (A withdrawn application was never opened and needs no closure filing.)

use protocol::hours::Date;

use super::lifecycle::{EventAction, RegistryEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// 附件1 社区事务受理远程虚拟窗口接入申请表
    Application,
    /// 附件2 社区事务受理远程虚拟窗口变更备案表
    Change,
    /// 附件3 社区事务受理远程虚拟窗口关闭备案表
    Closure,
}

impl Form {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "application" | "1" => Form::Application,
            "change" | "2" => Form::Change,
            "closure" | "3" => Form::Closure,
            _ => return None,
        })
    }

    pub fn title(self) -> &'static str {
        match self {
            Form::Application => "社区事务受理远程虚拟窗口接入申请表",
            Form::Change => "社区事务受理远程虚拟窗口变更备案表",
            Form::Closure => "社区事务受理远程虚拟窗口关闭备案表",
        }
    }

    pub fn attachment(self) -> u8 {
        match self {
            Form::Application => 1,
            Form::Change => 2,
            Form::Closure => 3,
        }
    }

    fn date_label(self) -> &'static str {
        match self {
            Form::Application => "申请日期：",
            Form::Change | Form::Closure => "备案日期：",
        }
    }

    /// The events that make this form's rows.
    pub fn actions(self) -> &'static [EventAction] {
        match self {
            Form::Application => &[EventAction::Apply],
            Form::Change => &[EventAction::Change],
            Form::Closure => &[EventAction::Close],
        }
    }

    /// A file name: `附件1_社区事务受理远程虚拟窗口接入申请表_徐汇区_20260301-20260331`.
    pub fn file_stem(self, district: &str, from: Date, to: Date) -> String {
        let d = |d: Date| format!("{:04}{:02}{:02}", d.year, d.month, d.day);
        format!(
            "附件{}_{}_{district}_{}-{}",
            self.attachment(),
            self.title(),
            d(from),
            d(to)
        )
    }
}

/// The line under the title: the form's `_____区民政局…（盖章）` with the district filled in.
pub fn authority_line(district: &str) -> String {
    format!("{district}民政局（或负责社区事务受理服务中心标准化建设部门）（盖章）")
}

/// The common columns of attachments 1 and 3 (their last column differs).
pub const FLAT_COLUMNS: [&str; 9] = [
    "序号",
    "区",
    "街镇",
    "设备摆放机构名称",
    "设备摆放地址",
    "服务时间",
    "摆放点位联系电话",
    "远程设备 ID",
    "远程设备 URL",
];

/// The fields of attachment 2 that have a 变更前 / 变更后 pair, with their headers.
pub const CHANGE_PAIRS: [(&str, &str); 6] = [
    ("institution", "设备摆放机构名称"),
    ("address", "设备摆放地址"),
    ("hours_text", "服务时间"),
    ("phone", "摆放点位联系电话"),
    ("device_id", "远程设备 ID"),
    ("device_url", "远程设备 URL"),
];

/// 填表说明 of attachment 1, as printed on the form.
pub const APPLICATION_NOTES: [&str; 5] = [
    "填表说明：",
    "1.已与受理系统完成对接调试的远程设备填写此表，填写的设备摆放机构名称务必须按照区划名称统一规范。相关信息将在“随申办”——“政务服务地图（长三角）”——“筛选社区事务受理服务中心”——“网点服务”中进行公开。",
    "2.每台远程设备一行。",
    "3.“远程设备 ID”、“远程设备 URL”可咨询设备厂商获取。",
    "4.远程设备信息若发生变化调整，须在受理系统中进行维护，并另行提交变更或关闭备案，详见“《社区事务受理远程虚拟窗口变更备案表》”、“《社区事务受理远程虚拟窗口关闭备案表》”。",
];

/// How a cell looks in the XLSX rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Title,
    Line,
    Header,
    Cell,
    Note,
}

/// A rectangular merge, inclusive: (first row, first column, last row, last column).
pub type Merge = (u32, u16, u32, u16);

/// A form laid out as a grid of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    pub form: Form,
    pub columns: u16,
    /// Row by row; every row has `columns` cells.
    pub rows: Vec<Vec<String>>,
    pub styles: Vec<Style>,
    pub merges: Vec<Merge>,
    /// Rows of data, for the renderers' column widths and borders.
    pub table_rows: std::ops::Range<u32>,
}

impl Sheet {
    fn push(&mut self, cells: Vec<String>, style: Style) -> u32 {
        let mut cells = cells;
        cells.resize(usize::from(self.columns), String::new());
        self.rows.push(cells);
        self.styles.push(style);
        u32::try_from(self.rows.len() - 1).unwrap_or(u32::MAX)
    }

    fn push_line(&mut self, text: String, style: Style) {
        let r = self.push(vec![text], style);
        self.merges.push((r, 0, r, self.columns - 1));
    }
}

/// `2026年3月5日`
pub fn date_zh(d: Date) -> String {
    format!("{}年{}月{}日", d.year, d.month, d.day)
}

/// Lays out `form` for `district`, dated `filed`, from registry events (any order; only this
/// form's events of this district are used).
pub fn build(form: Form, district: &str, filed: Date, events: &[RegistryEvent]) -> Sheet {
    let columns: u16 = match form {
        Form::Application | Form::Closure => 10,
        Form::Change => 16,
    };
    let mut sheet = Sheet {
        form,
        columns,
        rows: Vec::new(),
        styles: Vec::new(),
        merges: Vec::new(),
        table_rows: 0..0,
    };
    sheet.push_line(form.title().to_owned(), Style::Title);
    sheet.push_line(authority_line(district), Style::Line);
    sheet.push_line(
        format!("{}{}", form.date_label(), date_zh(filed)),
        Style::Line,
    );
    let header_start = u32::try_from(sheet.rows.len()).unwrap_or(0);
    match form {
        Form::Application | Form::Closure => {
            let mut header: Vec<String> = FLAT_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
            header.push(
                if form == Form::Application {
                    "备注"
                } else {
                    "原因"
                }
                .into(),
            );
            sheet.push(header, Style::Header);
        }
        Form::Change => {
            let mut top: Vec<String> = vec!["序号".into(), "区".into(), "街镇".into()];
            let mut bottom: Vec<String> = vec![String::new(); 3];
            for (_, name) in CHANGE_PAIRS {
                top.push(name.into());
                top.push(String::new());
                bottom.push("变更前".into());
                bottom.push("变更后".into());
            }
            top.push("原因".into());
            bottom.push(String::new());
            let r0 = sheet.push(top, Style::Header);
            let r1 = sheet.push(bottom, Style::Header);
            for c in [0u16, 1, 2, 15] {
                sheet.merges.push((r0, c, r1, c));
            }
            for i in 0..6u16 {
                sheet.merges.push((r0, 3 + 2 * i, r0, 4 + 2 * i));
            }
        }
    }
    let mut mine: Vec<&RegistryEvent> = events
        .iter()
        .filter(|e| e.district == district && form.actions().contains(&e.action))
        .collect();
    mine.sort_by_key(|e| (e.at_ms, e.id));
    for (i, e) in mine.iter().enumerate() {
        let n = (i + 1).to_string();
        let s = &e.snapshot;
        let row = match form {
            Form::Application | Form::Closure => vec![
                n,
                s.district.clone(),
                s.street.clone(),
                s.institution.clone(),
                s.address.clone(),
                s.hours_text.clone(),
                s.phone.clone(),
                s.device_id.clone(),
                s.device_url.clone(),
                if form == Form::Application {
                    s.remarks.clone()
                } else {
                    e.reason.clone()
                },
            ],
            Form::Change => {
                let mut row = vec![n, s.district.clone(), s.street.clone()];
                for (field, _) in CHANGE_PAIRS {
                    row.push(e.before(field));
                    row.push(s.get(field));
                }
                row.push(e.reason.clone());
                row
            }
        };
        sheet.push(row, Style::Cell);
    }
    sheet.table_rows = header_start..u32::try_from(sheet.rows.len()).unwrap_or(0);
    if form == Form::Application {
        sheet.push(Vec::new(), Style::Note);
        for note in APPLICATION_NOTES {
            sheet.push_line(note.to_owned(), Style::Note);
        }
    }
    sheet
}

/// Attachment 1 shows each application as it stood when the city reviewed it: the last
/// `apply`/`amend` snapshot of each counter before its activation. Given the events of the
/// counters involved, returns the application events with their snapshots brought up to date.
pub fn applications_as_reviewed(events: &[RegistryEvent]) -> Vec<RegistryEvent> {
    let mut out: Vec<RegistryEvent> = Vec::new();
    let mut sorted: Vec<&RegistryEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.at_ms, e.id));
    for e in sorted {
        match e.action {
            EventAction::Apply => out.push(e.clone()),
            EventAction::Amend => {
                if let Some(app) = out.iter_mut().rev().find(|a| a.counter_id == e.counter_id) {
                    app.snapshot = e.snapshot.clone();
                }
            }
            _ => {}
        }
    }
    out
}

/// Quotes a CSV field (RFC 4180). A field that a spreadsheet would run as a formula gets a
/// leading `'` (OWASP's advice against CSV injection); the forms' own values never start so.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The sheet as CSV: UTF-8 with a byte-order mark (so spreadsheet programs on Chinese Windows
/// read it as UTF-8), CRLF line ends, merged cells as the text in their first cell.
pub fn to_csv(sheet: &Sheet) -> Vec<u8> {
    let mut out = String::from('\u{feff}');
    for row in &sheet.rows {
        let line: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::divisions::Divisions;
    use crate::registry::fields::tests::draft;
    use crate::registry::fields::{FieldChange, FormFields};
    use crate::registry::lifecycle::Actor;

    pub(crate) fn event(
        id: i64,
        action: EventAction,
        at_ms: i64,
        snapshot: FormFields,
        changes: Vec<FieldChange>,
        reason: &str,
    ) -> RegistryEvent {
        RegistryEvent {
            id,
            counter_id: "tp-01".into(),
            centre_id: "xh-tianping".into(),
            district: snapshot.district.clone(),
            at_ms,
            actor: Actor {
                id: "clerk-op".into(),
                name: "周涛".into(),
            },
            action,
            reason: reason.into(),
            changes,
            snapshot,
        }
    }

    fn fields() -> FormFields {
        draft().validate(&Divisions::builtin()).expect("valid")
    }

    fn filed() -> Date {
        Date::new(2026, 3, 5).expect("date")
    }

    #[test]
    fn attachment_1_has_the_forms_lines_headers_and_notes() {
        let s = build(
            Form::Application,
            "徐汇区",
            filed(),
            &[event(1, EventAction::Apply, 10, fields(), vec![], "")],
        );
        assert_eq!(s.rows[0][0], "社区事务受理远程虚拟窗口接入申请表");
        assert_eq!(
            s.rows[1][0],
            "徐汇区民政局（或负责社区事务受理服务中心标准化建设部门）（盖章）"
        );
        assert_eq!(s.rows[2][0], "申请日期：2026年3月5日");
        assert_eq!(
            s.rows[3],
            [
                "序号",
                "区",
                "街镇",
                "设备摆放机构名称",
                "设备摆放地址",
                "服务时间",
                "摆放点位联系电话",
                "远程设备 ID",
                "远程设备 URL",
                "备注"
            ]
        );
        assert_eq!(
            s.rows[4],
            [
                "1",
                "徐汇区",
                "天平路街道",
                "天平路街道永嘉路居委会 延伸服务点",
                "永嘉路100号",
                "周一至周五 9:00-17:00",
                "021-64041234",
                "kiosk-tp-01",
                "http://10.11.160.170",
                ""
            ]
        );
        assert_eq!(s.rows[6][0], "填表说明：");
        assert_eq!(
            s.rows[7][0],
            "1.已与受理系统完成对接调试的远程设备填写此表，填写的设备摆放机构名称务必须按照区划名称统一规范。相关信息将在“随申办”——“政务服务地图（长三角）”——“筛选社区事务受理服务中心”——“网点服务”中进行公开。"
        );
        assert!(s.merges.contains(&(0, 0, 0, 9)));
        assert!(s.rows.iter().all(|r| r.len() == 10));
    }

    #[test]
    fn attachment_2_pairs_every_field_and_gives_the_reason() {
        let before = fields();
        let mut d = draft();
        d.phone = "13812345678".into();
        let after = d.validate(&Divisions::builtin()).expect("valid");
        let changes = after.changes_from(&before);
        let s = build(
            Form::Change,
            "徐汇区",
            filed(),
            &[
                event(1, EventAction::Apply, 10, before.clone(), vec![], ""),
                event(3, EventAction::Change, 30, after, changes, "更换联系电话"),
            ],
        );
        assert_eq!(s.rows[2][0], "备案日期：2026年3月5日");
        assert_eq!(
            s.rows[3][..5],
            ["序号", "区", "街镇", "设备摆放机构名称", ""]
        );
        assert_eq!(s.rows[3][15], "原因");
        assert_eq!(s.rows[4][3..7], ["变更前", "变更后", "变更前", "变更后"]);
        assert_eq!(s.rows[5][9], "021-64041234");
        assert_eq!(s.rows[5][10], "13812345678");
        assert_eq!(
            s.rows[5][3], s.rows[5][4],
            "unchanged fields carry the same value"
        );
        assert_eq!(s.rows[5][15], "更换联系电话");
        assert_eq!(s.rows.len(), 6, "only the change; no notes");
        for m in [
            (3, 0, 4, 0),
            (3, 1, 4, 1),
            (3, 2, 4, 2),
            (3, 15, 4, 15),
            (3, 3, 3, 4),
            (3, 13, 3, 14),
        ] {
            assert!(s.merges.contains(&m), "{m:?}");
        }
    }

    #[test]
    fn only_this_districts_events_of_this_form_in_time_order() {
        let mut other = fields();
        other.district = "黄浦区".into();
        let s = build(
            Form::Closure,
            "徐汇区",
            filed(),
            &[
                event(9, EventAction::Close, 90, fields(), vec![], "第二个"),
                event(2, EventAction::Close, 20, fields(), vec![], "第一个"),
                event(5, EventAction::Close, 50, other, vec![], "别区"),
                event(6, EventAction::Withdraw, 60, fields(), vec![], "撤回"),
            ],
        );
        assert_eq!(s.rows[3][9], "原因");
        let reasons: Vec<&str> = s.rows[4..].iter().map(|r| r[9].as_str()).collect();
        assert_eq!(reasons, ["第一个", "第二个"]);
        assert_eq!(s.rows[5][0], "2");
    }

    #[test]
    fn applications_show_their_last_amendment() {
        let mut amended = fields();
        amended.address = "永嘉路102号".into();
        let rows = applications_as_reviewed(&[
            event(1, EventAction::Apply, 10, fields(), vec![], ""),
            event(2, EventAction::Amend, 20, amended, vec![], ""),
        ]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].snapshot.address, "永嘉路102号");
        assert_eq!(rows[0].at_ms, 10, "dated by the application");
    }

    #[test]
    fn csv_has_a_bom_crlf_quoting_and_no_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("021-64041234"), "021-64041234");
        let s = build(Form::Closure, "徐汇区", filed(), &[]);
        let text = String::from_utf8(to_csv(&s)).expect("utf-8");
        assert!(text.starts_with("\u{feff}社区事务受理远程虚拟窗口关闭备案表,,,,,,,,,\r\n"));
        assert!(text.contains("\r\n序号,区,街镇,设备摆放机构名称,设备摆放地址,服务时间,摆放点位联系电话,远程设备 ID,远程设备 URL,原因\r\n"));
    }

    #[test]
    fn file_names_say_which_form_district_and_range() {
        let from = Date::new(2026, 3, 1).expect("date");
        let to = Date::new(2026, 3, 31).expect("date");
        assert_eq!(
            Form::Change.file_stem("徐汇区", from, to),
            "附件2_社区事务受理远程虚拟窗口变更备案表_徐汇区_20260301-20260331"
        );
    }
}
