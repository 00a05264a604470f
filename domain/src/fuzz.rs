//! Property tests over every parser of this crate that takes a client's text (issue 15, "Bad
//! input"): cron patterns, durations and clock times, tracking tokens, templates (parsed and
//! rendered), filters and org settings. Each input gets a value or an error, never a panic.
//! Memory and time stay bounded because every parser caps its input first (template sizes,
//! token length, filter depth); the cases here include inputs past those caps.
//! Campaign bodies and DynamicQuery semantics have their own properties in `spec.rs` and
//! `query.rs`.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::drip::{ClockTime, Delay};
use crate::query::parse_filter;
use crate::schedule::CronSchedule;
use crate::settings::parse_settings;
use crate::template::{parse_template, render, RenderContext};
use crate::tracking::{sign, verify, TrackingClaims};

/// Text made of the characters a parser cares about, mixed with anything at all.
fn texty(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[{alphabet}]{{0,40}}")).unwrap(),
        "\\PC{0,40}",
        ".{0,400}",
    ]
}

/// JSON of any shape, a few levels deep, whose strings are often one of `words` and whose
/// keys are often one of `keys`: what a parser looks for, mixed with anything at all.
pub(crate) fn json_like(
    words: &'static [&'static str],
    keys: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        proptest::sample::select(words).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let key = prop_oneof![
            proptest::sample::select(keys).prop_map(str::to_string),
            "[a-zA-Z$.]{1,8}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON with the words and keys of org settings and filters.
fn any_json() -> impl Strategy<Value = Value> {
    json_like(
        &[
            "21:00",
            "08:00",
            "24:00",
            "Europe/Berlin",
            "day",
            "week",
            "*",
            "sms",
            "email",
        ],
        &[
            "defaultTimezone",
            "frequencyCaps",
            "quietHours",
            "channel",
            "max",
            "per",
            "start",
            "end",
            "channels",
            "$in",
            "$regex",
            "$elemMatch",
            "tags",
            "attributes.plan",
            "",
        ],
    )
}

fn claims() -> TrackingClaims {
    serde_json::from_value(json!({
        "o": "acme", "c": "camp-1", "r": "run-1", "p": "ct-1", "h": "email", "k": "open",
        "x": 4_000_000_000i64
    }))
    .expect("claims of the current shape")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cron_patterns_are_parsed_or_refused(
        pattern in texty("0-9*/,LW#?A-Z -"),
        zone in proptest::option::of(texty("A-Za-z/_+0-9-")),
    ) {
        if let Ok(schedule) = CronSchedule::parse(&pattern, zone.as_deref()) {
            // A pattern that parses has an occurrence, found in bounded time.
            let start = chrono::DateTime::parse_from_rfc3339("2026-03-29T00:30:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc);
            let _ = schedule.next_after(start);
        }
    }

    #[test]
    fn durations_and_clock_times_are_parsed_or_refused(
        text in texty("PTDHMSW0-9.,+-"),
        signed in any::<bool>(),
    ) {
        let _ = Delay::parse(&text, signed);
        let _ = ClockTime::parse(&text);
    }

    #[test]
    fn tracking_tokens_are_verified_or_refused(token in texty("A-Za-z0-9_.=-")) {
        prop_assert!(verify(b"fuzz-key-fuzz-key-fuzz-key-fuzz-key", &token).is_err());
    }

    #[test]
    fn a_tampered_tracking_token_is_refused(at in 0usize..200, byte in any::<u8>()) {
        let key = b"fuzz-key-fuzz-key-fuzz-key-fuzz-key";
        let token = sign(key, &claims());
        let mut bytes = token.clone().into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(tampered) = String::from_utf8(bytes) {
            if tampered != token {
                prop_assert!(verify(key, &tampered).is_err());
            }
        }
    }

    #[test]
    fn templates_are_parsed_and_rendered_or_refused(
        source in texty("{}%#~*|a-z0-9 ()'.=-"),
        contact in any_json(),
    ) {
        let body = json!({"name": "fuzz", "sms": {"body": source}, "social": {"text": source}});
        if let Ok(input) = parse_template(&body) {
            let ctx = RenderContext {
                contact,
                campaign: json!({"id": "camp-1", "name": "Fuzz"}),
                unsubscribe_url: "https://h.test/u".into(),
            };
            let _ = render(&input.content, &ctx);
        }
    }

    #[test]
    fn filters_and_settings_are_parsed_or_refused(body in any_json()) {
        let _ = parse_filter(&json!({"where": body.clone()}));
        let _ = parse_filter(&body);
        if let Err(errors) = parse_settings(&body) {
            prop_assert!(!errors.is_empty());
        }
    }
}
