//! The division list (区划名录): which districts (区) and streets/towns (街镇) the registry
//! accepts. Data, not code: `deploy/divisions/shanghai.toml` is built in, and
//! `registry.divisions_file` replaces it with the official list when the city supplies one.

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DivisionsError {
    #[error("cannot read the division list {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the division list is not valid TOML: {0}")]
    Parse(String),
    #[error("the division list is inconsistent: {0}")]
    Invalid(String),
}

/// One district and its streets/towns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct District {
    pub name: String,
    #[serde(default)]
    pub streets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Divisions {
    pub city: String,
    /// Whether this is the official list supplied by the city.
    #[serde(default)]
    pub official: bool,
    #[serde(default)]
    pub note: String,
    #[serde(rename = "district")]
    pub districts: Vec<District>,
}

/// Why a district or street was refused, in words for the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivisionProblem {
    UnknownDistrict,
    /// The district's street list has not been configured yet.
    StreetsNotConfigured,
    UnknownStreet,
}

const BUILTIN: &str = include_str!("../../../deploy/divisions/shanghai.toml");

impl Divisions {
    /// The list built into the relay (`deploy/divisions/shanghai.toml`).
    pub fn builtin() -> Self {
        // The built-in file is checked by a unit test, so it always parses.
        Self::parse(BUILTIN).unwrap_or_else(|_| Self {
            city: "上海市".into(),
            official: false,
            note: String::new(),
            districts: Vec::new(),
        })
    }

    /// The list in `path`, or the built-in one when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, DivisionsError> {
        match path {
            None => Ok(Self::builtin()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| DivisionsError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text)
            }
        }
    }

    pub fn parse(text: &str) -> Result<Self, DivisionsError> {
        let d: Divisions =
            toml::from_str(text).map_err(|e| DivisionsError::Parse(e.to_string()))?;
        d.check()?;
        Ok(d)
    }

    fn check(&self) -> Result<(), DivisionsError> {
        let mut seen = std::collections::BTreeSet::new();
        for district in &self.districts {
            let name = district.name.trim();
            if name != district.name || !name.ends_with('区') || name.chars().count() < 2 {
                return Err(DivisionsError::Invalid(format!(
                    "district name {:?} must end with 区 and have no surrounding spaces",
                    district.name
                )));
            }
            if !seen.insert(name) {
                return Err(DivisionsError::Invalid(format!(
                    "district {name} is listed twice"
                )));
            }
            let mut streets = std::collections::BTreeSet::new();
            for s in &district.streets {
                let ok_suffix = ["街道", "镇", "乡"].iter().any(|x| s.ends_with(x));
                if s.trim() != s || !ok_suffix || s.chars().count() < 2 {
                    return Err(DivisionsError::Invalid(format!(
                        "street {s:?} of {name} must end with 街道, 镇 or 乡"
                    )));
                }
                if !streets.insert(s.as_str()) {
                    return Err(DivisionsError::Invalid(format!(
                        "street {s} is listed twice in {name}"
                    )));
                }
            }
        }
        if self.districts.is_empty() {
            return Err(DivisionsError::Invalid("no districts".into()));
        }
        Ok(())
    }

    pub fn district(&self, name: &str) -> Option<&District> {
        self.districts.iter().find(|d| d.name == name)
    }

    pub fn is_district(&self, name: &str) -> bool {
        self.district(name).is_some()
    }

    /// Checks a district and a street of it.
    pub fn check_street(&self, district: &str, street: &str) -> Result<(), DivisionProblem> {
        let d = self
            .district(district)
            .ok_or(DivisionProblem::UnknownDistrict)?;
        if d.streets.is_empty() {
            return Err(DivisionProblem::StreetsNotConfigured);
        }
        if d.streets.iter().any(|s| s == street) {
            Ok(())
        } else {
            Err(DivisionProblem::UnknownStreet)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_list_has_the_sixteen_districts_and_only_checked_streets() {
        let d = Divisions::parse(BUILTIN).expect("deploy/divisions/shanghai.toml is valid");
        assert!(
            !d.official,
            "the built-in list must not claim to be official"
        );
        let names: Vec<&str> = d.districts.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "黄浦区",
                "徐汇区",
                "长宁区",
                "静安区",
                "普陀区",
                "虹口区",
                "杨浦区",
                "闵行区",
                "宝山区",
                "嘉定区",
                "浦东新区",
                "金山区",
                "松江区",
                "青浦区",
                "奉贤区",
                "崇明区"
            ]
        );
        assert_eq!(d.district("黄浦区").map(|d| d.streets.len()), Some(10));
        assert_eq!(d.district("徐汇区").map(|d| d.streets.len()), Some(13));
        assert_eq!(d.check_street("徐汇区", "天平路街道"), Ok(()));
        assert_eq!(d.check_street("徐汇区", "华泾镇"), Ok(()));
        assert_eq!(
            d.check_street("徐汇区", "南京东路街道"),
            Err(DivisionProblem::UnknownStreet)
        );
        assert_eq!(
            d.check_street("长宁区", "华阳路街道"),
            Err(DivisionProblem::StreetsNotConfigured)
        );
        assert_eq!(
            d.check_street("示范区", "示范街道"),
            Err(DivisionProblem::UnknownDistrict)
        );
        assert_eq!(Divisions::builtin(), d);
    }

    #[test]
    fn inconsistent_lists_are_refused() {
        for bad in [
            "city = \"上海市\"\n[[district]]\nname = \"黄浦\"\n",
            "city = \"上海市\"\n[[district]]\nname = \"黄浦区\"\n[[district]]\nname = \"黄浦区\"\n",
            "city = \"上海市\"\n[[district]]\nname = \"黄浦区\"\nstreets = [\"外滩\"]\n",
            "city = \"上海市\"\n[[district]]\nname = \"黄浦区\"\nstreets = [\"外滩街道\", \"外滩街道\"]\n",
            "city = \"上海市\"\ndistrict = []\n",
            "city = \"上海市\"\n[[district]]\nname = \"黄浦区\"\ntowns = []\n",
        ] {
            assert!(Divisions::parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn a_configured_file_replaces_the_built_in_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.toml");
        std::fs::write(
            &path,
            "city = \"上海市\"\nofficial = true\n[[district]]\nname = \"长宁区\"\nstreets = [\"华阳路街道\"]\n",
        )
        .expect("write");
        let d = Divisions::load(Some(&path)).expect("load");
        assert!(d.official);
        assert_eq!(d.check_street("长宁区", "华阳路街道"), Ok(()));
        assert!(Divisions::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
