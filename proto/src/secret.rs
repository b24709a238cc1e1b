//! Keeping secrets out of `Debug`, error messages and memory.
//!
//! - [`redacting_debug!`] writes a `Debug` that prints every listed field but shows secrets as
//!   `<redacted>`;
//! - [`zeroize_on_drop!`] overwrites the secret strings of a request when it is dropped;
//! - the `string`-like functions here deserialize a secret member and, when its JSON type is
//!   wrong, answer a message that names the member instead of serde's default, which quotes the
//!   value (`invalid type: integer 31415926535, expected a string`).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// A value shown as `<redacted>` by `Debug`, keeping only its shape (absent, or how many).
pub(crate) trait Redact {
    fn redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl Redact for String {
    fn redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            None => f.write_str("None"),
            Some(v) => {
                f.write_str("Some(")?;
                v.redacted(f)?;
                f.write_str(")")
            }
        }
    }
}

impl<T> Redact for Vec<T> {
    fn redacted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[<redacted>; {}]", self.len())
    }
}

/// `Debug` adapter for a secret field.
pub(crate) struct Redacted<'a, T: Redact>(pub(crate) &'a T);

impl<T: Redact> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.redacted(f)
    }
}

/// `redacting_debug!(Type { public, fields } secret { password })`.
macro_rules! redacting_debug {
    ($t:ident { $($field:ident),* $(,)? } secret { $($secret:ident),+ $(,)? }) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &$crate::secret::Redacted(&self.$secret)))+
                    .finish()
            }
        }
    };
}
pub(crate) use redacting_debug;

/// Strings and lists of strings that can be overwritten in place.
pub(crate) trait Wipe {
    fn wipe(&mut self);
}

impl Wipe for String {
    fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

impl<T: Wipe> Wipe for Option<T> {
    fn wipe(&mut self) {
        if let Some(v) = self {
            v.wipe();
        }
    }
}

impl<T: Wipe> Wipe for Vec<T> {
    fn wipe(&mut self) {
        for v in self.iter_mut() {
            v.wipe();
        }
    }
}

/// `zeroize_on_drop!(Type { password, code })`: the listed secrets are overwritten when the
/// value is dropped. Only for requests: answers are moved apart by generated bindings, which a
/// `Drop` type forbids.
macro_rules! zeroize_on_drop {
    ($t:ident { $($secret:ident),+ $(,)? }) => {
        impl Drop for $t {
            fn drop(&mut self) {
                $($crate::secret::Wipe::wipe(&mut self.$secret);)+
            }
        }
    };
}
pub(crate) use zeroize_on_drop;

/// Deserializes a secret string; a value of another JSON type is refused by the member's name.
macro_rules! secret_fields {
    ($($fn:ident => $member:literal),+ $(,)?) => {$(
        pub(crate) fn $fn<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
            d.deserialize_any(SecretString($member))
        }
    )+};
}

secret_fields! {
    password => "password",
    current_password => "current_password",
    new_password => "new_password",
    code => "code",
    pending_token => "pending_token",
    secret => "secret",
}

/// An optional secret string (`null` or absent is `None`).
pub(crate) fn device_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(OptionalSecret("device_token"))
}

struct SecretString(&'static str);

fn wrong_type<E: de::Error>(member: &str) -> E {
    E::custom(format!("{member} must be a string"))
}

impl<'de> Visitor<'de> for SecretString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as a string", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_char<E: de::Error>(self, _: char) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(wrong_type(self.0))
    }
    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<String, D::Error> {
        Err(wrong_type(self.0))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(wrong_type(self.0))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(wrong_type(self.0))
    }
}

struct OptionalSecret(&'static str);

impl<'de> Visitor<'de> for OptionalSecret {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as a string or null", self.0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(SecretString(self.0)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Context, CreateAccount};

    #[test]
    fn a_secret_of_the_wrong_type_is_named_not_quoted() {
        let e = serde_json::from_str::<CreateAccount>(
            r#"{"email":"ada@example.com","password":31415926535}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("password must be a string"), "{e}");
        assert!(!e.contains("31415926535"), "{e}");
        let e = serde_json::from_str::<Context>(r#"{"device_token":[27182818]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("device_token must be a string"), "{e}");
        assert!(!e.contains("27182818"), "{e}");
    }
}
