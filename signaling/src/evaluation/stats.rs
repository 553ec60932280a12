//! Satisfaction figures per window, clerk and extension point: how many services were rated,
//! the distribution over the five levels, and the good-review rate (好评率: 非常满意, 满意 and
//! 基本满意 among the rated ones). Pure: computed from stored records.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::evaluations::EvaluationRecord;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub id: String,
    pub name: String,
    /// Served tickets with an evaluation record (rated or unrated).
    pub evaluations: u32,
    pub rated: u32,
    /// rated ÷ evaluations; `None` without evaluations.
    pub rated_share: Option<f64>,
    /// Counts from 非常满意 (index 0) to 非常不满意 (index 4).
    pub distribution: [u32; 5],
    pub good: u32,
    pub bad: u32,
    /// good ÷ rated; `None` when nothing was rated.
    pub good_rate: Option<f64>,
}

impl Figures {
    fn add(&mut self, r: &EvaluationRecord) {
        self.evaluations += 1;
        if let Some(level) = r.level {
            self.rated += 1;
            let index = usize::from(5 - level.score());
            if let Some(slot) = self.distribution.get_mut(index) {
                *slot += 1;
            }
            if level.is_bad() {
                self.bad += 1;
            } else {
                self.good += 1;
            }
        }
    }

    fn finish(mut self) -> Self {
        let ratio = |a: u32, b: u32| (b > 0).then(|| f64::from(a) / f64::from(b));
        self.rated_share = ratio(self.rated, self.evaluations);
        self.good_rate = ratio(self.good, self.rated);
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Statistics {
    pub total: Figures,
    pub by_window: Vec<Figures>,
    pub by_clerk: Vec<Figures>,
    pub by_extension_point: Vec<Figures>,
}

pub fn compute(records: &[EvaluationRecord]) -> Statistics {
    type Groups = BTreeMap<String, Figures>;
    let mut total = Figures {
        id: "total".into(),
        name: "合计".into(),
        ..Figures::default()
    };
    let (mut windows, mut clerks, mut points) = (Groups::new(), Groups::new(), Groups::new());
    let group = |map: &mut Groups, id: &str, name: &str, r: &EvaluationRecord| {
        map.entry(id.to_owned())
            .or_insert_with(|| Figures {
                id: id.to_owned(),
                name: name.to_owned(),
                ..Figures::default()
            })
            .add(r);
    };
    for r in records {
        total.add(r);
        group(&mut windows, &r.window_id, &r.window_name, r);
        group(&mut clerks, &r.clerk_id, &r.clerk_name, r);
        group(
            &mut points,
            &r.extension_point_id,
            &r.extension_point_name,
            r,
        );
    }
    let done = |map: Groups| map.into_values().map(Figures::finish).collect();
    Statistics {
        total: total.finish(),
        by_window: done(windows),
        by_clerk: done(clerks),
        by_extension_point: done(points),
    }
}

#[cfg(test)]
mod tests {
    use protocol::control::EvaluationLevel;

    use super::*;

    fn record(window: &str, clerk: &str, level: Option<EvaluationLevel>) -> EvaluationRecord {
        EvaluationRecord {
            id: String::new(),
            ticket_id: String::new(),
            ticket_number: String::new(),
            centre_id: "c1".into(),
            centre_name: String::new(),
            category_id: String::new(),
            category_name: String::new(),
            window_id: window.into(),
            window_name: format!("{window}号窗口"),
            clerk_id: clerk.into(),
            clerk_name: clerk.into(),
            extension_point_id: "p1".into(),
            extension_point_name: "p1".into(),
            device_id: "k1".into(),
            level,
            reasons: Vec::new(),
            service_started_ms: 0,
            service_ended_ms: 0,
            evaluated_ms: 0,
            received_ms: 0,
        }
    }

    #[test]
    fn shares_distribution_and_good_rate() {
        use EvaluationLevel::*;
        let records = [
            record("w1", "a", Some(VerySatisfied)),
            record("w1", "a", Some(Basic)),
            record("w1", "b", Some(Dissatisfied)),
            record("w1", "b", None),
            record("w2", "b", Some(VeryDissatisfied)),
        ];
        let s = compute(&records);
        assert_eq!(s.total.evaluations, 5);
        assert_eq!(s.total.rated, 4);
        assert_eq!(s.total.distribution, [1, 0, 1, 1, 1]);
        assert_eq!(s.total.good_rate, Some(0.5));
        assert_eq!(s.total.rated_share, Some(0.8));
        let w1 = &s.by_window[0];
        assert_eq!(
            (w1.id.as_str(), w1.evaluations, w1.rated, w1.bad),
            ("w1", 4, 3, 1)
        );
        let b = s.by_clerk.iter().find(|f| f.id == "b").expect("clerk b");
        assert_eq!(b.good_rate, Some(0.0));
        assert_eq!(b.rated_share, Some(2.0 / 3.0));
        assert_eq!(s.by_extension_point.len(), 1);
        let empty = compute(&[]);
        assert_eq!(empty.total.good_rate, None);
    }
}
