//! The building blocks of validation: a field-path error and the checks the generated
//! spec code calls for each constraint kind of the API model.

use std::sync::OnceLock;

use parking_lot::Mutex;
use regex::Regex;
use std::collections::HashMap;

use super::spec::{Duration, DurationUnit};

/// A request field that breaks a rule, with the path that names it
/// (`spec.listeners[0].portMapping.port`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Where the offending value sits in the request, in JSON member names.
    pub path: String,
    /// What rule it breaks, in words.
    pub message: String,
}

impl FieldError {
    /// An error at `path` with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A shape whose every constraint of the API model can be checked.
pub trait Validate {
    /// Checks this value, which sits at `at` in the request; returns the first broken rule.
    fn validate(&self, at: &str) -> Result<(), FieldError>;
}

/// A string's length in characters must be within `min..=max`.
pub fn check_length(value: &str, min: usize, max: usize, at: &str) -> Result<(), FieldError> {
    let len = value.chars().count();
    if len >= min && len <= max {
        return Ok(());
    }
    let message = match (min, max) {
        (0, max) => format!("must be at most {max} characters long"),
        (min, usize::MAX) => format!("must be at least {min} characters long"),
        (min, max) => format!("must be between {min} and {max} characters long"),
    };
    Err(FieldError::new(at, message))
}

/// A number must be within `min..=max`.
pub fn check_range(value: i64, min: i64, max: i64, at: &str) -> Result<(), FieldError> {
    if value >= min && value <= max {
        return Ok(());
    }
    let message = match (min, max) {
        (i64::MIN, max) => format!("must be at most {max}"),
        (min, i64::MAX) => format!("must be at least {min}"),
        (min, max) => format!("must be between {min} and {max}"),
    };
    Err(FieldError::new(at, message))
}

/// A list must hold between `min` and `max` items.
pub fn check_count(len: usize, min: usize, max: usize, at: &str) -> Result<(), FieldError> {
    if len >= min && len <= max {
        return Ok(());
    }
    let message = match (min, max) {
        (min, max) if min == max => format!("must contain exactly {min} item(s)"),
        (0, max) => format!("must contain at most {max} item(s)"),
        (min, usize::MAX) => format!("must contain at least {min} item(s)"),
        (min, max) => format!("must contain between {min} and {max} items"),
    };
    Err(FieldError::new(at, message))
}

/// A string must match a pattern of the API model.
pub fn check_pattern(value: &str, pattern: &'static str, at: &str) -> Result<(), FieldError> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let matches = {
        let mut cache = cache.lock();
        let regex = cache.entry(pattern).or_insert_with(|| {
            Regex::new(pattern).expect("the API model's patterns are valid regexes; this is a bug")
        });
        regex.is_match(value)
    };
    if matches {
        Ok(())
    } else {
        Err(FieldError::new(
            at,
            format!("must match the pattern {pattern}"),
        ))
    }
}

/// The longest duration Envoy accepts, in seconds (about 292 years): it keeps
/// durations as 64-bit nanoseconds and refuses a protobuf `Duration` of
/// `i64::MAX / 10^9` seconds or more, far below the 315,576,000,000 s that protobuf
/// itself allows.
pub const MAX_DURATION_SECONDS: i64 = i64::MAX / 1_000_000_000 - 1;

/// An App Mesh duration must be one Envoy accepts: at most [`MAX_DURATION_SECONDS`]
/// seconds (in milliseconds, up to the last millisecond of that second).
pub fn check_duration(duration: &Duration, at: &str) -> Result<(), FieldError> {
    let (Some(value), Some(unit)) = (duration.value, duration.unit) else {
        return Ok(());
    };
    let max = match unit {
        DurationUnit::S => MAX_DURATION_SECONDS,
        DurationUnit::Ms => MAX_DURATION_SECONDS * 1000 + 999,
    };
    if value <= max {
        return Ok(());
    }
    Err(FieldError::new(
        format!("{at}.value"),
        format!(
            "must be at most {max} ({}), the longest duration Envoy accepts",
            unit.as_str()
        ),
    ))
}

/// A resource's name: 1 to 255 characters (the model's `ResourceName`; a virtual
/// service's `ServiceName` likewise), no control characters, no `/` (it separates the
/// parts of ARNs and of Envoy node ids, so such a name could never be told apart or
/// served), and not `.` or `..` (path segments that clients remove before they send).
pub fn check_resource_name(value: &str, at: &str) -> Result<(), FieldError> {
    check_length(value, 1, 255, at)?;
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(at, "must not contain control characters"));
    }
    if value.contains('/') {
        return Err(FieldError::new(at, "must not contain /"));
    }
    if value == "." || value == ".." {
        return Err(FieldError::new(at, "must not be . or .."));
    }
    Ok(())
}

/// The longest DNS name, in characters, not counting a trailing dot.
pub const MAX_DNS_NAME: usize = 253;

/// A hostname: an IP address, or a DNS name of at most [`MAX_DNS_NAME`] characters
/// (with an optional trailing dot) whose labels are 1 to 63 letters, digits, `-` or `_`.
pub fn check_hostname(value: &str, at: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(at, "must not be empty"));
    }
    if value.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    if name.len() > MAX_DNS_NAME {
        return Err(FieldError::new(
            at,
            format!("must be a DNS name of at most {MAX_DNS_NAME} characters or an IP address"),
        ));
    }
    for (index, label) in name.split('.').enumerate() {
        let number = index + 1;
        if label.is_empty() || label.len() > 63 {
            return Err(FieldError::new(
                at,
                format!("label {number} must be 1 to 63 characters long"),
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(FieldError::new(
                at,
                format!("label {number} may contain only letters, digits, - and _"),
            ));
        }
    }
    Ok(())
}

/// A union shape must have exactly one member set.
pub fn union_member_count(set: &[bool], names: &[&str], at: &str) -> Result<(), FieldError> {
    match set.iter().filter(|is_set| **is_set).count() {
        1 => Ok(()),
        _ => Err(FieldError::new(
            at,
            format!("exactly one of {} must be set", names.join(", ")),
        )),
    }
}

/// A string that the model leaves unconstrained must still not be empty where meshd needs a value.
pub fn check_not_empty(value: &str, at: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        Err(FieldError::new(at, "must not be empty"))
    } else {
        Ok(())
    }
}

/// A regular expression that Envoy will compile (RE2 syntax, which the `regex` crate follows).
pub fn check_regex(value: &str, at: &str) -> Result<(), FieldError> {
    Regex::new(value).map(|_| ()).map_err(|err| {
        FieldError::new(
            at,
            format!(
                "is not a valid regular expression: {}",
                first_line(&err.to_string())
            ),
        )
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .rfind(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_bounds() {
        assert_eq!(
            check_range(70000, 1, 65535, "spec.port")
                .unwrap_err()
                .to_string(),
            "spec.port: must be between 1 and 65535"
        );
        assert_eq!(
            check_length("", 1, 255, "meshName")
                .unwrap_err()
                .to_string(),
            "meshName: must be between 1 and 255 characters long"
        );
        assert_eq!(
            check_count(0, 1, 10, "x").unwrap_err().message,
            "must contain between 1 and 10 items"
        );
        assert!(check_pattern("a b", "^[a-zA-Z0-9!-~]+$", "k").is_err());
        assert!(check_pattern("ab", "^[a-zA-Z0-9!-~]+$", "k").is_ok());
        assert!(check_regex("(", "r").is_err());
    }
}
