//! The public listing of open extension points (for 随申办 → 政务服务地图 → 网点服务, and for
//! anyone without a login): institution, district, street, address, hours and phone of every
//! activated, not closed point. Device ids and URLs are internal and never listed.
//!
//! Served as JSON (`/api/v1/public/extension-points`) and as a plain HTML page
//! (`/public/extension-points`) rendered here on the server: no script, one stylesheet, all
//! registry text escaped.

use protocol::hours::ServiceHours;
use serde::Serialize;

use super::lifecycle::{Counter, CounterState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicPoint {
    pub id: String,
    pub district: String,
    pub street: String,
    /// 设备摆放机构名称
    pub name: String,
    pub address: String,
    /// 服务时间 as text.
    pub service_hours: String,
    pub hours: ServiceHours,
    pub phone: String,
    /// Whether it is within its service hours at the time of the listing.
    pub open_now: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicListing {
    pub generated_ms: i64,
    pub points: Vec<PublicPoint>,
}

/// The listing at `now_ms` from the registry's counters (any state; only active ones are
/// listed), ordered by district, street and name.
pub fn listing(counters: &[Counter], now_ms: i64) -> PublicListing {
    let mut points: Vec<PublicPoint> = counters
        .iter()
        .filter(|c| c.state == CounterState::Active)
        .map(|c| {
            let f = &c.fields;
            PublicPoint {
                id: c.id.clone(),
                district: f.district.clone(),
                street: f.street.clone(),
                name: f.institution.clone(),
                address: f.address.clone(),
                service_hours: f.hours_text.clone(),
                hours: f.hours.clone(),
                phone: f.phone.clone(),
                open_now: f.hours.is_open_at(now_ms),
            }
        })
        .collect();
    points.sort_by(|a, b| {
        (&a.district, &a.street, &a.name, &a.id).cmp(&(&b.district, &b.street, &b.name, &b.id))
    });
    PublicListing {
        generated_ms: now_ms,
        points,
    }
}

/// A point id as one URL path segment (ids are letters, digits and hyphens; anything else is
/// percent-encoded).
fn url_path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn exceptions_zh(hours: &ServiceHours) -> String {
    hours
        .exceptions
        .iter()
        .map(|e| {
            let periods = if e.periods.is_empty() {
                "不开放".to_owned()
            } else {
                e.periods
                    .iter()
                    .map(|p| format!("{}-{}", p.open, p.close))
                    .collect::<Vec<_>>()
                    .join("、")
            };
            if e.note.is_empty() {
                format!("{} {periods}", e.date)
            } else {
                format!("{}（{}）{periods}", e.date, e.note)
            }
        })
        .collect::<Vec<_>>()
        .join("；")
}

/// The listing as a self-contained, accessible HTML page (no script).
pub fn html(listing: &PublicListing, updated_text: &str) -> String {
    let mut rows = String::new();
    for p in &listing.points {
        let exceptions = exceptions_zh(&p.hours);
        let exceptions = if exceptions.is_empty() {
            String::new()
        } else {
            format!(
                "<br><span class=\"exceptions\">特殊日期：{}</span>",
                escape(&exceptions)
            )
        };
        let open = if p.open_now {
            "<span class=\"open\">服务中</span>"
        } else {
            "<span class=\"closed\">非服务时间</span>"
        };
        rows.push_str(&format!(
            "<tr><td>{district}</td><td>{street}</td><th scope=\"row\">{name}</th><td>{address}</td><td>{hours}{exceptions}</td><td><a href=\"tel:{tel}\">{phone}</a></td><td>{open}</td><td><a href=\"/book/{book}\">预约办事</a></td></tr>\n",
            district = escape(&p.district),
            street = escape(&p.street),
            name = escape(&p.name),
            address = escape(&p.address),
            hours = escape(&p.service_hours),
            tel = escape(&p.phone.replace('转', ",")),
            phone = escape(&p.phone),
            book = escape(&url_path_segment(&p.id)),
        ));
    }
    let body = if listing.points.is_empty() {
        "<p>暂无已开通的延伸服务点。</p>".to_owned()
    } else {
        format!(
            "<table>\n<caption>共 {} 个延伸服务点</caption>\n<thead><tr><th scope=\"col\">区</th><th scope=\"col\">街镇</th><th scope=\"col\">延伸服务点</th><th scope=\"col\">地址</th><th scope=\"col\">服务时间</th><th scope=\"col\">联系电话</th><th scope=\"col\">当前</th><th scope=\"col\">远程办事预约</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>",
            listing.points.len()
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>社区事务受理延伸服务点</title>\n<link rel=\"stylesheet\" href=\"/assets/ops/public.css\">\n</head>\n<body>\n<main>\n<h1>社区事务受理延伸服务点</h1>\n<p>在以下居村委延伸服务点，可通过远程视频办理社区事务受理服务中心的事项。更新时间：{}。<a href=\"/api/v1/public/extension-points\">数据（JSON）</a>　<a href=\"/book\">预约远程办事</a></p>\n{body}\n</main>\n</body>\n</html>\n",
        escape(updated_text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::divisions::Divisions;
    use crate::registry::fields::tests::draft;

    fn counter(id: &str, state: CounterState, institution: &str) -> Counter {
        let mut d = draft();
        d.institution = institution.into();
        Counter {
            id: id.into(),
            centre_id: "c".into(),
            state,
            fields: d.validate(&Divisions::builtin()).expect("valid"),
            version: 1,
            applied_ms: 0,
            activated_ms: None,
            closed_ms: None,
            close_reason: None,
            updated_ms: 0,
        }
    }

    #[test]
    fn only_active_points_are_listed_without_device_details() {
        let l = listing(
            &[
                counter("b", CounterState::Active, "天平路街道乙居委会延伸服务点"),
                counter("a", CounterState::Active, "天平路街道甲居委会延伸服务点"),
                counter("x", CounterState::Applied, "天平路街道丙居委会延伸服务点"),
                counter("y", CounterState::Closed, "天平路街道丁居委会延伸服务点"),
            ],
            0,
        );
        let ids: Vec<&str> = l.points.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 2);
        let json = serde_json::to_string(&l).expect("json");
        assert!(
            !json.contains("kiosk-tp-01") && !json.contains("10.11.160.170"),
            "{json}"
        );
        assert!(json.contains("\"phone\":\"021-64041234\""));
    }

    #[test]
    fn the_page_escapes_registry_text() {
        let mut l = listing(
            &[counter(
                "a",
                CounterState::Active,
                "天平路街道甲居委会延伸服务点",
            )],
            0,
        );
        l.points[0].address = "<script>alert(1)</script>路1号".into();
        let page = html(&l, "2026-03-05 09:00");
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;路1号"));
        assert!(page.contains("<th scope=\"row\">天平路街道甲居委会 延伸服务点</th>"));
        assert!(page.contains("共 1 个延伸服务点"));
        assert!(page.contains("<a href=\"/book/a\">预约办事</a>"));
        assert_eq!(url_path_segment("p 1/x"), "p%201%2Fx");
    }
}
