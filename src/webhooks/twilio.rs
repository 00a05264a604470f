//! Twilio Messaging callbacks: status callbacks of sent messages and inbound SMS, both
//! form-encoded and signed in `X-Twilio-Signature` = base64 HMAC-SHA1(auth token, full URL +
//! every POST parameter's name and value, sorted by name).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use herald_domain::engagement::{Classification, EngagementType};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{
    bad_signature, malformed, reason, Incoming, MessageKey, Parsed, Target, VendorEvent,
    WebhookError, MESSAGE_KEY_ARG,
};

/// The credential Twilio signs with: the account's auth token (the one sends use).
pub const SECRET_FIELD: &str = "authToken";

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Inbound bodies that opt the sender out, as Twilio's own opt-out handling reads them: the
/// whole message, ignoring case, spaces and closing punctuation.
pub const OPT_OUT_KEYWORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
];

/// A Twilio post: its form parameters, the URL it was posted to, and the signature.
#[derive(Debug)]
pub struct Request {
    params: Vec<(String, String)>,
    url: String,
    signature: Option<String>,
    /// The send key a `StatusCallback` URL carried in its query.
    query_key: Option<String>,
}

impl Request {
    pub(super) fn read(incoming: Incoming<'_>) -> Result<Request, WebhookError> {
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(incoming.body)
            .map_err(|_| malformed("the body is not a form-encoded list of parameters"))?;
        let query_key = incoming
            .query
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(name, _)| name == MESSAGE_KEY_ARG)
                    .map(|(_, value)| value)
            });
        Ok(Request {
            params,
            url: incoming.url.to_string(),
            signature: incoming
                .headers
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string()),
            query_key,
        })
    }

    pub(super) fn verify(&self, auth_token: &str) -> Result<(), WebhookError> {
        let Some(signature) = &self.signature else {
            return Err(bad_signature(
                "the request is not signed (X-Twilio-Signature)",
            ));
        };
        let expected = STANDARD
            .decode(signature)
            .map_err(|_| bad_signature("X-Twilio-Signature is not base64"))?;
        let mut mac =
            Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
        mac.update(signed_data(&self.url, &self.params).as_bytes());
        mac.verify_slice(&expected)
            .map_err(|_| bad_signature("the signature does not match"))
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    pub(super) fn events(&self) -> Result<Parsed, WebhookError> {
        let sid = self
            .param("MessageSid")
            .or_else(|| self.param("SmsSid"))
            .ok_or_else(|| malformed("the body has no MessageSid"))?;
        let status = self
            .param("MessageStatus")
            .or_else(|| self.param("SmsStatus"));
        let inbound = self.params.iter().any(|(key, _)| key == "Body")
            && status.is_none_or(|s| s == "received");
        if inbound {
            return self.inbound(sid);
        }
        let kind = match status {
            Some("delivered") => EngagementType::Delivery,
            // The carrier could not deliver it.
            Some("undelivered") => EngagementType::Bounce,
            // Twilio could not send it (invalid or opted-out number, blocked content...).
            Some("failed") => EngagementType::Dropped,
            _ => {
                return Ok(Parsed {
                    ignored: 1,
                    ..Parsed::default()
                })
            }
        };
        let status = status.unwrap_or_default();
        Ok(Parsed {
            events: vec![VendorEvent {
                event_id: format!("{sid}:{status}"),
                kind,
                classification: Classification::Human,
                occurred_at: None,
                link: None,
                reason: reason(
                    self.param("ErrorCode")
                        .map(|code| format!("error {code}"))
                        .as_deref(),
                ),
                target: Target {
                    message_key: self.query_key.as_deref().and_then(MessageKey::parse),
                    provider_ids: vec![sid.to_string()],
                    phone: None,
                },
            }],
            ..Parsed::default()
        })
    }

    /// An inbound SMS is a reply; an opt-out keyword is an unsubscribe too.
    fn inbound(&self, sid: &str) -> Result<Parsed, WebhookError> {
        let from = self
            .param("From")
            .ok_or_else(|| malformed("an inbound message needs From"))?;
        let target = Target {
            message_key: None,
            provider_ids: Vec::new(),
            phone: Some(from.to_string()),
        };
        let reply = VendorEvent {
            event_id: format!("{sid}:received"),
            kind: EngagementType::Reply,
            classification: Classification::Human,
            occurred_at: None,
            link: None,
            reason: None,
            target: target.clone(),
        };
        let mut events = vec![reply];
        if is_opt_out(self.param("Body").unwrap_or_default()) {
            events.push(VendorEvent {
                event_id: format!("{sid}:opt-out"),
                kind: EngagementType::Unsubscribe,
                classification: Classification::Human,
                occurred_at: None,
                link: None,
                reason: Some("opt-out keyword".to_string()),
                target,
            });
        }
        Ok(Parsed {
            events,
            ..Parsed::default()
        })
    }
}

/// The text Twilio signs: the URL, then each parameter's name and value, sorted by name (and
/// by value for a repeated name).
pub fn signed_data(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = String::from(url);
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    data
}

/// Whether an inbound body is an opt-out keyword.
pub fn is_opt_out(body: &str) -> bool {
    let word: String = body
        .trim()
        .trim_end_matches(['.', '!'])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    OPT_OUT_KEYWORDS.contains(&word.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(params: &[(&str, &str)], signature: Option<String>) -> Request {
        Request {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            url: "https://herald.test/connect/webhooks/twilio/conn-1".to_string(),
            signature,
            query_key: None,
        }
    }

    fn sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
        mac.update(signed_data(url, &owned).as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_signature_covers_the_url_and_sorted_parameters() {
        // The example of Twilio's request-validation docs and SDK tests.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ];
        assert_eq!(sign("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");

        let params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
        let url = "https://herald.test/connect/webhooks/twilio/conn-1";
        let good = sign("token", url, &params);
        assert_eq!(request(&params, Some(good.clone())).verify("token"), Ok(()));
        assert!(request(&params, Some(good)).verify("other").is_err());
        assert!(request(&params, None).verify("token").is_err());
        assert!(request(&params, Some("%%".into())).verify("token").is_err());
    }

    #[test]
    fn statuses_and_inbound_messages_become_events() {
        let status = |s: &str| {
            request(&[("MessageSid", "SM1"), ("MessageStatus", s)], None)
                .events()
                .unwrap()
        };
        assert_eq!(status("delivered").events[0].kind, EngagementType::Delivery);
        assert_eq!(status("delivered").events[0].event_id, "SM1:delivered");
        assert_eq!(status("undelivered").events[0].kind, EngagementType::Bounce);
        assert_eq!(status("failed").events[0].kind, EngagementType::Dropped);
        assert_eq!(status("sent").ignored, 1);

        let inbound = request(
            &[
                ("MessageSid", "SM2"),
                ("SmsStatus", "received"),
                ("From", "+14155550101"),
                ("Body", " stop "),
            ],
            None,
        )
        .events()
        .unwrap();
        let kinds: Vec<EngagementType> = inbound.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EngagementType::Reply, EngagementType::Unsubscribe]);
        assert_eq!(
            inbound.events[0].target.phone.as_deref(),
            Some("+14155550101")
        );
        assert!(request(&[("Body", "hi")], None).events().is_err());
    }

    #[test]
    fn only_whole_keywords_opt_out() {
        for yes in [
            "STOP",
            "stop",
            " Stop. ",
            "STOP ALL",
            "unsubscribe",
            "Quit!",
        ] {
            assert!(is_opt_out(yes), "{yes}");
        }
        for no in ["please stop sending", "stopped", "", "hello"] {
            assert!(!is_opt_out(no), "{no}");
        }
    }
}
