//! Renders a form [`Sheet`] as an XLSX workbook (rust_xlsxwriter): one worksheet named after
//! the attachment, title and header lines merged across the table as on the printed form,
//! attachment 2's two-row header with its merged cells, thin borders around the table, every
//! value written as text (phone numbers and ids keep their leading zeros; nothing is a
//! formula), A4 landscape fitted to one page wide.

use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, XlsxError};

use super::exports::{Form, Sheet, Style};

#[derive(Debug, thiserror::Error)]
#[error("could not write the spreadsheet: {0}")]
pub struct XlsxExportError(#[from] XlsxError);

fn formats() -> [(Style, Format); 5] {
    let base = Format::new().set_font_name("宋体").set_font_size(11);
    let boxed = base
        .clone()
        .set_border(FormatBorder::Thin)
        .set_text_wrap()
        .set_align(FormatAlign::VerticalCenter);
    [
        (
            Style::Title,
            base.clone()
                .set_bold()
                .set_font_size(16)
                .set_align(FormatAlign::Center)
                .set_align(FormatAlign::VerticalCenter),
        ),
        (Style::Line, base.clone().set_align(FormatAlign::Left)),
        (
            Style::Header,
            boxed.clone().set_bold().set_align(FormatAlign::Center),
        ),
        (Style::Cell, boxed),
        (
            Style::Note,
            base.set_text_wrap().set_align(FormatAlign::Left),
        ),
    ]
}

fn column_widths(form: Form) -> &'static [f64] {
    match form {
        Form::Application | Form::Closure => {
            &[6.0, 10.0, 12.0, 30.0, 24.0, 22.0, 16.0, 16.0, 24.0, 20.0]
        }
        Form::Change => &[
            6.0, 10.0, 12.0, 22.0, 22.0, 18.0, 18.0, 16.0, 16.0, 14.0, 14.0, 14.0, 14.0, 18.0,
            18.0, 18.0,
        ],
    }
}

/// The workbook as bytes.
pub fn to_xlsx(sheet: &Sheet) -> Result<Vec<u8>, XlsxExportError> {
    let formats = formats();
    let format_of = |style: Style| {
        formats
            .iter()
            .find(|(s, _)| *s == style)
            .map(|(_, f)| f)
            .unwrap_or(&formats[3].1)
    };
    let mut workbook = Workbook::new();
    let ws = workbook.add_worksheet();
    ws.set_name(format!("附件{}", sheet.form.attachment()))?;
    ws.set_landscape();
    ws.set_paper_size(9); // A4
    ws.set_print_fit_to_pages(1, 0);
    for (c, w) in column_widths(sheet.form).iter().enumerate() {
        ws.set_column_width(u16::try_from(c).unwrap_or(0), *w)?;
    }
    let covered = |r: u32, c: u16| {
        sheet
            .merges
            .iter()
            .any(|&(r0, c0, r1, c1)| (r0..=r1).contains(&r) && (c0..=c1).contains(&c))
    };
    for &(r0, c0, r1, c1) in &sheet.merges {
        let style = sheet
            .styles
            .get(r0 as usize)
            .copied()
            .unwrap_or(Style::Cell);
        let text = sheet
            .rows
            .get(r0 as usize)
            .and_then(|row| row.get(usize::from(c0)))
            .map_or("", String::as_str);
        ws.merge_range(r0, c0, r1, c1, text, format_of(style))?;
    }
    for (r, (row, style)) in sheet.rows.iter().zip(&sheet.styles).enumerate() {
        let r = u32::try_from(r).unwrap_or(u32::MAX);
        if *style == Style::Title {
            ws.set_row_height(r, 30)?;
        }
        let in_table = sheet.table_rows.contains(&r);
        for (c, text) in row.iter().enumerate() {
            let c = u16::try_from(c).unwrap_or(u16::MAX);
            if covered(r, c) || (text.is_empty() && !in_table) {
                continue;
            }
            ws.write_string_with_format(r, c, text, format_of(*style))?;
        }
    }
    Ok(workbook.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
    use protocol::hours::Date;

    use super::*;
    use crate::registry::divisions::Divisions;
    use crate::registry::exports::tests::event;
    use crate::registry::exports::{applications_as_reviewed, build};
    use crate::registry::fields::tests::draft;
    use crate::registry::lifecycle::EventAction;

    /// Reads the workbook back and checks every cell of the grid and every merge.
    fn round_trip(sheet: &Sheet) {
        let bytes = to_xlsx(sheet).expect("xlsx");
        let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("opens");
        let name = format!("附件{}", sheet.form.attachment());
        assert_eq!(wb.sheet_names(), vec![name.clone()]);
        let range = wb.worksheet_range(&name).expect("sheet");
        for (r, row) in sheet.rows.iter().enumerate() {
            for (c, text) in row.iter().enumerate() {
                let got = range
                    .get_value((r as u32, c as u32))
                    .cloned()
                    .unwrap_or(Data::Empty);
                let got = match got {
                    Data::String(s) => s,
                    Data::Empty => String::new(),
                    other => panic!("cell ({r},{c}) is not text: {other:?}"),
                };
                assert_eq!(&got, text, "cell ({r},{c})");
            }
        }
        assert!(
            range
                .end()
                .is_none_or(|(r, _)| (r as usize) < sheet.rows.len()),
            "no rows beyond the grid"
        );
        let mut merges: Vec<(u32, u32, u32, u32)> = wb
            .merge_cells_by_sheet_name(&name)
            .expect("merges")
            .iter()
            .map(|d| (d.start.0, d.start.1, d.end.0, d.end.1))
            .collect();
        merges.sort_unstable();
        let mut expected: Vec<(u32, u32, u32, u32)> = sheet
            .merges
            .iter()
            .map(|&(a, b, c, d)| (a, u32::from(b), c, u32::from(d)))
            .collect();
        expected.sort_unstable();
        assert_eq!(merges, expected);
    }

    fn filed() -> Date {
        Date::new(2026, 3, 5).expect("date")
    }

    #[test]
    fn every_form_survives_a_round_trip_cell_by_cell() {
        let divisions = Divisions::builtin();
        let before = draft().validate(&divisions).expect("valid");
        let mut d = draft();
        d.device_id = "kiosk-tp-02".into();
        d.phone = "021-64049999转12".into();
        d.remarks = "含逗号, 和\"引号\"".into();
        let after = d.validate(&divisions).expect("valid");
        let events = vec![
            event(1, EventAction::Apply, 10, before.clone(), vec![], ""),
            event(
                4,
                EventAction::Change,
                40,
                after.clone(),
                after.changes_from(&before),
                "设备更换",
            ),
            event(7, EventAction::Close, 70, after, vec![], "居委会搬迁"),
        ];
        for form in [Form::Application, Form::Change, Form::Closure] {
            let rows = if form == Form::Application {
                applications_as_reviewed(&events)
            } else {
                events.clone()
            };
            let sheet = build(form, "徐汇区", filed(), &rows);
            assert!(sheet.rows.len() > 4, "{form:?} has a data row");
            round_trip(&sheet);
        }
    }

    #[test]
    fn an_empty_range_still_gives_the_blank_form() {
        for form in [Form::Application, Form::Change, Form::Closure] {
            round_trip(&build(form, "黄浦区", filed(), &[]));
        }
    }
}
