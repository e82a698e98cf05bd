//! Verifying AWS Signature Version 4 on App Mesh API requests, as AWS's front end did:
//! the canonical request of the restJson1 protocol (path encoded twice, query sorted and
//! re-encoded, the signed headers trimmed, the body's SHA-256), the credential scope
//! `<date>/<region>/appmesh/aws4_request`, and a 15-minute clock-skew window. Pure:
//! the caller passes the request's parts, the body, the secret lookup and the time.

use hmac::{KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// The only algorithm AWS clients sign App Mesh requests with.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The service name in the credential scope of App Mesh requests.
pub const SERVICE: &str = "appmesh";

/// The service name in the credential scope of Cloud Map requests.
pub const CLOUD_MAP_SERVICE: &str = "servicediscovery";

/// How far a request's time may be from the server's, either way (AWS's window).
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// Characters left as they are in a canonical query: RFC 3986's unreserved ones.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Characters left as they are in a canonical path: the unreserved ones and `/`.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why a request's signature was not accepted (each is answered with the exception
/// AWS's front end gave: see `api::auth`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Authorization` header at all.
    #[error("Missing Authentication Token")]
    Missing,
    /// An `Authorization` header that is not a complete SigV4 one.
    #[error("{0}")]
    Incomplete(String),
    /// An access key that no configured credential has.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    /// The scope names another region or service, or a date that is not the request's.
    #[error("{0}")]
    BadScope(String),
    /// The request's time is outside the skew window.
    #[error("{0}")]
    Expired(String),
    /// The signature is not the one the secret gives.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
}

/// The parts of a request that its signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `GET`, `PUT`, `DELETE`.
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    /// The query as sent (without `?`), still percent-encoded.
    pub raw_query: &'a str,
    /// Every header, names in any case; a name may repeat.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body.
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    /// The values of header `name`, joined by `,`, each trimmed with inner runs of
    /// spaces collapsed, as the canonical request has them; `None` if it is not sent.
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| collapse_spaces(&String::from_utf8_lossy(value)))
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
    /// The one value of header `name` exactly as sent; `Err` when it is sent more than
    /// once.
    fn single_header(&self, name: &str) -> Result<Option<String>, SignatureError> {
        let mut values = self
            .headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name));
        let first = values.next();
        if values.next().is_some() {
            return Err(SignatureError::Incomplete(format!(
                "the {name} header may be sent only once"
            )));
        }
        Ok(first.map(|(_, value)| String::from_utf8_lossy(value).into_owned()))
    }
}

/// What a verified request was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id.
    pub access_key: String,
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    terminator: String,
    signed_headers: Vec<String>,
    signature: String,
}

/// Checks `request`'s signature: its scope must be `region` and `service`, its time
/// within [`MAX_SKEW_SECONDS`] of `now` (Unix seconds), and its signature the one that
/// `secret_of` its access key gives.
pub fn verify(
    request: &SignedRequest<'_>,
    region: &str,
    service: &str,
    now: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Verified, SignatureError> {
    let header = request
        .single_header("authorization")?
        .ok_or(SignatureError::Missing)?;
    let auth = parse_authorization(&header)?;
    let amz_date = request.header("x-amz-date").ok_or_else(|| {
        SignatureError::Incomplete(
            "Authorization header requires existence of a 'X-Amz-Date' header.".into(),
        )
    })?;
    let signed_at = parse_amz_date(&amz_date).ok_or_else(|| {
        SignatureError::Incomplete(format!(
            "X-Amz-Date {amz_date:?} is not YYYYMMDD'T'HHMMSS'Z'"
        ))
    })?;
    if !auth.signed_headers.iter().any(|name| name == "host") {
        return Err(SignatureError::Incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    check_scope(&auth, &amz_date, region, service)?;
    check_skew(signed_at, now)?;
    let secret = secret_of(&auth.access_key).ok_or(SignatureError::UnknownAccessKey)?;
    let string_to_sign = string_to_sign(request, &auth, &amz_date)?;
    let given = hex::decode(&auth.signature).map_err(|_| SignatureError::Mismatch)?;
    let mut mac = hmac_of(&signing_key(
        &secret,
        &auth.date,
        &auth.region,
        &auth.service,
    ));
    mac.update(string_to_sign.as_bytes());
    // Constant time: the comparison must not tell how much of a guess was right.
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(Verified {
        access_key: auth.access_key,
    })
}

/// The most characters of a refused value that an error message quotes.
const MAX_QUOTED: usize = 64;

/// `value` for an error message: in full if short, else its start and its length.
fn quoted(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED {
        format!("{value:?}")
    } else {
        let start: String = value.chars().take(MAX_QUOTED).collect();
        format!("{start:?}… ({} bytes)", value.len())
    }
}

/// Parses the `Authorization` header exactly as AWS's signers write it:
/// `AWS4-HMAC-SHA256 Credential=<key>/<scope>, SignedHeaders=<a;b>, Signature=<hex>`,
/// the three parameters once each and in this order (separated by `,` and optional
/// spaces), the signature 64 lower-case hex digits.
fn parse_authorization(header: &str) -> Result<Authorization, SignatureError> {
    let Some(rest) = header
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .filter(|r| !r.starts_with(char::is_whitespace))
    else {
        return Err(SignatureError::Incomplete(format!(
            "Authorization header must start with '{ALGORITHM} ', not {}",
            quoted(header)
        )));
    };
    let mut parameters = rest.split(',').map(str::trim_start);
    let mut take = |name: &str| {
        parameters
            .next()
            .and_then(|part| part.strip_prefix(name))
            .and_then(|part| part.strip_prefix('='))
            .filter(|value| !value.is_empty() && !value.contains(char::is_whitespace))
            .ok_or_else(|| {
                SignatureError::Incomplete(format!(
                    "Authorization header requires the parameters Credential, SignedHeaders and Signature, once each and in this order; {name} is missing or malformed in {}",
                    quoted(header)
                ))
            })
    };
    let credential = take("Credential")?;
    let signed_headers = take("SignedHeaders")?;
    let signature = take("Signature")?;
    if parameters.next().is_some() {
        return Err(SignatureError::Incomplete(format!(
            "Authorization header has parameters after Signature: {}",
            quoted(header)
        )));
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(SignatureError::Incomplete(format!(
            "Signature must be 64 lower-case hexadecimal digits, not {}",
            quoted(signature)
        )));
    }
    // The access key may itself hold no `/`; the scope is the last four parts.
    let parts: Vec<&str> = credential.rsplitn(5, '/').collect();
    let [terminator, service, region, date, access_key] = parts[..] else {
        return Err(SignatureError::Incomplete(format!(
            "Credential should be <access key>/<date>/<region>/<service>/aws4_request, not {}",
            quoted(credential)
        )));
    };
    Ok(Authorization {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        terminator: terminator.to_string(),
        signed_headers: signed_headers
            .split(';')
            .map(|name| name.to_ascii_lowercase())
            .collect(),
        signature: signature.to_string(),
    })
}

fn check_scope(
    auth: &Authorization,
    amz_date: &str,
    region: &str,
    service: &str,
) -> Result<(), SignatureError> {
    if auth.terminator != "aws4_request" {
        return Err(SignatureError::BadScope(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            auth.terminator
        )));
    }
    if auth.service != service {
        return Err(SignatureError::BadScope(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    if auth.region != region {
        return Err(SignatureError::BadScope(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(SignatureError::BadScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            amz_date.get(..8).unwrap_or(amz_date)
        )));
    }
    Ok(())
}

fn check_skew(signed_at: i64, now: i64) -> Result<(), SignatureError> {
    if signed_at < now - MAX_SKEW_SECONDS {
        return Err(SignatureError::Expired(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            format_amz_date(signed_at),
            format_amz_date(now - MAX_SKEW_SECONDS),
            format_amz_date(now)
        )));
    }
    if signed_at > now + MAX_SKEW_SECONDS {
        return Err(SignatureError::Expired(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            format_amz_date(signed_at),
            format_amz_date(now + MAX_SKEW_SECONDS),
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// The string to sign of `request` under `auth`: the algorithm, the time, the scope and
/// the hash of the canonical request.
fn string_to_sign(
    request: &SignedRequest<'_>,
    auth: &Authorization,
    amz_date: &str,
) -> Result<String, SignatureError> {
    let canonical = canonical_request(request, &auth.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/{}",
        auth.date, auth.region, auth.service, auth.terminator
    );
    Ok(format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    ))
}

/// The canonical request of SigV4 for services other than S3.
fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &[String],
) -> Result<String, SignatureError> {
    let body_hash = hex::encode(Sha256::digest(request.body));
    if let Some(declared) = request.header("x-amz-content-sha256")
        && declared != body_hash
    {
        return Err(SignatureError::Mismatch);
    }
    let mut headers = String::new();
    for name in signed_headers {
        let value = request.header(name).unwrap_or_default();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&value);
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{body_hash}",
        request.method,
        canonical_path(request.raw_path),
        canonical_query(request.raw_query),
        signed_headers.join(";"),
    ))
}

/// The path as it was received, percent-encoded once more (so `%2F` becomes `%252F`),
/// `/` kept: what AWS clients sign for every service but S3. Clients remove dot segments
/// before they sign; meshd does not, and refuses paths that have them before this check
/// (`api::path`), so a path verifies only as the bytes that are routed.
fn canonical_path(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_string();
    }
    utf8_percent_encode(raw_path, PATH_UNRESERVED).to_string()
}

/// The query's pairs decoded, encoded again with only unreserved characters left as
/// they are, sorted by name and then value, joined by `&`.
fn canonical_query(raw_query: &str) -> String {
    let encode = |part: &str| {
        let decoded = percent_decode_str(part).collect::<Vec<u8>>();
        percent_encoding::percent_encode(&decoded, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac_of(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = hmac_of(key);
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signing key of `secret` for one day, region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let key = hmac(format!("AWS4{secret}").as_bytes(), date);
    let key = hmac(&key, region);
    let key = hmac(&key, service);
    hmac(&key, "aws4_request")
}

/// `YYYYMMDDTHHMMSSZ` as Unix seconds.
fn parse_amz_date(value: &str) -> Option<i64> {
    let bytes = value.as_bytes();
    if bytes.len() != 16
        || bytes[8] != b'T'
        || bytes[15] != b'Z'
        || !value[..8]
            .bytes()
            .chain(value[9..15].bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| value[range].parse::<u32>().ok();
    let month = time::Month::try_from(number(4..6)? as u8).ok()?;
    let date =
        time::Date::from_calendar_date(number(0..4)? as i32, month, number(6..8)? as u8).ok()?;
    let time = time::Time::from_hms(
        number(9..11)? as u8,
        number(11..13)? as u8,
        number(13..15)? as u8,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Unix seconds as `YYYYMMDDTHHMMSSZ`.
fn format_amz_date(seconds: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// Signs like a client: the string to sign of `request` under `auth`, then the HMAC.
    fn sign(request: &SignedRequest<'_>, auth: &Authorization, amz_date: &str) -> String {
        let string_to_sign = string_to_sign(request, auth, amz_date).unwrap();
        let key = signing_key(SECRET, &auth.date, &auth.region, &auth.service);
        hex::encode(hmac(&key, &string_to_sign))
    }

    #[test]
    fn the_signing_key_and_signature_match_awss_published_example() {
        // AWS's documented example (IAM ListUsers, 2015-08-30): the signing key and the
        // signature its documentation prints.
        let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let headers: [(&str, &[u8]); 3] = [
            (
                "Content-Type",
                b"application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", b"iam.amazonaws.com"),
            ("X-Amz-Date", b"20150830T123600Z"),
        ];
        let request = SignedRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let auth = Authorization {
            access_key: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
            terminator: "aws4_request".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: String::new(),
        };
        assert_eq!(
            sign(&request, &auth, "20150830T123600Z"),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn paths_are_encoded_twice_as_they_are() {
        assert_eq!(
            canonical_path("/v20190125/meshes/weird%20name%2F%C3%A9%3Ax"),
            "/v20190125/meshes/weird%2520name%252F%25C3%25A9%253Ax"
        );
        assert_eq!(canonical_path("/a/./b/../c/"), "/a/./b/../c/");
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(canonical_path(""), "/");
    }

    #[test]
    fn queries_are_decoded_sorted_and_encoded_once() {
        assert_eq!(
            canonical_query("nextToken=a%20b%2Bc%2F%3D&limit=2&flag"),
            "flag=&limit=2&nextToken=a%20b%2Bc%2F%3D"
        );
        assert_eq!(canonical_query("b=2&a=~x&a=1"), "a=1&a=~x&b=2");
        assert_eq!(canonical_query(""), "");
    }

    fn appmesh_request<'a>(headers: &'a [(&'a str, &'a [u8])]) -> SignedRequest<'a> {
        SignedRequest {
            method: "PUT",
            raw_path: "/v20190125/meshes/m%20x",
            raw_query: "",
            headers,
            body: br#"{"spec":{}}"#,
        }
    }

    fn appmesh_auth(date: &str) -> Authorization {
        Authorization {
            access_key: "AKIDEXAMPLE".into(),
            date: date[..8].into(),
            region: "us-east-1".into(),
            service: SERVICE.into(),
            terminator: "aws4_request".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: String::new(),
        }
    }

    fn authorization_header(auth: &Authorization, signature: &str) -> String {
        format!(
            "{ALGORITHM} Credential={}/{}/{}/{}/{}, SignedHeaders={}, Signature={signature}",
            auth.access_key,
            auth.date,
            auth.region,
            auth.service,
            auth.terminator,
            auth.signed_headers.join(";")
        )
    }

    /// Verifies a request signed at `signed` (with the header `authorization` made by
    /// `make_header` from the right signature) at `now`.
    fn check(
        amz_date: &str,
        now: i64,
        make_header: impl Fn(&Authorization, &str) -> String,
    ) -> Result<Verified, SignatureError> {
        let auth = appmesh_auth(amz_date);
        let unsigned: [(&str, &[u8]); 3] = [
            ("content-type", b"application/json"),
            ("host", b"127.0.0.1:8080"),
            ("x-amz-date", amz_date.as_bytes()),
        ];
        let right = sign(&appmesh_request(&unsigned), &auth, amz_date);
        let header = make_header(&auth, &right);
        let signed: [(&str, &[u8]); 4] = [
            unsigned[0],
            unsigned[1],
            unsigned[2],
            ("authorization", header.as_bytes()),
        ];
        verify(
            &appmesh_request(&signed),
            "us-east-1",
            SERVICE,
            now,
            |key| (key == "AKIDEXAMPLE").then(|| SECRET.to_string()),
        )
    }

    /// Only the header AWS's signers write is accepted: one space after the algorithm,
    /// each of the three parameters once and in order, a lower-case hex signature.
    #[test]
    fn only_the_header_aws_signers_write_is_accepted() {
        let date = "20261126T010000Z";
        let at = parse_amz_date(date).unwrap();
        assert!(check(date, at, authorization_header).is_ok());
        type Edit = fn(String) -> String;
        let lenient: [(&str, Edit); 6] = [
            ("upper-case hex", |h| {
                let (head, signature) = h.rsplit_once('=').unwrap();
                format!("{head}={}", signature.to_ascii_uppercase())
            }),
            ("a second Signature", |h| {
                let signature = h.rsplit_once('=').unwrap().1.to_string();
                format!("{h}, Signature={signature}")
            }),
            ("no space after the algorithm", |h| {
                h.replacen(" Credential", "Credential", 1)
            }),
            ("two spaces after the algorithm", |h| {
                h.replacen(" Credential", "  Credential", 1)
            }),
            ("an unknown parameter", |h| {
                h.replacen(", Signature", ", Extra=1, Signature", 1)
            }),
            ("the parameters out of order", |h| {
                let (rest, signature) = h.split_once(", Signature=").unwrap();
                let (algorithm_credential, signed) = rest.split_once(", SignedHeaders=").unwrap();
                format!("{algorithm_credential}, Signature={signature}, SignedHeaders={signed}")
            }),
        ];
        for (what, edit) in lenient {
            let refused = check(date, at, |auth, right| {
                edit(authorization_header(auth, right))
            });
            assert!(
                matches!(refused, Err(SignatureError::Incomplete(_))),
                "{what}: {refused:?}"
            );
        }
    }

    /// A refusal quotes at most a short piece of what it refuses.
    #[test]
    fn errors_quote_a_bounded_part_of_the_header() {
        let date = "20261126T010000Z";
        let at = parse_amz_date(date).unwrap();
        let huge = "x".repeat(300_000);
        for header in [
            format!("{ALGORITHM} {huge}"),
            format!("Bearer {huge}"),
            format!("{ALGORITHM} Credential={huge}, SignedHeaders=host, Signature=00"),
        ] {
            let err = check(date, at, |_, _| header.clone()).unwrap_err();
            assert!(
                err.to_string().len() < 400,
                "{} bytes",
                err.to_string().len()
            );
        }
    }

    #[test]
    fn a_request_is_accepted_only_with_its_own_signature_in_time() {
        let date = "20261126T010000Z";
        let at = parse_amz_date(date).unwrap();
        assert_eq!(
            check(date, at, authorization_header),
            Ok(Verified {
                access_key: "AKIDEXAMPLE".into()
            })
        );
        // Within the window either way, and just outside it.
        assert!(check(date, at + MAX_SKEW_SECONDS, authorization_header).is_ok());
        assert!(check(date, at - MAX_SKEW_SECONDS, authorization_header).is_ok());
        let late = check(date, at + MAX_SKEW_SECONDS + 1, authorization_header).unwrap_err();
        assert_eq!(
            late.to_string(),
            "Signature expired: 20261126T010000Z is now earlier than 20261126T010001Z (20261126T011501Z - 15 min.)"
        );
        assert!(matches!(
            check(date, at - MAX_SKEW_SECONDS - 1, authorization_header),
            Err(SignatureError::Expired(_))
        ));
        // Another signature, another key, another scope.
        let flipped = |auth: &Authorization, right: &str| {
            let mut wrong = right.to_string();
            let last = if wrong.ends_with('0') { "1" } else { "0" };
            wrong.replace_range(63.., last);
            authorization_header(auth, &wrong)
        };
        assert_eq!(check(date, at, flipped), Err(SignatureError::Mismatch));
        let unknown = |auth: &Authorization, right: &str| {
            authorization_header(auth, right).replace("AKIDEXAMPLE", "AKIDOTHER")
        };
        assert_eq!(
            check(date, at, unknown),
            Err(SignatureError::UnknownAccessKey)
        );
        let elsewhere = |auth: &Authorization, right: &str| {
            authorization_header(auth, right).replace("/us-east-1/", "/eu-west-1/")
        };
        assert!(matches!(
            check(date, at, elsewhere),
            Err(SignatureError::BadScope(message)) if message.contains("'eu-west-1'")
        ));
        let other_service = |auth: &Authorization, right: &str| {
            authorization_header(auth, right).replace("/appmesh/", "/iam/")
        };
        assert!(matches!(
            check(date, at, other_service),
            Err(SignatureError::BadScope(_))
        ));
        let no_host = |auth: &Authorization, right: &str| {
            authorization_header(auth, right).replace(";host;", ";")
        };
        assert!(matches!(
            check(date, at, no_host),
            Err(SignatureError::Incomplete(_))
        ));
        let no_signature = |auth: &Authorization, right: &str| {
            authorization_header(auth, right).replace(&format!(", Signature={right}"), "")
        };
        assert!(matches!(
            check(date, at, no_signature),
            Err(SignatureError::Incomplete(message)) if message.contains("Signature is missing")
        ));
    }

    #[test]
    fn dates_parse_and_format_back() {
        let seconds = parse_amz_date("20261126T010203Z").unwrap();
        assert_eq!(format_amz_date(seconds), "20261126T010203Z");
        assert_eq!(parse_amz_date("20261326T010203Z"), None);
        assert_eq!(parse_amz_date("2026-11-26T01:02:03Z"), None);
    }
}
