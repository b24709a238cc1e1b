//! Text that people type: emails (A1) and passkey names (P1). Both are normalised to Unicode
//! NFC and refuse invisible and control characters (general categories Cc and Cf: controls,
//! bidi overrides such as U+202E, zero-width characters such as U+200B), which would let two
//! strings that look the same be different, or one string look like another.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

use crate::error::{Error, Result};

/// An email as the engine keeps it.
pub(crate) struct Email {
    /// Trimmed and NFC, case as given: what the account shows.
    pub display: String,
    /// Also lowercased (full Unicode mapping) and NFC again: what makes two emails one account.
    pub canonical: String,
}

fn nfc(s: &str) -> String {
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(s)
        .into_owned()
}

/// Whether `c` is a control or format character (Cc, Cf).
fn invisible(c: char) -> bool {
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Control | GeneralCategory::Format
    )
}

/// A1: trimmed, NFC, one `@` with text on both sides, at most 254 bytes, no whitespace inside,
/// no Cc or Cf characters. Compared case-insensitively.
pub(crate) fn email(input: &str) -> Result<Email> {
    let display = nfc(input.trim());
    let bad = |why: &str| Error::invalid(format!("email {why}"));
    if display.is_empty() {
        return Err(bad("is empty"));
    }
    if display.len() > 254 {
        return Err(bad("is longer than 254 bytes"));
    }
    if display.chars().any(invisible) {
        return Err(bad(
            "contains a control, format, bidi or zero-width character",
        ));
    }
    if display.chars().any(char::is_whitespace) {
        return Err(bad("contains a space"));
    }
    let mut parts = display.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("must have exactly one @, like name@example.com"));
    };
    if local.is_empty() || domain.is_empty() {
        return Err(bad("must have text on both sides of the @"));
    }
    let canonical = nfc(&display.to_lowercase());
    Ok(Email { display, canonical })
}

/// P1: a passkey name, 1 to 64 characters after trimming, NFC, no Cc or Cf characters.
pub(crate) fn passkey_name(input: &str) -> Result<String> {
    let name = nfc(input.trim());
    let chars = name.chars().count();
    if !(1..=64).contains(&chars) {
        return Err(Error::invalid("a passkey name is 1 to 64 characters"));
    }
    if name.chars().any(invisible) {
        return Err(Error::invalid(
            "a passkey name cannot contain control, format, bidi or zero-width characters",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1_nfc_and_nfd_forms_and_case_are_one_account() {
        let nfc_form = email("Jörg@Example.com").unwrap();
        let nfd_form = email(" jo\u{308}rg@example.COM ").unwrap();
        assert_eq!(nfc_form.canonical, nfd_form.canonical);
        assert_eq!(nfc_form.display, "Jörg@Example.com");
        assert_eq!(nfd_form.display, "jörg@example.COM");
    }

    #[test]
    fn a1_invisible_and_bidi_characters_are_refused() {
        for bad in [
            "ada@example.com\u{200b}",
            "ada\u{202e}moc.elpmaxe@x",
            "ad\u{0007}a@example.com",
            "ada@exa\u{feff}mple.com",
            "a b@example.com",
            "ada@@example.com",
            "@example.com",
            "ada@",
            "ada.example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert!(email(&long).is_err());
        assert!(email(&format!("{}@example.com", "a".repeat(242))).is_ok());
    }

    #[test]
    fn a1_full_unicode_lowercase() {
        // Full Unicode lowercase, final sigma included.
        assert_eq!(email("ΑΣ@Example.com").unwrap().canonical, "ας@example.com");
        assert_eq!(email("ÀDA@x").unwrap().canonical, "àda@x");
    }

    #[test]
    fn p1_names_refuse_invisible_characters() {
        assert_eq!(passkey_name("  Laptop ").unwrap(), "Laptop");
        assert!(passkey_name("Lap\u{200b}top").is_err());
        assert!(passkey_name("\u{202e}potpaL").is_err());
        assert!(passkey_name("").is_err());
        assert!(passkey_name(&"x".repeat(65)).is_err());
        assert!(passkey_name(&"é".repeat(64)).is_ok());
    }
}
