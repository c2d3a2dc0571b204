//! Serde helpers for the shared (`Arc`) fields of an alert state: they
//! serialize exactly like the plain values they replace, so the persisted
//! JSON does not change, and copying a state only bumps reference counts.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "shared")]` for `Arc<T>`.
pub mod arc {
    use super::*;

    pub fn serialize<T: Serialize, S: Serializer>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
        T::serialize(v, s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}

/// `#[serde(with = "shared::text")]` for `Arc<str>`.
pub mod text {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        <std::borrow::Cow<'de, str>>::deserialize(d).map(|t| Arc::from(&*t))
    }
}

/// `#[serde(with = "shared::opt_text")]` for `Option<Arc<str>>`.
pub mod opt_text {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Option::<std::borrow::Cow<'de, str>>::deserialize(d).map(|t| t.map(|t| Arc::from(&*t)))
    }
}
