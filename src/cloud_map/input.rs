//! Checks of requests' members as AWS Cloud Map makes them (names, tags, instance
//! attributes), List filters, and pages of List answers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use super::error::CloudMapError;
use super::records::{ServiceRecord, Tag};

/// The most custom attributes one instance carries (AWS's limit).
pub const MAX_CUSTOM_ATTRIBUTES: usize = 30;
/// The most tags on one resource (AWS's limit).
pub const MAX_TAGS: usize = 200;

/// The attributes whose values Cloud Map reads itself.
pub const IPV4: &str = "AWS_INSTANCE_IPV4";
pub const IPV6: &str = "AWS_INSTANCE_IPV6";
pub const PORT: &str = "AWS_INSTANCE_PORT";
pub const CNAME: &str = "AWS_INSTANCE_CNAME";
pub const ALIAS: &str = "AWS_ALIAS_DNS_NAME";
pub const RESERVED: [&str; 7] = [
    IPV4,
    IPV6,
    PORT,
    CNAME,
    ALIAS,
    "AWS_INIT_HEALTH_STATUS",
    "AWS_EC2_INSTANCE_ID",
];

/// A filter of a List operation, as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    /// What it filters on.
    pub name: String,
    /// The values to compare with.
    pub values: Vec<String>,
    /// `EQ` (the default), `IN`, `BEGINS_WITH` or `BETWEEN`.
    pub condition: Option<String>,
}

impl Filter {
    /// Checks the condition against those `allowed` for this filter's name.
    pub fn check(&self, allowed: &[&str]) -> Result<(), CloudMapError> {
        let condition = self.condition.as_deref().unwrap_or(allowed[0]);
        if !allowed.contains(&condition) {
            return Err(invalid(format!(
                "filter {} takes the condition {}, not {condition}",
                self.name,
                allowed.join(" or ")
            )));
        }
        let counted = match condition {
            "EQ" | "BEGINS_WITH" => self.values.len() == 1,
            "BETWEEN" => self.values.len() == 2,
            _ => !self.values.is_empty(),
        };
        if !counted {
            return Err(invalid(format!(
                "filter {} with condition {condition} has {} values",
                self.name,
                self.values.len()
            )));
        }
        Ok(())
    }

    /// Whether `value` passes (after [`Filter::check`]).
    pub fn admits(&self, value: &str) -> bool {
        match self.condition.as_deref().unwrap_or("EQ") {
            "BEGINS_WITH" => value.starts_with(&self.values[0]),
            _ => self.values.iter().any(|v| v == value),
        }
    }
}

pub fn invalid(message: impl Into<String>) -> CloudMapError {
    CloudMapError::InvalidInput(message.into())
}

/// One page of a List operation's items, and the token of the next page if any.
pub type Page<T> = Result<(Vec<T>, Option<String>), CloudMapError>;

/// Splits `items` (sorted by id) into the page after `token`, of at most `max`.
pub fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    token: Option<&str>,
    max: Option<i32>,
    max_allowed: i32,
) -> Page<T> {
    let limit = match max {
        None => max_allowed.min(100),
        Some(n) if (1..=max_allowed).contains(&n) => n,
        Some(n) => {
            return Err(invalid(format!(
                "MaxResults must be from 1 to {max_allowed}, not {n}"
            )));
        }
    } as usize;
    let after = match token {
        None => None,
        Some(token) => Some(
            hex::decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| invalid(format!("NextToken {token:?} is not one meshd gave")))?,
        ),
    };
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_deref().is_none_or(|after| id(item) > after))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|last| hex::encode(id(last)))
    } else {
        None
    };
    Ok((page, next))
}

/// Checks a name-like string: `what` must be 1 to `max` printable ASCII characters.
pub fn check_printable(what: &str, value: &str, max: usize) -> Result<(), CloudMapError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(invalid(format!(
            "{what} must be 1 to {max} printable ASCII characters without spaces, not {}",
            quoted(value)
        )));
    }
    Ok(())
}

pub fn quoted(value: &str) -> String {
    if value.chars().count() <= 64 {
        format!("{value:?}")
    } else {
        let start: String = value.chars().take(64).collect();
        format!("{start:?}… ({} bytes)", value.len())
    }
}

pub fn check_optional_length(
    what: &str,
    value: Option<&str>,
    max: usize,
) -> Result<(), CloudMapError> {
    match value {
        Some(value) if value.len() > max => Err(invalid(format!(
            "{what} must be at most {max} characters, not {}",
            value.len()
        ))),
        _ => Ok(()),
    }
}

/// A DNS name: labels of 1–63 letters, digits, `-` and `_`, at most 253 in all.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub fn check_service_name(name: &str) -> Result<(), CloudMapError> {
    if name.len() <= 127 && is_dns_name(name) && !name.ends_with('.') {
        Ok(())
    } else {
        Err(invalid(format!(
            "Name must be DNS labels of letters, digits, '-' and '_' (at most 127 characters), not {}",
            quoted(name)
        )))
    }
}

pub fn check_tags(tags: &[Tag], arn: &str) -> Result<(), CloudMapError> {
    for tag in tags {
        if tag.key.is_empty() || tag.key.len() > 128 || tag.value.len() > 256 {
            return Err(invalid(format!(
                "tag keys have 1 to 128 characters and values at most 256: {}",
                quoted(&tag.key)
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(CloudMapError::TooManyTags {
            message: format!("a resource has at most {MAX_TAGS} tags, not {}", tags.len()),
            resource_name: arn.to_string(),
        });
    }
    Ok(())
}

/// Sets `new` on `tags`: a key present takes the new value.
pub fn merge_tags(tags: &mut Vec<Tag>, new: Vec<Tag>) {
    for tag in new {
        match tags.iter_mut().find(|existing| existing.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => tags.push(tag),
        }
    }
}

/// Checks an instance's attributes as Cloud Map does: keys and values printable,
/// AWS's own attributes well formed, at most [`MAX_CUSTOM_ATTRIBUTES`] others, and the
/// ones a DNS service's records need present.
pub fn check_attributes(
    attributes: &BTreeMap<String, String>,
    service: &ServiceRecord,
) -> Result<(), CloudMapError> {
    for (key, value) in attributes {
        check_printable("an attribute key", key, 255)?;
        if value.len() > 1024
            || value
                .bytes()
                .any(|b| !((b' '..=b'~').contains(&b) || b == b'\t'))
            || value.starts_with([' ', '\t'])
            || value.ends_with([' ', '\t'])
        {
            return Err(invalid(format!(
                "attribute {key}: values are at most 1,024 printable characters, not starting or ending with a space: {}",
                quoted(value)
            )));
        }
    }
    let custom = attributes
        .keys()
        .filter(|key| !RESERVED.contains(&key.as_str()))
        .count();
    if custom > MAX_CUSTOM_ATTRIBUTES {
        return Err(invalid(format!(
            "an instance carries at most {MAX_CUSTOM_ATTRIBUTES} custom attributes, not {custom}"
        )));
    }
    if let Some(v4) = attributes.get(IPV4)
        && v4.parse::<Ipv4Addr>().is_err()
    {
        return Err(invalid(format!(
            "{IPV4} is not an IPv4 address: {}",
            quoted(v4)
        )));
    }
    if let Some(v6) = attributes.get(IPV6)
        && v6.parse::<Ipv6Addr>().is_err()
    {
        return Err(invalid(format!(
            "{IPV6} is not an IPv6 address: {}",
            quoted(v6)
        )));
    }
    if let Some(port) = attributes.get(PORT)
        && port.parse::<u16>().is_err()
    {
        return Err(invalid(format!(
            "{PORT} is not a port from 0 to 65535: {}",
            quoted(port)
        )));
    }
    if let Some(status) = attributes.get("AWS_INIT_HEALTH_STATUS")
        && status != "HEALTHY"
        && status != "UNHEALTHY"
    {
        return Err(invalid(
            "AWS_INIT_HEALTH_STATUS is HEALTHY or UNHEALTHY".to_string(),
        ));
    }
    let record_types: Vec<&str> = service
        .dns_config
        .as_ref()
        .and_then(|config| config.get("DnsRecords"))
        .and_then(|records| records.as_array())
        .map(|records| {
            records
                .iter()
                .filter_map(|record| record.get("Type").and_then(|t| t.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let has = |key: &str| attributes.contains_key(key);
    for record_type in record_types {
        let present = match record_type {
            "A" => has(IPV4) || has(ALIAS),
            "AAAA" => has(IPV6) || has(ALIAS),
            "SRV" => has(PORT) && (has(IPV4) || has(IPV6)),
            "CNAME" => has(CNAME),
            _ => true,
        };
        if !present {
            return Err(invalid(format!(
                "service {} has {record_type} records: the instance needs the attributes they are made of ({})",
                service.name,
                match record_type {
                    "A" => IPV4,
                    "AAAA" => IPV6,
                    "SRV" => "AWS_INSTANCE_PORT and an address",
                    _ => CNAME,
                }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(page: &[&'static str]) -> Vec<&'static str> {
        page.to_vec()
    }

    #[test]
    fn pages_follow_their_tokens_and_refuse_foreign_ones() {
        let items = vec!["a", "b", "c"];
        let (first, token) = page(items.clone(), |s| s, None, Some(2), 100).unwrap();
        assert_eq!(ids(&first), ["a", "b"]);
        let token = token.expect("a next page");
        let (second, last) = page(items.clone(), |s| s, Some(&token), Some(2), 100).unwrap();
        assert_eq!((ids(&second), last), (vec!["c"], None));
        assert!(matches!(
            page(items.clone(), |s| s, Some("not hex"), None, 100),
            Err(CloudMapError::InvalidInput(_))
        ));
        assert!(matches!(
            page(items, |s| s, None, Some(101), 100),
            Err(CloudMapError::InvalidInput(_))
        ));
    }

    #[test]
    fn filters_check_their_condition_and_values() {
        let filter = |condition: Option<&str>, values: &[&str]| Filter {
            name: "NAME".into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            condition: condition.map(str::to_string),
        };
        assert!(filter(None, &["a"]).check(&["EQ", "BEGINS_WITH"]).is_ok());
        assert!(
            filter(Some("IN"), &["a"])
                .check(&["EQ", "BEGINS_WITH"])
                .is_err()
        );
        assert!(filter(None, &["a", "b"]).check(&["EQ"]).is_err());
        assert!(filter(Some("BEGINS_WITH"), &["lo"]).admits("local.test"));
        assert!(!filter(None, &["lo"]).admits("local.test"));
    }

    fn dns_service(record_type: &str) -> ServiceRecord {
        ServiceRecord {
            id: "srv-1".into(),
            name: "backend".into(),
            namespace_id: "ns-1".into(),
            kind: "DNS_HTTP".into(),
            description: None,
            creator_request_id: None,
            create_date: 0.0,
            dns_config: Some(serde_json::json!({"DnsRecords": [{"Type": record_type, "TTL": 60}]})),
            health_check_config: None,
            health_check_custom_config: None,
            revision: 0,
            tags: Vec::new(),
        }
    }

    #[test]
    fn attributes_are_checked_as_cloud_map_checks_them() {
        let attributes = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let a = dns_service("A");
        assert!(check_attributes(&attributes(&[(IPV4, "10.0.0.1")]), &a).is_ok());
        assert!(check_attributes(&attributes(&[(IPV4, "10.0.0.300")]), &a).is_err());
        assert!(
            check_attributes(&attributes(&[("version", "v1")]), &a).is_err(),
            "an A record needs an IPv4 address"
        );
        let srv = dns_service("SRV");
        assert!(check_attributes(&attributes(&[(IPV4, "10.0.0.1")]), &srv).is_err());
        assert!(check_attributes(&attributes(&[(IPV4, "10.0.0.1"), (PORT, "80")]), &srv).is_ok());
        assert!(check_attributes(&attributes(&[(IPV4, "10.0.0.1"), (PORT, "x")]), &srv).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_CUSTOM_ATTRIBUTES)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .chain([(IPV4.to_string(), "10.0.0.1".to_string())])
            .collect();
        assert!(check_attributes(&many, &a).is_err(), "31 custom attributes");
        assert!(
            check_attributes(&attributes(&[(IPV4, "10.0.0.1"), ("k", " padded")]), &a).is_err()
        );
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(check_service_name("backend").is_ok());
        assert!(check_service_name("_http._tcp").is_ok());
        assert!(check_service_name("bad name").is_err());
        assert!(check_service_name("-leading").is_err());
        assert!(check_service_name(&"a".repeat(64)).is_err());
        assert!(is_dns_name("local.test."));
    }
}
