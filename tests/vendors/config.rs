use std::time::Duration;

use herald::vendors::adapter_for;
use serde_json::json;

use crate::helpers::{connection, http_client};

fn build(
    vendor: &str,
    settings: serde_json::Value,
    credentials: serde_json::Value,
) -> Result<&'static str, String> {
    adapter_for(
        &connection(vendor, settings, credentials),
        http_client(Duration::from_secs(1)),
    )
    .map(|adapter| adapter.vendor())
}

#[test]
fn every_real_vendor_has_an_adapter_and_sandbox_is_left_to_the_caller() {
    let complete = [
        (
            "sendgrid",
            json!({"fromEmail": "a@acme.test"}),
            json!({"apiKey": "k"}),
        ),
        (
            "mailgun",
            json!({"domain": "mg.acme.test", "fromEmail": "a@acme.test"}),
            json!({"apiKey": "k"}),
        ),
        (
            "smtp",
            json!({"host": "smtp.acme.test", "port": 587, "fromEmail": "a@acme.test"}),
            json!({}),
        ),
        (
            "twilio",
            json!({"fromNumber": "+15005550006"}),
            json!({"accountSid": "AC1", "authToken": "t"}),
        ),
        ("meta-graph", json!({}), json!({"accessToken": "t"})),
        ("linkedin", json!({}), json!({"accessToken": "t"})),
        ("x", json!({}), json!({"accessToken": "t"})),
        ("google-ads", json!({}), json!({})),
        ("meta-ads", json!({}), json!({})),
    ];
    for (vendor, settings, credentials) in complete {
        assert_eq!(build(vendor, settings, credentials), Ok(vendor));
    }
    assert!(build("sandbox", json!({}), json!({})).is_err());
    assert!(build("pigeon", json!({}), json!({})).is_err());
}

#[test]
fn a_missing_credential_is_named_without_quoting_the_ones_given() {
    let error = build(
        "twilio",
        json!({"fromNumber": "+15005550006"}),
        json!({"accountSid": "ACsid-secret"}),
    )
    .unwrap_err();

    assert!(error.contains("credentials.authToken"), "{error}");
    assert!(!error.contains("ACsid-secret"), "{error}");
}

#[test]
fn bad_settings_are_refused_when_the_adapter_is_built() {
    let key = json!({"apiKey": "k"});
    for settings in [
        json!({"fromEmail": "a@acme.test", "baseUrl": "not a url"}),
        json!({"fromEmail": "a@acme.test", "rateLimitPerSecond": 0}),
    ] {
        assert!(build("sendgrid", settings, key.clone()).is_err());
    }
    let smtp =
        |tls: &str| json!({"host": "h.test", "port": 25, "fromEmail": "a@acme.test", "tls": tls});
    assert!(build("smtp", smtp("sometimes"), json!({})).is_err());
    assert!(build("smtp", smtp("none"), json!({"username": "only-me"})).is_err());
}
