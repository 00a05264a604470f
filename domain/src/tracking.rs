//! Tracking tokens (the signed `?t=` of open, click and unsubscribe URLs) and the email rewriting
//! that puts them into a message: every `href` to a click URL, plus an open pixel.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, "herald-tracking-v1\n" +
//! first part))`. The claims bind org, campaign, run, contact, channel, what the URL does and, for
//! a click, the link's index and target, so the click route can redirect without a lookup and a
//! token can never be turned into an open redirect or moved to another contact. The key
//! (`HERALD_TRACKING_SECRET`) comes in as a parameter: nothing here reads the environment.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::spec::Channel;

/// Separates these MACs from any other use of the same key.
const DOMAIN: &[u8] = b"herald-tracking-v1\n";

/// The longest token [`verify`] looks at; longer ones are refused before any work.
pub const MAX_TOKEN_CHARS: usize = 8 * 1024;

/// What a tracking URL records when it is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackingKind {
    Open,
    Click,
    Unsubscribe,
}

/// What a token says, signed. Field names are one letter to keep URLs short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingClaims {
    #[serde(rename = "o")]
    pub org_id: String,
    #[serde(rename = "c")]
    pub campaign_id: String,
    #[serde(rename = "r")]
    pub run_id: String,
    /// A drip or milestone step's id: the `:stepId` of the URL path (the run's id otherwise).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(rename = "p")]
    pub contact_id: String,
    #[serde(rename = "h")]
    pub channel: Channel,
    #[serde(rename = "k")]
    pub kind: TrackingKind,
    /// A click's link: its 0-based index among the message's rewritten links.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u32>,
    /// A click's target URL.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the token stops working (Unix seconds); tokens without one never expire.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// How long tracking links work after the send: a year.
pub const TOKEN_LIFETIME_SECS: i64 = 365 * 24 * 3600;

/// Why a token was refused. Callers answer all of them the same way (`404`, no redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

fn mac(key: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(DOMAIN);
    mac.update(payload);
    mac
}

/// Signs `claims` with `key`. The result is URL-safe (base64url and one `.`).
pub fn sign(key: &[u8], claims: &TrackingClaims) -> String {
    let json = serde_json::to_vec(claims).expect("claims are plain strings and numbers");
    let payload = URL_SAFE_NO_PAD.encode(json);
    let tag = mac(key, payload.as_bytes()).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks a token's signature (in constant time) and returns its claims.
pub fn verify(key: &[u8], token: &str) -> Result<TrackingClaims, TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    mac(key, payload.as_bytes())
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

/// [`verify`], then refuses a token whose expiry is before `now` (Unix seconds).
pub fn verify_at(key: &[u8], token: &str, now: i64) -> Result<TrackingClaims, TokenError> {
    let claims = verify(key, token)?;
    match claims.expires {
        Some(expires) if expires < now => Err(TokenError::Expired),
        _ => Ok(claims),
    }
}

/// Whether a link is one a click URL may wrap: `http` or `https`. `mailto:`, `tel:`, anchors
/// and relative links stay as written (a redirect would break them).
pub fn is_trackable(url: &str) -> bool {
    let lower = url.trim_start().get(..8).unwrap_or("").to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Rewrites the value of every `href` attribute in `html`. `rewrite` gets the link's index
/// among the rewritten ones so far and its URL (HTML entities decoded), and returns the
/// replacement, or `None` to keep the link as it is. Comments are left alone.
pub fn rewrite_links(html: &str, mut rewrite: impl FnMut(u32, &str) -> Option<String>) -> String {
    let bytes = html.as_bytes();
    let len = bytes.len();
    let mut out = String::with_capacity(html.len() + 256);
    let mut copied = 0;
    let mut index = 0u32;
    let mut i = 0;
    while i < len {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        if html[i..].starts_with("<!--") {
            match html[i + 4..].find("-->") {
                Some(end) => {
                    i += 4 + end + 3;
                    continue;
                }
                None => break,
            }
        }
        // The tag name, then its attributes, until the closing '>'.
        let mut j = i + 1;
        while j < len && !is_space(bytes[j]) && bytes[j] != b'>' {
            j += 1;
        }
        loop {
            while j < len && (is_space(bytes[j]) || bytes[j] == b'/') {
                j += 1;
            }
            if j >= len || bytes[j] == b'>' {
                break;
            }
            let name_start = j;
            while j < len && !is_space(bytes[j]) && bytes[j] != b'=' && bytes[j] != b'>' {
                j += 1;
            }
            let name = &html[name_start..j];
            while j < len && is_space(bytes[j]) {
                j += 1;
            }
            if j >= len || bytes[j] != b'=' {
                continue;
            }
            j += 1;
            while j < len && is_space(bytes[j]) {
                j += 1;
            }
            let (start, end, next) = match bytes.get(j) {
                Some(&quote @ (b'"' | b'\'')) => match html[j + 1..].find(quote as char) {
                    Some(k) => (j + 1, j + 1 + k, j + 2 + k),
                    None => (j + 1, len, len),
                },
                _ => {
                    let mut k = j;
                    while k < len && !is_space(bytes[k]) && bytes[k] != b'>' {
                        k += 1;
                    }
                    (j, k, k)
                }
            };
            if name.eq_ignore_ascii_case("href") {
                let url = decode_entities(&html[start..end]);
                if let Some(replacement) = rewrite(index, &url) {
                    out.push_str(&html[copied..start]);
                    out.push_str(&escape_attribute(&replacement));
                    copied = end;
                    index += 1;
                }
            }
            j = next;
        }
        i = j + 1;
    }
    out.push_str(&html[copied.min(len)..]);
    out
}

/// Adds a 1×1 open pixel to an HTML body: before `</body>` when there is one, else at the end.
pub fn add_open_pixel(html: &str, pixel_url: &str) -> String {
    let img = format!(
        r#"<img src="{}" width="1" height="1" alt="" style="display:none">"#,
        escape_attribute(pixel_url)
    );
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{img}{}", &html[..at], &html[at..]),
        None => format!("{html}{img}"),
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Decodes the entities that appear in URLs inside attributes (`&amp;` above all).
fn decode_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_string();
    }
    value
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

fn escape_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"tracking-key";

    fn claims() -> TrackingClaims {
        TrackingClaims {
            step_id: None,
            org_id: "acme".into(),
            campaign_id: "camp-1".into(),
            run_id: "run-1".into(),
            contact_id: "ct-1".into(),
            channel: Channel::Email,
            kind: TrackingKind::Click,
            link: Some(2),
            url: Some("https://acme.test/spring?a=1&b=2".into()),
            expires: Some(2_000_000_000),
        }
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = sign(KEY, &claims());
        assert!(verify_at(KEY, &token, 1_999_999_999).is_ok());
        assert_eq!(
            verify_at(KEY, &token, 2_000_000_001),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims_and_is_url_safe() {
        let token = sign(KEY, &claims());
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_eq!(verify(KEY, &token), Ok(claims()));
    }

    #[test]
    fn another_key_or_any_changed_byte_is_refused() {
        let token = sign(KEY, &claims());
        assert_eq!(verify(b"other", &token), Err(TokenError::BadSignature));
        let mut other = claims();
        other.contact_id = "ct-2".into();
        let forged_payload = sign(b"attacker", &other);
        let (payload, _) = forged_payload.split_once('.').unwrap();
        let (_, tag) = token.split_once('.').unwrap();
        assert_eq!(
            verify(KEY, &format!("{payload}.{tag}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(KEY, "no-dot"), Err(TokenError::Malformed));
        assert_eq!(verify(KEY, "a.!!!"), Err(TokenError::Malformed));
        assert_eq!(
            verify(KEY, &"a".repeat(MAX_TOKEN_CHARS + 1)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn http_links_are_rewritten_in_order_and_others_are_kept() {
        let html = r##"<p><a href="https://acme.test/a?x=1&amp;y=2">A</a> <A HREF='http://b.test'>B</A>
            <a href="mailto:hi@acme.test">mail</a> <a href=https://c.test/c>C</a>
            <!-- <a href="https://commented.test"> --> <a class="x" href = "#top">top</a></p>"##;
        let mut seen = Vec::new();
        let out = rewrite_links(html, |i, url| {
            if !is_trackable(url) {
                return None;
            }
            seen.push((i, url.to_string()));
            Some(format!("https://t.test/{i}?t=a&b"))
        });
        assert_eq!(
            seen,
            [
                (0, "https://acme.test/a?x=1&y=2".to_string()),
                (1, "http://b.test".to_string()),
                (2, "https://c.test/c".to_string()),
            ]
        );
        assert!(out.contains(r#"<a href="https://t.test/0?t=a&amp;b">A</a>"#));
        assert!(out.contains("<A HREF='https://t.test/1?t=a&amp;b'>B</A>"));
        assert!(out.contains(r#"<a href="mailto:hi@acme.test">mail</a>"#));
        assert!(out.contains("<a href=https://t.test/2?t=a&amp;b>C</a>"));
        assert!(out.contains(r#"<!-- <a href="https://commented.test"> -->"#));
        assert!(out.contains(r##"href = "#top""##));
    }

    #[test]
    fn text_that_only_looks_like_an_attribute_is_not_touched() {
        let html = "<p>write href=\"https://x.test\" in your HTML</p>";
        assert_eq!(rewrite_links(html, |_, _| Some("changed".into())), html);
    }

    #[test]
    fn the_open_pixel_goes_before_the_closing_body_tag() {
        let pixel = "https://h.test/open/?t=a.b";
        let with_body = add_open_pixel("<html><BODY><p>Hi</p></BODY></html>", pixel);
        assert!(with_body.ends_with(
            r#"<p>Hi</p><img src="https://h.test/open/?t=a.b" width="1" height="1" alt="" style="display:none"></BODY></html>"#
        ));
        let bare = add_open_pixel("<p>Hi</p>", pixel);
        assert!(bare.starts_with("<p>Hi</p><img src="));
    }

    proptest! {
        #[test]
        fn rewriting_never_panics_and_keeps_html_without_links(html in ".{0,200}") {
            let out = rewrite_links(&html, |_, _| None);
            prop_assert_eq!(out, html);
        }

        #[test]
        fn rewriting_arbitrary_markup_never_panics(html in "[<>a-z =\"'/!-]{0,120}") {
            let _ = rewrite_links(&html, |i, _| Some(format!("u{i}")));
        }
    }
}
