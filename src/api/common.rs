//! Types shared by the three kinds: durations, conditions, and small reference types.
//!
//! Schema fragments here carry their own admission rules (CEL), so every field that uses
//! them is checked the same way.

use std::{borrow::Cow, fmt, time::Duration as StdDuration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// API group of every kind in this crate.
pub const GROUP: &str = "mcp-operator.dev";
/// The single served (and stored) version.
pub const VERSION: &str = "v1alpha1";

/// Go-style duration syntax accepted by Kubernetes (`30s`, `5m`, `1h30m`, `250ms`, `0`).
/// `µs` is accepted as Go does; a bare number other than `0` is not (it is ambiguous).
pub const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$";

/// A duration written as a string, as Kubernetes APIs do (`30s`, `5m`, `720h`).
///
/// Admission rejects anything `parse` would reject, with a message that shows valid forms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoDuration(pub String);

impl GoDuration {
    /// A duration from a literal known to be valid (used for defaults).
    pub fn from_static(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The duration as a [`std::time::Duration`].
    pub fn parse(&self) -> Result<StdDuration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 32,
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{}')", DURATION_PATTERN.replace('\\', "\\\\")),
                "message": "must be a duration such as 500ms, 30s, 5m or 1h30m (units: ns, us, ms, s, m, h)",
            }],
        })
    }
}

/// Why a duration string could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {why} (expected e.g. 500ms, 30s, 5m, 1h30m)")]
pub struct DurationError {
    input: String,
    why: &'static str,
}

/// Parses Go's `time.ParseDuration` syntax without sign: one or more `<number><unit>`.
pub fn parse_duration(input: &str) -> Result<StdDuration, DurationError> {
    let err = |why| DurationError {
        input: input.to_owned(),
        why,
    };
    if input.is_empty() {
        return Err(err("empty"));
    }
    let mut rest = input;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("a number must come before each unit"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    StdDuration::try_from_secs_f64(total).map_err(|_| err("out of range"))
}

/// A reference to an object in the same namespace, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Inserts `condition` into `conditions`, keyed by type, keeping `lastTransitionTime` when
/// the status did not change (so a re-written condition never looks like a transition).
/// Returns whether anything other than timestamps changed.
pub fn upsert_condition(conditions: &mut Vec<Condition>, mut condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            let changed = existing.status != condition.status
                || existing.reason != condition.reason
                || existing.message != condition.message
                || existing.observed_generation != condition.observed_generation;
            *existing = condition;
            changed
        }
        None => {
            conditions.push(condition);
            true
        }
    }
}

/// Builds a condition; `now` is used as the transition time if the status flips.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Schema for a condition list: a list-map keyed by `type`, as Kubernetes API conventions ask.
pub(crate) fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("250ms", 0.25),
            ("1.5h", 5400.0),
            ("720h", 2_592_000.0),
            ("10us", 0.00001),
            ("10µs", 0.00001),
        ];
        for (input, seconds) in cases {
            let got = parse_duration(input).unwrap().as_secs_f64();
            assert!((got - seconds).abs() < 1e-9, "{input}: {got} != {seconds}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for input in ["", "30", "00", "s", "5 m", "5x", "-5s", "1h-5m", "5mm"] {
            assert!(
                parse_duration(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn duration_pattern_agrees_with_parser() {
        let re = regex::Regex::new(DURATION_PATTERN).unwrap();
        for input in [
            "30s", "5m", "1h30m", "1.5h", "10µs", "", "30", "5x", "-5s", "5 m",
        ] {
            assert_eq!(
                re.is_match(input),
                parse_duration(input).is_ok(),
                "{input:?}"
            );
        }
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn upsert_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = vec![condition("Ready", true, "Ok", "fine", Some(1), at(100))];
        let changed = upsert_condition(
            &mut conditions,
            condition("Ready", true, "Ok", "fine", Some(1), at(200)),
        );
        assert!(!changed);
        assert_eq!(conditions[0].last_transition_time, at(100));

        let changed = upsert_condition(
            &mut conditions,
            condition("Ready", false, "Down", "gone", Some(1), at(300)),
        );
        assert!(changed);
        assert_eq!(conditions[0].last_transition_time, at(300));
        assert_eq!(conditions.len(), 1);
    }
}
