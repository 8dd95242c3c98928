//! Lenient, borrowed JSON members for decoding Lambda HTTP events without a `serde_json::Value`.
//!
//! Each type accepts any JSON where it sits and keeps what the translation reads, borrowed from the
//! event's text when the JSON has no escapes; what it does not read is skipped unparsed. They read
//! odd events exactly as the `Value`-based translation before them did (non-string scalars as their
//! JSON text, `null` as nothing, a map that is not an object as empty, a repeated key as its last
//! value in its first position), so the lenience is the platform's, not a new rule.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Any JSON value, as the translation reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Json<'a> {
    /// `null` (or missing).
    #[default]
    Null,
    /// A string.
    Str(Cow<'a, str>),
    /// A number or a boolean, as its JSON text.
    Scalar(String),
    /// An array or an object, as its JSON text.
    Composite(String),
}

impl<'a> Json<'a> {
    /// The value as text: strings as they are, `null` as empty, anything else as its JSON text.
    pub fn text(&self) -> &str {
        match self {
            Self::Null => "",
            Self::Str(s) => s,
            Self::Scalar(s) | Self::Composite(s) => s,
        }
    }

    /// The value as an owned string (see [`Json::text`]).
    pub fn into_text(self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Str(s) => s.into_owned(),
            Self::Scalar(s) | Self::Composite(s) => s,
        }
    }

    /// A string member only.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A claim: strings, numbers and booleans as text; `null`, arrays and objects are no claim.
    pub fn claim(&self) -> Option<String> {
        match self {
            Self::Null | Self::Composite(_) => None,
            Self::Str(s) => Some(s.clone().into_owned()),
            Self::Scalar(s) => Some(s.clone()),
        }
    }
}

struct JsonVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Scalar(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // serde_json's own rendering of a float (what `Value::to_string` gives).
        Ok(Json::Scalar(serde_json::Value::from(v).to_string()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Json::Composite(value.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Json::Composite(value.to_string()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor(std::marker::PhantomData))
    }
}

/// A visitor's answer to every JSON scalar (string, number, boolean, null): `$value`.
macro_rules! scalars_are {
    ($value:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// A map key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::Str(s) => Ok(Key(s)),
            other => Ok(Key(Cow::Owned(other.into_text()))),
        }
    }
}

/// An object's members in document order (a repeated key keeps its first position and its last
/// value); anything but an object is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members<'a, V>(pub Vec<(Cow<'a, str>, V)>);

impl<V> Default for Members<'_, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'a, V> Members<'a, V> {
    /// Whether the object has no members (or was not an object).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Members<'a, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor<'a, V>(std::marker::PhantomData<(&'a (), V)>);
        impl<'de: 'a, 'a, V: Deserialize<'de>> Visitor<'de> for MembersVisitor<'a, V> {
            type Value = Members<'a, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: Vec<(Cow<'a, str>, V)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key()? {
                    let value = map.next_value()?;
                    match members.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => members.push((key, value)),
                    }
                }
                Ok(Members(members))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Members::default())
            }
            scalars_are!(Members::default());
        }
        d.deserialize_any(MembersVisitor(std::marker::PhantomData))
    }
}

/// An array's items; anything but an array is empty (and says so: `is_array`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List<'a> {
    /// The items.
    pub items: Vec<Json<'a>>,
    /// Whether the value was an array at all.
    pub is_array: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for List<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ListVisitor<'a> {
            type Value = List<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List {
                    items,
                    is_array: true,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List::default())
            }
            scalars_are!(List::default());
        }
        d.deserialize_any(ListVisitor(std::marker::PhantomData))
    }
}

/// `true` only for the JSON literal `true`; anything else is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Flag(
            matches!(Json::deserialize(d)?, Json::Scalar(s) if s == "true"),
        ))
    }
}

/// An object's members that a translation reads, any other JSON being an empty object: nested
/// structs of an event decode with this, so `"authorizer": "x"` is no authorizer, as before.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lenient<T>(pub T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LenientVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for LenientVisitor<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Lenient)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(T::default()))
            }
            scalars_are!(Lenient(T::default()));
        }
        d.deserialize_any(LenientVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_the_value_based_translation_read_them() {
        let m: Members<Json> = serde_json::from_str(
            r#"{"a":"x","n":1.5,"b":true,"z":null,"o":{"k":[1]},"a":"y","e":"\u0041"}"#,
        )
        .unwrap();
        let texts: Vec<(&str, &str)> = m.0.iter().map(|(k, v)| (k.as_ref(), v.text())).collect();
        assert_eq!(
            texts,
            [
                ("a", "y"),
                ("n", "1.5"),
                ("b", "true"),
                ("z", ""),
                ("o", r#"{"k":[1]}"#),
                ("e", "A")
            ]
        );
        assert!(matches!(&m.0[0].1, Json::Str(Cow::Borrowed(_))), "no copy");
        let not_object: Members<Json> = serde_json::from_str(r#""headers""#).unwrap();
        assert!(not_object.is_empty());
        let list: List = serde_json::from_str("{}").unwrap();
        assert!(!list.is_array);
        assert_eq!(
            serde_json::from_str::<Flag>(r#""true""#).unwrap(),
            Flag(false)
        );
        assert_eq!(serde_json::from_str::<Flag>("true").unwrap(), Flag(true));
        assert_eq!(Json::Null.claim(), None);
        assert_eq!(Json::Scalar("7".into()).claim().as_deref(), Some("7"));
    }
}
