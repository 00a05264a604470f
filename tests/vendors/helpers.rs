//! Messages, connections and request matchers shared by the vendor tests.

use std::collections::BTreeMap;
use std::time::Duration;

use herald::vendors::{
    adapter_for, Adapter, ConnectionConfig, Outbound, OutboundMessage, OutboundPolicy,
};
use herald_domain::spec::Channel;
use serde_json::{json, Value};
use wiremock::{Match, Request};

pub const UNSUBSCRIBE_URL: &str = "<https://herald.test/connect/u?t=abc>";
pub const IDEMPOTENCY_KEY: &str = "run-1:ct-1:email";

/// An email with both parts and the RFC 8058 unsubscribe headers.
pub fn email(to: &str) -> OutboundMessage {
    let mut headers = BTreeMap::new();
    headers.insert("List-Unsubscribe".to_owned(), UNSUBSCRIBE_URL.to_owned());
    headers.insert(
        "List-Unsubscribe-Post".to_owned(),
        "List-Unsubscribe=One-Click".to_owned(),
    );
    OutboundMessage {
        channel: Channel::Email,
        to: to.to_owned(),
        subject: Some("Spring sale".to_owned()),
        html: Some("<p>Hello Ada, the sale starts today.</p>".to_owned()),
        text: Some("Hello Ada, the sale starts today.".to_owned()),
        body: None,
        link: None,
        image_url: None,
        headers,
        idempotency_key: IDEMPOTENCY_KEY.to_owned(),
        status_callback: None,
    }
}

pub fn sms(to: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        channel: Channel::Sms,
        body: Some(body.to_owned()),
        html: None,
        text: None,
        subject: None,
        headers: BTreeMap::new(),
        idempotency_key: "run-1:ct-1:sms".to_owned(),
        ..email(to)
    }
}

/// A social post from profile `to`.
pub fn post(channel: Channel, to: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        channel,
        idempotency_key: format!("run-1:{to}:{}", channel.id()),
        ..sms(to, body)
    }
}

pub fn connection(vendor: &str, settings: Value, credentials: Value) -> ConnectionConfig {
    ConnectionConfig {
        vendor: vendor.to_owned(),
        settings,
        credentials: credentials.as_object().cloned().unwrap_or_default(),
    }
}

/// The vendor client the tests call the stand-ins with: they listen on loopback, which only
/// an operator's `HERALD_OUTBOUND_ALLOW` opens.
pub fn http_client(timeout: Duration) -> Outbound {
    Outbound::new(
        timeout,
        std::sync::Arc::new(OutboundPolicy::parse("127.0.0.1").unwrap()),
    )
}

/// A vendor client with no exceptions: public addresses only, as in production by default.
pub fn strict_client(timeout: Duration) -> Outbound {
    Outbound::new(timeout, std::sync::Arc::new(OutboundPolicy::default()))
}

pub fn adapter(config: &ConnectionConfig) -> Box<dyn Adapter> {
    adapter_with_timeout(config, Duration::from_secs(5))
}

pub fn adapter_with_timeout(config: &ConnectionConfig, timeout: Duration) -> Box<dyn Adapter> {
    adapter_for(config, http_client(timeout)).expect("the connection is complete")
}

/// One HTTP vendor connection pointed at a stand-in, with a message it can send.
pub struct Case {
    pub name: &'static str,
    pub config: ConnectionConfig,
    pub message: OutboundMessage,
}

impl Case {
    /// Every credential value of the connection.
    pub fn secrets(&self) -> Vec<String> {
        self.config
            .credentials
            .values()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}

/// Every HTTP vendor (and both Graph channels), with credentials that are easy to spot.
pub fn http_cases(base: &str) -> Vec<Case> {
    let social = |vendor: &str, token: &str| {
        connection(
            vendor,
            json!({"baseUrl": base}),
            json!({"accessToken": token}),
        )
    };
    let mut instagram = post(Channel::Instagram, "17841400000000001", "Spring sale");
    instagram.image_url = Some("https://cdn.acme.test/sale.jpg".to_owned());
    vec![
        Case {
            name: "sendgrid",
            config: connection(
                "sendgrid",
                json!({"baseUrl": base, "fromEmail": "news@acme.test"}),
                json!({"apiKey": "SG.sendgrid-secret"}),
            ),
            message: email("ada@example.test"),
        },
        Case {
            name: "mailgun",
            config: connection(
                "mailgun",
                json!({"baseUrl": base, "domain": "mg.acme.test", "fromEmail": "news@acme.test"}),
                json!({"apiKey": "key-mailgun-secret"}),
            ),
            message: email("ada@example.test"),
        },
        Case {
            name: "twilio",
            config: connection(
                "twilio",
                json!({"baseUrl": base, "fromNumber": "+15005550006"}),
                json!({"accountSid": "ACtwilio-sid-secret", "authToken": "twilio-token-secret"}),
            ),
            message: sms("+14155550100", "Sale today"),
        },
        Case {
            name: "facebook",
            config: social("meta-graph", "meta-token-secret"),
            message: post(Channel::Facebook, "104000000000001", "Spring sale"),
        },
        Case {
            name: "instagram",
            config: social("meta-graph", "meta-token-secret"),
            message: instagram,
        },
        Case {
            name: "linkedin",
            config: social("linkedin", "linkedin-token-secret"),
            message: post(Channel::Linkedin, "2414183", "Spring sale"),
        },
        Case {
            name: "x",
            config: social("x", "x-token-secret"),
            message: post(Channel::X, "acme", "Spring sale"),
        },
    ]
}

/// Matches an `application/x-www-form-urlencoded` body holding every given field.
pub struct FormFields(Vec<(String, String)>);

pub fn form_fields(pairs: &[(&str, &str)]) -> FormFields {
    FormFields(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

impl Match for FormFields {
    fn matches(&self, request: &Request) -> bool {
        let is_form = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let Ok(fields) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&request.body)
        else {
            return false;
        };
        is_form && self.0.iter().all(|pair| fields.contains(pair))
    }
}
