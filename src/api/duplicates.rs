//! Finding a JSON object member given twice (`{"port": 1, "port": 2}`): a JSON parser
//! keeps the last one silently, so a request is refused instead, naming the member by its
//! path in the request.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The path (`spec.listeners[0].portMapping.port`) of the first member that `json`
/// gives twice in one object, if any. Input that is not JSON has none: parsing it
/// reports the syntax error.
pub fn duplicate_member(json: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let walk = Walk {
        at: String::new(),
        found: &found,
    };
    let _ = walk.deserialize(&mut deserializer);
    found.into_inner()
}

/// Walks one JSON value at path `at`; at the first duplicate member, records its path
/// in `found` and stops.
struct Walk<'f> {
    at: String,
    found: &'f RefCell<Option<String>>,
}

impl<'f> Walk<'f> {
    fn at(&self, at: String) -> Walk<'f> {
        Walk {
            at,
            found: self.found,
        }
    }

    fn member(&self, name: &str) -> Walk<'f> {
        if self.at.is_empty() {
            self.at(name.to_string())
        } else {
            self.at(format!("{}.{name}", self.at))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        while items
            .next_element_seed(self.at(format!("{}[{index}]", self.at)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = members.next_key::<String>()? {
            let walk = self.member(&name);
            if !seen.insert(name) {
                *self.found.borrow_mut() = Some(walk.at);
                return Err(de::Error::custom("duplicate member"));
            }
            members.next_value_seed(walk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_duplicate_is_named_by_its_path() {
        assert_eq!(
            duplicate_member(br#"{"a": 1, "a": 2}"#).as_deref(),
            Some("a")
        );
        assert_eq!(
            duplicate_member(br#"{"s": {"l": [{}, {"p": {"x": 1, "x": 1}}]}}"#).as_deref(),
            Some("s.l[1].p.x")
        );
        assert_eq!(duplicate_member(br#"{"a": {"b": 1}, "b": {"a": 2}}"#), None);
        assert_eq!(duplicate_member(b"{\"a\": "), None);
    }
}
