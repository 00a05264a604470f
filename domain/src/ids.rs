//! The shape every org and resource id must have (`api.md` section 0).

/// The longest id accepted, in bytes (all allowed characters are ASCII).
pub const MAX_ID_LEN: usize = 64;

/// Whether `s` matches `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`.
///
/// Ids end up in stream names, URLs and log lines, so anything outside this small ASCII alphabet
/// is refused rather than escaped.
pub fn is_valid_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= MAX_ID_LEN
                && first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    }
}

/// The message a field error carries when an id is malformed.
pub const INVALID_ID_MESSAGE: &str =
    "must be 1-64 characters: letters, digits, '_', '.' or '-', starting with a letter or digit";

/// Reads an optional client-chosen `id` from a request body: absent or `null` is `None`, a
/// malformed one is a field error.
pub fn optional_id(
    object: &serde_json::Map<String, serde_json::Value>,
    errors: &mut Vec<crate::error::FieldError>,
) -> Option<String> {
    match object.get("id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) if is_valid_id(id) => Some(id.clone()),
        Some(_) => {
            errors.push(crate::error::FieldError::new("id", INVALID_ID_MESSAGE));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The id pattern as `api.md` section 0 writes it: the oracle, not a second implementation.
    fn documented_pattern() -> regex::Regex {
        regex::Regex::new("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$").unwrap()
    }

    #[test]
    fn accepts_the_ids_the_seed_uses() {
        for id in [
            "aud-spring-prospects",
            "tpl-spring-launch",
            "camp-1",
            "a",
            "A.b_c-9",
        ] {
            assert!(is_valid_id(id), "{id}");
        }
    }

    #[test]
    fn refuses_empty_leading_punctuation_spaces_and_non_ascii() {
        for id in ["", "-a", "_a", ".a", "a b", "a/b", "é", "a\u{0}", "camp:1"] {
            assert!(!is_valid_id(id), "{id:?}");
        }
    }

    #[test]
    fn allows_exactly_sixty_four_characters() {
        assert!(is_valid_id(&"a".repeat(64)));
        assert!(!is_valid_id(&"a".repeat(65)));
    }

    proptest! {
        #[test]
        fn agrees_with_the_documented_pattern(
            s in prop_oneof![
                "\\PC{0,70}",
                // Near the boundary: any first character before a valid rest, a stray
                // character after a valid start, lengths around 64.
                "[A-Za-z0-9_.:/ \u{e9}-][A-Za-z0-9_.-]{0,66}",
                "[A-Za-z0-9][A-Za-z0-9_.:/ \u{e9}-]{0,66}",
                "[A-Za-z0-9][A-Za-z0-9_.-]{60,66}",
            ]
        ) {
            prop_assert_eq!(is_valid_id(&s), documented_pattern().is_match(&s), "{:?}", s);
        }

        #[test]
        fn accepts_every_string_built_from_the_alphabet(s in "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}") {
            prop_assert!(is_valid_id(&s));
        }
    }
}
