//! Opaque, stable pagination tokens: each names the last item of the page before, so a
//! page after concurrent writes still continues in name order without repeats.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::ApiError;

const TOKEN_PREFIX: &str = "meshd1:";

/// The `nextToken` that continues a listing after the item named `last`.
pub fn encode(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last}"))
}

/// The name after which a listing continues, from a `nextToken`.
pub fn decode(token: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("nextToken: is not a token that this service issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(TOKEN_PREFIX)
        .map(str::to_string)
        .ok_or_else(invalid)
}

/// One page of `items` (already sorted and starting after the token's item) of at most
/// `limit`, and the token for the next page if more remain.
pub fn page<T>(
    items: impl Iterator<Item = T>,
    limit: usize,
    name: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let mut items = items.peekable();
    let mut page = Vec::new();
    while page.len() < limit {
        match items.next() {
            Some(item) => page.push(item),
            None => break,
        }
    }
    let next = match (items.peek(), page.last()) {
        (Some(_), Some(last)) => Some(encode(&name(last))),
        _ => None,
    };
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_foreign_ones() {
        assert_eq!(decode(&encode("a b+c/=")).unwrap(), "a b+c/=");
        assert!(decode("not-a-token").is_err());
        let (items, next) = page(1..=5, 2, |n| n.to_string());
        assert_eq!(items, vec![1, 2]);
        assert_eq!(decode(&next.unwrap()).unwrap(), "2");
        let (items, next) = page(1..=2, 2, |n| n.to_string());
        assert_eq!(items, vec![1, 2]);
        assert!(next.is_none());
    }
}
