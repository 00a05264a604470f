//! The only room that knows each channel's message shape: an email or SMS rendered for one
//! contact, a social post for one run, each with its tracking URLs and short links. Ads send
//! nothing per contact (`vendors/ads.rs`), so they have no message here.

use std::sync::Arc;

use herald_domain::connection::Vendor;
use herald_domain::spec::Channel;
use herald_domain::template::{CompiledTemplate, RenderContext};
use herald_domain::tracking::{self, TrackingClaims, TrackingKind};
use serde_json::{json, Value};

use super::jobs::Lease;
use super::route::Route;
use crate::vendors::{self, OutboundMessage};

/// A contact id that cannot clash with a real one (ids have no `:`): social posts are made once
/// per run, from a profile, and are recorded in the ledger under it.
pub fn profile_key(profile: &str) -> String {
    format!("profile:{profile}")
}

/// What every step of one fan-out shares.
pub struct RunCtx<'a> {
    pub org_id: &'a str,
    pub campaign_id: &'a str,
    /// The ledger's run: a launch's run id, or a step's (`drip::step_run_id`).
    pub run_id: &'a str,
    /// A drip or milestone step's id, the `:stepId` of its tracking URLs.
    pub step_id: Option<&'a str>,
    pub campaign: &'a Value,
    pub template: &'a CompiledTemplate,
    /// The job's lease: a page's vendor calls and ledger writes happen only while it holds.
    /// `None` for drip and milestone steps, which the ledger alone fences (`drip.rs`).
    pub lease: Option<&'a Lease>,
}

/// One message ready to go, or the reason it cannot be made.
pub struct Prepared {
    pub contact_id: String,
    pub channel: Channel,
    pub message: Result<OutboundMessage, String>,
    pub tracking: Value,
    /// The short links in an SMS body: written (`ledger::insert_short_links`) with the
    /// message's ledger row, so they resolve once the message is out.
    pub short_links: Vec<ShortLink>,
    /// The contact's `timezone` as stored (it may not be a valid zone): where its frequency
    /// caps count (`frequency.rs`).
    pub timezone: Option<String>,
    /// A local-time run sends it in a fallback zone: the contact has no valid zone of its own.
    /// Marked on its ledger row (`send_ledger.zone_fallback`).
    pub zone_fallback: bool,
}

impl Prepared {
    /// The message's `(contact, channel)` key in the send ledger.
    pub fn ledger_key(&self) -> (String, String) {
        (self.contact_id.clone(), self.channel.id().to_string())
    }
}

/// `{public_url}/connect/s/{code}` stands for `target`.
pub struct ShortLink {
    pub code: String,
    pub target: String,
}

/// Renders messages and signs their tracking URLs: holds the public URL and the tracking key.
pub struct Composer {
    public_url: Arc<str>,
    tracking_key: Vec<u8>,
}

impl Composer {
    pub fn new(tracking_secret: &str, public_url: Arc<str>) -> Composer {
        Composer {
            public_url,
            tracking_key: tracking_secret.as_bytes().to_vec(),
        }
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Where Twilio posts the delivery statuses of `message` (`webhooks/twilio.rs`); other
    /// vendors are told by their own webhook settings.
    pub fn add_status_callback(&self, route: &Route, message: &mut Prepared) {
        if route.vendor != Some(Vendor::Twilio) {
            return;
        }
        if let Ok(outbound) = &mut message.message {
            outbound.status_callback = Some(format!(
                "{}/connect/webhooks/twilio/{}?{}={}",
                self.public_url,
                route.connection_id,
                vendors::MESSAGE_KEY_ARG,
                outbound.idempotency_key
            ));
        }
    }

    pub fn token_url(
        &self,
        ctx: &RunCtx<'_>,
        contact_id: &str,
        channel: Channel,
        kind: TrackingKind,
        link: Option<(u32, &str)>,
    ) -> String {
        let claims = TrackingClaims {
            org_id: ctx.org_id.to_string(),
            campaign_id: ctx.campaign_id.to_string(),
            run_id: ctx.run_id.to_string(),
            step_id: ctx.step_id.map(str::to_string),
            contact_id: contact_id.to_string(),
            channel,
            kind,
            link: link.map(|(i, _)| i),
            url: link.map(|(_, url)| url.to_string()),
            expires: Some(chrono::Utc::now().timestamp() + tracking::TOKEN_LIFETIME_SECS),
        };
        let path = match kind {
            TrackingKind::Open => "email/open",
            TrackingKind::Click => "link/click",
            TrackingKind::Unsubscribe => "unsubscribe",
        };
        format!(
            "{}/connect/automation/{}/{}/{path}/?t={}",
            self.public_url,
            ctx.campaign_id,
            ctx.step_id.unwrap_or(ctx.run_id),
            tracking::sign(&self.tracking_key, &claims)
        )
    }

    /// Renders an email or SMS for one contact, with its tracking URLs.
    pub fn prepare_message(
        &self,
        ctx: &RunCtx<'_>,
        channel: Channel,
        contact_id: &str,
        contact: &Value,
        to: String,
    ) -> Prepared {
        let unsubscribe = self.token_url(ctx, contact_id, channel, TrackingKind::Unsubscribe, None);
        let mut tracking = json!({"open": null, "clicks": [], "unsubscribe": unsubscribe});
        let mut short_links = Vec::new();
        let render = RenderContext {
            contact: contact.clone(),
            campaign: ctx.campaign.clone(),
            unsubscribe_url: unsubscribe.clone(),
        };
        let message = match ctx.template.render(&render) {
            Err(e) => Err(e.to_string()),
            Ok(rendered) => match channel {
                Channel::Email => match rendered.email {
                    None => Err("the template has no email part".to_string()),
                    Some(email) => {
                        let own = format!("{}/connect/", self.public_url);
                        let mut clicks = Vec::new();
                        let html = email.html.map(|html| {
                            let rewritten = tracking::rewrite_links(&html, |i, url| {
                                if !tracking::is_trackable(url) || url.starts_with(&own) {
                                    return None;
                                }
                                let click = self.token_url(
                                    ctx,
                                    contact_id,
                                    channel,
                                    TrackingKind::Click,
                                    Some((i, url)),
                                );
                                clicks.push(click.clone());
                                Some(click)
                            });
                            let open =
                                self.token_url(ctx, contact_id, channel, TrackingKind::Open, None);
                            tracking["open"] = json!(open);
                            tracking::add_open_pixel(&rewritten, &open)
                        });
                        tracking["clicks"] = json!(clicks);
                        let mut headers = std::collections::BTreeMap::new();
                        headers.insert("List-Unsubscribe".to_string(), format!("<{unsubscribe}>"));
                        headers.insert(
                            "List-Unsubscribe-Post".to_string(),
                            "List-Unsubscribe=One-Click".to_string(),
                        );
                        Ok(OutboundMessage {
                            channel,
                            to,
                            subject: Some(email.subject),
                            html,
                            text: email.text,
                            body: None,
                            link: None,
                            image_url: None,
                            headers,
                            idempotency_key: format!(
                                "{}:{contact_id}:{}",
                                ctx.run_id,
                                channel.id()
                            ),
                            status_callback: None,
                        })
                    }
                },
                Channel::Sms => match rendered.sms {
                    None => Err("the template has no sms part".to_string()),
                    Some(sms) => {
                        let (body, clicks, links) =
                            self.shorten_sms_links(ctx, channel, contact_id, &sms.body);
                        tracking["clicks"] = json!(clicks);
                        tracking["shortLinks"] = links
                            .iter()
                            .map(|l| json!({"url": self.short_url(&l.code), "target": l.target}))
                            .collect();
                        short_links = links;
                        Ok(OutboundMessage {
                            channel,
                            to,
                            subject: None,
                            html: None,
                            text: None,
                            body: Some(body),
                            link: None,
                            image_url: None,
                            headers: Default::default(),
                            idempotency_key: format!(
                                "{}:{contact_id}:{}",
                                ctx.run_id,
                                channel.id()
                            ),
                            status_callback: None,
                        })
                    }
                },
                Channel::Facebook | Channel::Instagram | Channel::Linkedin | Channel::X => Err(
                    format!("{channel} gets one post per run, not a message per contact"),
                ),
                Channel::GoogleAds | Channel::MetaAds => Err(format!(
                    "{channel} runs inside the ads platform; nothing is sent per contact"
                )),
            },
        };
        Prepared {
            contact_id: contact_id.to_string(),
            channel,
            message,
            tracking,
            short_links,
            timezone: contact["timezone"].as_str().map(str::to_string),
            zone_fallback: false,
        }
    }

    /// Replaces every `http(s)` link of an SMS body with a short link. An outside link's short
    /// link stands for its signed click URL; a link to Herald's own `/connect/` routes (the
    /// unsubscribe URL) for itself, so it is short too but not counted as a click. Returns the
    /// new body, the click URLs and the short links to store.
    fn shorten_sms_links(
        &self,
        ctx: &RunCtx<'_>,
        channel: Channel,
        contact_id: &str,
        body: &str,
    ) -> (String, Vec<String>, Vec<ShortLink>) {
        let own = format!("{}/connect/", self.public_url);
        let mut out = String::with_capacity(body.len());
        let mut clicks = Vec::new();
        let mut links = Vec::new();
        let mut copied = 0;
        for range in sms_links(body) {
            let url = &body[range.clone()];
            let target = if url.starts_with(&own) {
                url.to_string()
            } else {
                let index = clicks.len() as u32;
                let click = self.token_url(
                    ctx,
                    contact_id,
                    channel,
                    TrackingKind::Click,
                    Some((index, url)),
                );
                clicks.push(click.clone());
                click
            };
            let code = short_code();
            out.push_str(&body[copied..range.start]);
            out.push_str(&self.short_url(&code));
            copied = range.end;
            links.push(ShortLink { code, target });
        }
        out.push_str(&body[copied..]);
        (out, clicks, links)
    }

    pub fn short_url(&self, code: &str) -> String {
        format!("{}/connect/s/{code}", self.public_url)
    }

    /// Renders a social channel's post for the run (no contact: `contact` is `{}`).
    pub fn prepare_post(&self, ctx: &RunCtx<'_>, route: &Route) -> Prepared {
        let render = RenderContext {
            contact: json!({}),
            campaign: ctx.campaign.clone(),
            unsubscribe_url: String::new(),
        };
        let message = match ctx.template.render(&render) {
            Err(e) => Err(e.to_string()),
            Ok(rendered) => match rendered.social {
                None => Err("the template has no social part".to_string()),
                Some(post) => Ok(OutboundMessage {
                    channel: route.channel,
                    to: route.profile.clone(),
                    subject: None,
                    html: None,
                    text: None,
                    body: Some(post.text),
                    link: post.link.filter(|l| !l.is_empty()),
                    image_url: post.image_url.filter(|l| !l.is_empty()),
                    headers: Default::default(),
                    idempotency_key: format!(
                        "{}:{}:{}",
                        ctx.run_id,
                        profile_key(&route.profile),
                        route.channel.id()
                    ),
                    status_callback: None,
                }),
            },
        };
        Prepared {
            contact_id: profile_key(&route.profile),
            channel: route.channel,
            message,
            tracking: json!({"open": null, "clicks": [], "unsubscribe": null}),
            short_links: Vec::new(),
            timezone: None,
            zone_fallback: false,
        }
    }
}

/// The contact's address on a per-contact channel, if it has one.
pub fn address(channel: Channel, contact: &Value) -> Option<String> {
    let field = match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        Channel::Facebook
        | Channel::Instagram
        | Channel::Linkedin
        | Channel::X
        | Channel::GoogleAds
        | Channel::MetaAds => return None,
    };
    contact[field]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Characters of a short link's code: 12 base62 characters are 71 random bits.
const SHORT_CODE_CHARS: usize = 12;

/// A new short link code, from the thread's cryptographically secure generator.
pub fn short_code() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(SHORT_CODE_CHARS)
        .map(char::from)
        .collect()
}

/// The byte ranges of the `http(s)` links in a text: from the scheme to the first space, `<`,
/// `>` or `"`, without the punctuation that ends a sentence (`.`, `,`, `!`…) or a closing
/// bracket the link did not open.
pub fn sms_links(text: &str) -> Vec<std::ops::Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("http") {
        let start = from + found;
        let rest = &lower[start..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            from = start + 4;
            continue;
        };
        let glued = start > 0 && (bytes[start - 1].is_ascii_alphanumeric());
        let mut end = start + scheme;
        while end < bytes.len()
            && !bytes[end].is_ascii_whitespace()
            && !bytes[end].is_ascii_control()
            && !matches!(bytes[end], b'<' | b'>' | b'"')
        {
            end += 1;
        }
        // `end` only ever stops on an ASCII byte, so it is a char boundary.
        while end > start + scheme {
            let last = bytes[end - 1];
            let unopened = |open: u8, close: u8| {
                last == close && {
                    let link = &bytes[start..end];
                    let opens = link.iter().filter(|&&b| b == open).count();
                    let closes = link.iter().filter(|&&b| b == close).count();
                    closes > opens
                }
            };
            if matches!(last, b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'')
                || unopened(b'(', b')')
                || unopened(b'[', b']')
                || unopened(b'{', b'}')
            {
                end -= 1;
            } else {
                break;
            }
        }
        if !glued && end > start + scheme {
            out.push(start..end);
        }
        from = end.max(start + scheme);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn links_of(text: &str) -> Vec<&str> {
        sms_links(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn sms_links_are_found_without_the_punctuation_around_them() {
        assert_eq!(
            links_of("Sale! https://acme.test/spring?x=1&y=2. Stop: HTTP://acme.test/u/?t=a.b"),
            [
                "https://acme.test/spring?x=1&y=2",
                "HTTP://acme.test/u/?t=a.b"
            ]
        );
        assert_eq!(
            links_of("(see https://en.wikipedia.org/wiki/Spring_(season)), or <http://a.test/x>"),
            [
                "https://en.wikipedia.org/wiki/Spring_(season)",
                "http://a.test/x"
            ]
        );
        assert_eq!(
            links_of("Café → https://acme.test/é!\nnext"),
            ["https://acme.test/é"]
        );
        assert_eq!(
            links_of("no link: http:// nor xhttps://glued.test nor ftp://a.test or http"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn short_codes_are_twelve_base62_characters_and_differ() {
        let a = short_code();
        assert_eq!(a.len(), SHORT_CODE_CHARS);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, short_code());
    }

    #[test]
    fn only_per_contact_channels_have_an_address_and_blank_ones_do_not_count() {
        let contact = json!({"email": " ann@acme.test ", "phone": ""});
        assert_eq!(
            address(Channel::Email, &contact).as_deref(),
            Some("ann@acme.test")
        );
        assert_eq!(address(Channel::Sms, &contact), None);
        assert_eq!(address(Channel::Facebook, &contact), None);
    }
}
