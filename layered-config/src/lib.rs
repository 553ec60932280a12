//! Configuration in layers: built-in defaults → TOML file → environment → command line.
//!
//! Every layer is merged into one TOML tree before the tree is parsed into the caller's type,
//! so all layers obey the same rules: with `#[serde(deny_unknown_fields)]` on the caller's
//! structs, an unknown key is an error in any layer (a typo is reported, not silently ignored).
//!
//! Environment variables have the form `<PREFIX><SECTION>__<KEY>` (double underscores), e.g.
//! `RELAY__SERVER__LISTEN`. Command-line overrides are `section.key=value`. Values are read as
//! TOML scalars (`true`, `42`, `"text"`) and as plain text when they are not valid TOML.
//!
//! This crate does no validation of values: callers check their own invariants after loading.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{0}: expected section.key=value")]
    BadOverride(String),
}

/// Where the layers come from.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// `(name, value)` pairs of the environment; only names with the prefix are used.
    pub env: Vec<(String, String)>,
    /// `section.key=value` overrides from the command line, applied last, in order.
    pub overrides: Vec<String>,
}

/// Merges `defaults` with the layers in `sources` and parses the result as `T`.
pub fn load<T: Serialize + DeserializeOwned>(
    defaults: &T,
    env_prefix: &str,
    sources: &Sources<'_>,
) -> Result<T, LayerError> {
    let mut tree = match Value::try_from(defaults) {
        Ok(Value::Table(t)) => t,
        _ => Table::new(),
    };
    if let Some(path) = sources.file {
        let text = std::fs::read_to_string(path).map_err(|source| LayerError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file: Table = toml::from_str(&text).map_err(|e| LayerError::Parse {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        merge(&mut tree, file);
    }
    for (name, value) in &sources.env {
        let Some(rest) = name.strip_prefix(env_prefix) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        set_path(&mut tree, &path, value, name)?;
    }
    for item in &sources.overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| LayerError::BadOverride(item.clone()))?;
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        set_path(&mut tree, &path, value.trim(), item)?;
    }
    Value::Table(tree)
        .try_into()
        .map_err(|e: toml::de::Error| LayerError::Parse {
            origin: "configuration".into(),
            message: e.to_string(),
        })
}

/// Quotes a value for a `section.key=value` override.
pub fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn scalar(text: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

fn set_path(
    tree: &mut Table,
    path: &[String],
    value: &str,
    origin: &str,
) -> Result<(), LayerError> {
    let Some((last, parents)) = path.split_last() else {
        return Err(LayerError::BadOverride(origin.to_owned()));
    };
    if last.is_empty() {
        return Err(LayerError::BadOverride(origin.to_owned()));
    }
    let mut table = tree;
    for p in parents {
        let entry = table
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => return Err(LayerError::BadOverride(origin.to_owned())),
        };
    }
    table.insert(last.clone(), scalar(value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Conf {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        n: u32,
        on: bool,
    }

    impl Default for Conf {
        fn default() -> Self {
            Self {
                name: "default".into(),
                inner: Inner::default(),
            }
        }
    }

    impl Default for Inner {
        fn default() -> Self {
            Self { n: 1, on: false }
        }
    }

    #[test]
    fn layers_apply_in_order_and_scalars_are_typed() {
        let c: Conf = load(
            &Conf::default(),
            "APP__",
            &Sources {
                file: None,
                env: vec![
                    ("APP__INNER__N".into(), "5".into()),
                    ("APP__NAME".into(), "from env".into()),
                    ("OTHER".into(), "x".into()),
                ],
                overrides: vec!["inner.on=true".into(), "name=cli".into()],
            },
        )
        .expect("valid");
        assert_eq!(c.inner, Inner { n: 5, on: true });
        assert_eq!(c.name, "cli");
    }

    #[test]
    fn unknown_keys_and_bad_overrides_fail() {
        let err = load(
            &Conf::default(),
            "APP__",
            &Sources {
                overrides: vec!["inner.m=3".into()],
                ..Sources::default()
            },
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains('m'));
        assert!(
            load(
                &Conf::default(),
                "APP__",
                &Sources {
                    overrides: vec!["no equals sign".into()],
                    ..Sources::default()
                },
            )
            .is_err()
        );
        assert!(
            load(
                &Conf::default(),
                "APP__",
                &Sources {
                    overrides: vec!["name.deeper=1".into()],
                    ..Sources::default()
                },
            )
            .is_err()
        );
    }
}
