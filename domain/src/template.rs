//! Message templates: per-channel content, its validation at save, and rendering with minijinja.
//!
//! A template holds up to three channel parts (`email`, `sms`, `social`); each string in them is
//! a minijinja template that may use `contact`, `campaign` and `unsubscribeUrl`.
//!
//! Rules worth knowing before changing anything here (`docs/templates.md` is the user-facing
//! version):
//!
//! - **Save is strict, render is lenient.** [`parse_template`] refuses syntax errors, variables
//!   outside the allowed roots, contact fields that do not exist, unknown filters/tests/functions
//!   and templates that blow the work or size limits on an empty contact. Rendering then treats
//!   missing data as empty (`UndefinedBehavior::Chainable`, `null` prints nothing): one contact
//!   without a `firstName` must not stop a launch to a million others.
//! - **Only `email.html` is HTML-escaped.** Subjects, text bodies, SMS and social posts are not
//!   HTML, so escaping them would show `&amp;` to the reader. The escaper keeps `/` as is (unlike
//!   minijinja's) so URLs inside `href` stay readable for link rewriting and spam filters.
//! - **Every render is bounded**: [`FUEL_PER_PART`] VM steps and [`MAX_RENDERED_BYTES`] of output
//!   per part; `include`/`import`/`macro` are compiled out (see `domain/Cargo.toml`).
//! - **Every value is bounded before it exists.** MiniJinja has no hook on each operation, so
//!   `template/bounds.rs` proves on the syntax tree, before a part is compiled, that no value
//!   exceeds [`MAX_VALUE_BYTES`] beyond the data it copies, that a render never holds more than
//!   [`MAX_HELD_BYTES`] nor allocates more than [`MAX_ALLOCATED_BYTES`] (string repeat, `~`,
//!   lists, `range`, captured text, loops). A part it cannot bound is refused at save, and by
//!   [`CompiledTemplate`] too: a part stored under older rules is never compiled, and each render
//!   of it fails ([`RenderError::Unbounded`]). The bounds are proven for data up to
//!   [`MAX_DATA_BYTES`]; each render recomputes them with the pieces of data the part copies and
//!   fails for a contact whose data would go past them ([`RenderError::DataTooLarge`]).
//!   `docs/adr/0009-template-size-bounds.md` has the reasoning.

use std::collections::BTreeSet;
use std::fmt;
use std::io;

use minijinja::{
    context, escape_formatter, AutoEscape, Environment, Error as JinjaError, ErrorKind, Output,
    State, Template, UndefinedBehavior, Value as JinjaValue,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use self::bounds::{Unknown, Unproven};
use crate::error::FieldError;
use crate::ids::{is_valid_id, INVALID_ID_MESSAGE};

mod bounds;
#[cfg(test)]
mod size_tests;

/// The longest template name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The variables a template may use; anything else is refused at save.
pub const VARIABLE_ROOTS: [&str; 3] = ["contact", "campaign", "unsubscribeUrl"];

/// The fields of a contact document (`api.md` section 5). `contact.<other>` is refused at save
/// because it would always render empty; custom data lives under `contact.attributes`.
pub const CONTACT_FIELDS: [&str; 12] = [
    "id",
    "email",
    "phone",
    "firstName",
    "lastName",
    "tags",
    "attributes",
    "timezone",
    "unsubscribed",
    "createdAt",
    "updatedAt",
    "version",
];

/// VM steps one part may take per render. A realistic email takes a few hundred; the limit is
/// there so a loop cannot keep a launch busy.
pub const FUEL_PER_PART: u64 = 100_000;

/// The largest rendered part, in bytes. Larger output is refused rather than truncated.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

/// The most one value a template builds may hold beyond the contact and campaign data it copies:
/// text, repeated text, lists, `range`, captured output. The output cap is 1 MiB, so no message
/// needs more; `'x' * 10000000` is refused.
pub const MAX_VALUE_BYTES: u64 = 4 * 1024 * 1024;

/// The most one render of a part may hold at once: variables, captured text, loop lists,
/// compiled-in constants and one expression's temporaries, data copies included. Enforced when
/// the template is saved (for data of [`MAX_DATA_BYTES`]) and again at each render (for the
/// contact's own data).
pub const MAX_HELD_BYTES: u64 = 32 * 1024 * 1024;

/// The most one render of a part may allocate in all, data copies included: a loop may not
/// rebuild large values at every iteration (`FUEL_PER_PART` bounds steps, not what one step
/// copies). Enforced like [`MAX_HELD_BYTES`].
pub const MAX_ALLOCATED_BYTES: u64 = 256 * 1024 * 1024;

/// The data a template must be able to handle to be saved: it must stay within
/// [`MAX_HELD_BYTES`] for any contact, campaign and unsubscribe URL that print (quoted, as inside
/// a list) to at most this many bytes, so it may copy data about 60 times (`|sort` of a text is a
/// list of its characters, 24 bytes each). Larger data is not refused as such: a render measures
/// the pieces the template copies, and fails for that contact only if they do not fit. API bodies
/// are at most 1 MiB, but imported rows can be larger and numbers print longer than their JSON
/// (`1e300` prints 301 digits), so the data is measured, not assumed.
pub const MAX_DATA_BYTES: u64 = 512 * 1024;

/// Frames deep at render (nested and recursive loops); far above what a message needs.
const RECURSION_LIMIT: usize = 100;

/// A template's per-channel content, as stored and as returned to clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub social: Option<SocialContent>,
}

/// The email part: a subject and an HTML body, a plain-text body, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailContent {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The SMS part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsContent {
    pub body: String,
}

/// The social-post part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocialContent {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

impl TemplateContent {
    /// Every template string with the part it fills, in a fixed order.
    fn parts(&self) -> Vec<(Part, &str)> {
        let mut parts = Vec::new();
        if let Some(email) = &self.email {
            parts.push((Part::EmailSubject, email.subject.as_str()));
            parts.extend(email.html.as_deref().map(|s| (Part::EmailHtml, s)));
            parts.extend(email.text.as_deref().map(|s| (Part::EmailText, s)));
        }
        if let Some(sms) = &self.sms {
            parts.push((Part::SmsBody, sms.body.as_str()));
        }
        if let Some(social) = &self.social {
            parts.push((Part::SocialText, social.text.as_str()));
            parts.extend(social.link.as_deref().map(|s| (Part::SocialLink, s)));
            parts.extend(
                social
                    .image_url
                    .as_deref()
                    .map(|s| (Part::SocialImageUrl, s)),
            );
        }
        parts
    }
}

/// A validated template body: its optional client-chosen id, its name and its content.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateInput {
    pub id: Option<String>,
    pub name: String,
    pub content: TemplateContent,
}

/// One template string, named by its path in the body. The path is also the minijinja template
/// name, which is what decides auto-escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    EmailSubject,
    EmailHtml,
    EmailText,
    SmsBody,
    SocialText,
    SocialLink,
    SocialImageUrl,
}

impl Part {
    fn field(self) -> &'static str {
        match self {
            Part::EmailSubject => "email.subject",
            Part::EmailHtml => "email.html",
            Part::EmailText => "email.text",
            Part::SmsBody => "sms.body",
            Part::SocialText => "social.text",
            Part::SocialLink => "social.link",
            Part::SocialImageUrl => "social.imageUrl",
        }
    }

    /// The key inside the channel object.
    fn key(self) -> &'static str {
        let field = self.field();
        field.split_once('.').map_or(field, |(_, key)| key)
    }
}

/// Parses and validates a template body (`POST` or `PUT`), reporting every invalid field.
///
/// The channel parts sit at the top level: `{"id"?, "name", "email"?, "sms"?, "social"?}`.
/// `null` and empty optional strings count as absent. Unknown and server-owned fields
/// (`version`, `createdAt`, ...) are ignored so a client can send back what it read.
pub fn parse_template(body: &Value) -> Result<TemplateInput, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", MUST_BE_OBJECT)]);
    };
    let mut errors = Vec::new();

    let name = match present(obj, "name") {
        None => required(&mut errors, "name"),
        Some(Value::String(s)) => match check_name(s) {
            Ok(name) => Some(name),
            Err(message) => wrong(&mut errors, "name", &message),
        },
        Some(_) => wrong(&mut errors, "name", MUST_BE_STRING),
    };

    let id = match present(obj, "id") {
        None => None,
        Some(Value::String(s)) if is_valid_id(s) => Some(s.clone()),
        Some(Value::String(_)) => wrong(&mut errors, "id", INVALID_ID_MESSAGE),
        Some(_) => wrong(&mut errors, "id", MUST_BE_STRING),
    };

    let email = present(obj, "email").map(|v| parse_email(&mut errors, v));
    let sms = present(obj, "sms").map(|v| parse_sms(&mut errors, v));
    let social = present(obj, "social").map(|v| parse_social(&mut errors, v));
    if email.is_none() && sms.is_none() && social.is_none() {
        errors.push(FieldError::new(
            "body",
            "must include at least one of email, sms or social",
        ));
    }

    match name {
        Some(name) if errors.is_empty() => Ok(TemplateInput {
            id,
            name,
            content: TemplateContent {
                email: email.flatten(),
                sms: sms.flatten(),
                social: social.flatten(),
            },
        }),
        _ => Err(errors),
    }
}

/// Variables in `content` that no render could fill: roots other than [`VARIABLE_ROOTS`] (and
/// minijinja's own globals such as `range`), and `contact.<field>` for a field the contact
/// document does not have. One error per variable, at the part that uses it.
///
/// Parts with a syntax error or beyond the size bounds are skipped; [`parse_template`] reports
/// those.
pub fn check_variables(content: &TemplateContent) -> Vec<FieldError> {
    content
        .parts()
        .into_iter()
        .flat_map(|(part, source)| {
            if prove(part, source, Unknown::FailsAtRender).is_err() {
                return Vec::new();
            }
            let mut env = environment();
            match env.add_template(part.field(), source) {
                Ok(()) => env
                    .get_template(part.field())
                    .map(|template| unknown_variables(&env, part, &template))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        })
        .collect()
}

/// What a template is rendered against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderContext {
    /// The contact document as `GET /crm/contacts/:id` returns it (`id`, `email`, `phone`,
    /// `firstName`, `lastName`, `tags`, `attributes`, ...).
    pub contact: Value,
    /// The campaign document (`id`, `name`, ...); `{}` when there is none (a preview).
    pub campaign: Value,
    /// The one-click unsubscribe URL for this contact and send.
    pub unsubscribe_url: String,
}

/// A template rendered for one contact. Only the parts the template has are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<RenderedEmail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<RenderedSms>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub social: Option<RenderedSocial>,
}

/// A rendered email. The subject is one line: line breaks that come from data become spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedEmail {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A rendered SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedSms {
    pub body: String,
}

/// A rendered social post. `link` and `imageUrl` are trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedSocial {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// Why a template could not be rendered for a contact. Every message is safe to show users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The content does not compile (only from [`render`]; stored templates were checked at save).
    #[error("invalid template: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The template failed on this contact's data, e.g. arithmetic on a text attribute.
    #[error("{field} could not be rendered: {message}")]
    Failed {
        field: &'static str,
        message: String,
    },
    /// The part ran out of fuel: a loop too long for one message.
    #[error("{field} takes too many steps to render (the limit is {FUEL_PER_PART})")]
    TooMuchWork { field: &'static str },
    /// The part renders to more than [`MAX_RENDERED_BYTES`].
    #[error("{field} renders to more than {MAX_RENDERED_BYTES} bytes")]
    TooLarge { field: &'static str },
    /// The part could build values beyond the size limits, so it was never compiled (a template
    /// stored before the rule; saving it now is refused with the same message).
    #[error("{field} {message}")]
    Unbounded {
        field: &'static str,
        message: String,
    },
    /// With this contact's data the part could hold more than [`MAX_HELD_BYTES`] or allocate
    /// more than [`MAX_ALLOCATED_BYTES`]: it copies more of the data than fits.
    #[error("{field} would copy too much of this contact's data to render")]
    DataTooLarge { field: &'static str },
}

impl RenderError {
    /// The errors as field errors, for a `422` body.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            RenderError::Invalid(errors) => errors.clone(),
            RenderError::Failed { field, message } => vec![FieldError::new(
                *field,
                format!("could not be rendered: {message}"),
            )],
            RenderError::TooMuchWork { field } => vec![FieldError::new(*field, too_much_work())],
            RenderError::TooLarge { field } => vec![FieldError::new(*field, too_large())],
            RenderError::Unbounded { field, message } => {
                vec![FieldError::new(*field, message.clone())]
            }
            RenderError::DataTooLarge { field } => vec![FieldError::new(
                *field,
                "would copy too much of this contact's data to render",
            )],
        }
    }
}

/// Compiles `content` and renders it once. To render for many contacts, build a
/// [`CompiledTemplate`] once instead.
pub fn render(
    content: &TemplateContent,
    ctx: &RenderContext,
) -> Result<RenderedMessage, RenderError> {
    CompiledTemplate::new(content)
        .map_err(RenderError::Invalid)?
        .render(ctx)
}

/// A template compiled once and rendered many times (a launch renders it per contact).
///
/// It is `Send + Sync`, so one instance can be shared by every worker of a launch.
pub struct CompiledTemplate {
    env: Environment<'static>,
    /// Each part with its proven bound, or why it was not compiled.
    parts: Vec<(Part, Result<bounds::Bounded, String>)>,
}

impl fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledTemplate")
            .field(
                "parts",
                &self
                    .parts
                    .iter()
                    .map(|(p, _)| p.field())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CompiledTemplate {
    /// Compiles every part of `content`, reporting each syntax error at its field.
    ///
    /// Other save-time rules ([`parse_template`]) are not applied, so templates stored under
    /// older rules still render, except for the size bounds: a part that could build values
    /// beyond them is not compiled, and every render returns [`RenderError::Unbounded`] for it.
    pub fn new(content: &TemplateContent) -> Result<Self, Vec<FieldError>> {
        let mut env = environment();
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        for (part, source) in content.parts() {
            match prove(part, source, Unknown::FailsAtRender) {
                Err(Unproven::Syntax(err)) => {
                    errors.push(FieldError::new(part.field(), syntax_message(&err)));
                }
                Err(Unproven::Refused(refusal)) => parts.push((part, Err(refusal.to_string()))),
                Ok(bounded) => match env.add_template_owned(part.field(), source.to_owned()) {
                    Ok(()) => parts.push((part, Ok(bounded))),
                    Err(err) => errors.push(FieldError::new(part.field(), syntax_message(&err))),
                },
            }
        }
        if errors.is_empty() {
            Ok(Self { env, parts })
        } else {
            Err(errors)
        }
    }

    /// Renders every part for one contact.
    pub fn render(&self, ctx: &RenderContext) -> Result<RenderedMessage, RenderError> {
        for (part, compiled) in &self.parts {
            let field = part.field();
            match compiled {
                Err(message) => {
                    return Err(RenderError::Unbounded {
                        field,
                        message: message.clone(),
                    })
                }
                Ok(bounded) => {
                    if !bounded.fits(&ctx.contact, &ctx.campaign, &ctx.unsubscribe_url) {
                        return Err(RenderError::DataTooLarge { field });
                    }
                }
            }
        }
        // Converted once per contact and shared by every part.
        let root = root_value(ctx);
        let mut subject = None;
        let mut html = None;
        let mut text = None;
        let mut sms = None;
        let mut social_text = None;
        let mut link = None;
        let mut image_url = None;
        for &(part, _) in &self.parts {
            let template =
                self.env
                    .get_template(part.field())
                    .map_err(|err| RenderError::Failed {
                        field: part.field(),
                        message: err.to_string(),
                    })?;
            let output = render_part(part, &template, &root)?;
            match part {
                Part::EmailSubject => subject = Some(single_line(output)),
                Part::EmailHtml => html = Some(output),
                Part::EmailText => text = Some(output),
                Part::SmsBody => sms = Some(RenderedSms { body: output }),
                Part::SocialText => social_text = Some(output),
                Part::SocialLink => link = Some(output.trim().to_string()),
                Part::SocialImageUrl => image_url = Some(output.trim().to_string()),
            }
        }
        Ok(RenderedMessage {
            email: subject.map(|subject| RenderedEmail {
                subject,
                html,
                text,
            }),
            sms,
            social: social_text.map(|text| RenderedSocial {
                text,
                link,
                image_url,
            }),
        })
    }
}

/// The environment every template is compiled in; see the module docs for why each setting.
fn environment<'source>() -> Environment<'source> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|name| {
        if name == Part::EmailHtml.field() {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(format_value);
    env.set_fuel(Some(FUEL_PER_PART));
    env.set_recursion_limit(RECURSION_LIMIT);
    // `debug()` would print the whole context (the campaign document too) into a message.
    env.remove_global("debug");
    // Text bodies keep their last line break, as written.
    env.set_keep_trailing_newline(true);
    env
}

/// The variables a template sees.
fn root_value(ctx: &RenderContext) -> JinjaValue {
    context! {
        contact => JinjaValue::from_serialize(&ctx.contact),
        campaign => JinjaValue::from_serialize(&ctx.campaign),
        unsubscribeUrl => ctx.unsubscribe_url.as_str(),
    }
}

/// Parses `source` and proves its size bounds; nothing is compiled (MiniJinja evaluates constant
/// expressions such as `'x' * 99999999` when it compiles).
fn prove(part: Part, source: &str, unknown: Unknown) -> Result<bounds::Bounded, Unproven> {
    bounds::prove(source, part.field(), part == Part::EmailHtml, unknown)
}

/// Prints `null` and undefined as nothing, and HTML-escapes without touching `/`.
fn format_value(out: &mut Output, state: &State, value: &JinjaValue) -> Result<(), JinjaError> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    if state.auto_escape() == AutoEscape::Html && !value.is_safe() {
        let written = match value.as_str() {
            Some(s) => write_html_escaped(out, s),
            // Escaped as it prints: a list is not first turned into one string.
            None => fmt::write(&mut HtmlEscaping(out), format_args!("{value}")),
        };
        return written.map_err(JinjaError::from);
    }
    escape_formatter(out, state, value)
}

/// A writer that HTML-escapes what is written through it.
struct HtmlEscaping<'a, 'b>(&'a mut Output<'b>);

impl fmt::Write for HtmlEscaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_html_escaped(self.0, s)
    }
}

/// Escapes the five characters that matter in HTML text and quoted attributes.
fn write_html_escaped(out: &mut Output, s: &str) -> fmt::Result {
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        out.write_str(entity)?;
        start = i + 1;
    }
    out.write_str(&s[start..])
}

fn render_part(
    part: Part,
    template: &Template<'_, '_>,
    root: &JinjaValue,
) -> Result<String, RenderError> {
    run(template, root).map_err(|failure| match failure {
        Failure::TooLarge => RenderError::TooLarge {
            field: part.field(),
        },
        Failure::Engine(err) if err.kind() == ErrorKind::OutOfFuel => RenderError::TooMuchWork {
            field: part.field(),
        },
        Failure::Engine(err) => RenderError::Failed {
            field: part.field(),
            message: runtime_message(&err),
        },
    })
}

enum Failure {
    TooLarge,
    Engine(JinjaError),
}

fn run(template: &Template<'_, '_>, root: &JinjaValue) -> Result<String, Failure> {
    let mut sink = CappedBuffer::default();
    match template.render_captured_to(root, &mut sink) {
        // The engine writes whole `str` chunks and the buffer takes a chunk whole or not at all.
        Ok(_) => String::from_utf8(sink.bytes).map_err(|_| {
            Failure::Engine(JinjaError::new(
                ErrorKind::WriteFailure,
                "output is not UTF-8",
            ))
        }),
        Err(_) if sink.overflowed => Err(Failure::TooLarge),
        Err(err) => Err(Failure::Engine(err)),
    }
}

/// Output that refuses to grow past [`MAX_RENDERED_BYTES`], so a loop cannot eat memory.
#[derive(Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("rendered output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Everything a saved part must pass: it compiles, is bounded in size, uses only known variables
/// and filters, and renders for a contact with no data without exceeding the limits.
fn check_part(part: Part, source: &str) -> Vec<FieldError> {
    match prove(part, source, Unknown::Refuse) {
        Err(Unproven::Syntax(err)) => {
            return vec![FieldError::new(part.field(), syntax_message(&err))]
        }
        Err(Unproven::Refused(refusal)) => {
            return vec![FieldError::new(part.field(), refusal.to_string())]
        }
        Ok(_) => {}
    }
    let mut env = environment();
    if let Err(err) = env.add_template(part.field(), source) {
        return vec![FieldError::new(part.field(), syntax_message(&err))];
    }
    let Ok(template) = env.get_template(part.field()) else {
        return Vec::new();
    };
    let mut errors = unknown_variables(&env, part, &template);
    if errors.is_empty() {
        errors.extend(trial_render(part, &template));
    }
    errors
}

/// Renders against an empty contact to catch mistakes no data can fix. Errors that depend on
/// data (arithmetic on a missing attribute) are left to render time.
fn trial_render(part: Part, template: &Template<'_, '_>) -> Option<FieldError> {
    let sample = RenderContext {
        contact: json!({"id": "ct-sample", "tags": [], "attributes": {}}),
        campaign: json!({"id": "camp-sample", "name": "Sample"}),
        unsubscribe_url: "https://example.invalid/unsubscribe".to_string(),
    };
    match run(template, &root_value(&sample)) {
        Ok(_) => None,
        Err(Failure::Engine(err))
            if matches!(
                err.kind(),
                ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction
            ) =>
        {
            Some(FieldError::new(part.field(), runtime_message(&err)))
        }
        Err(Failure::Engine(err)) if err.kind() == ErrorKind::OutOfFuel => {
            Some(FieldError::new(part.field(), too_much_work()))
        }
        Err(Failure::TooLarge) => Some(FieldError::new(part.field(), too_large())),
        Err(Failure::Engine(_)) => None,
    }
}

fn unknown_variables(
    env: &Environment<'_>,
    part: Part,
    template: &Template<'_, '_>,
) -> Vec<FieldError> {
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let used: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
    used.into_iter()
        .filter_map(|path| {
            let mut segments = path.split('.');
            let root = segments.next().unwrap_or_default();
            let message = if root == "contact" {
                let field = segments.next()?;
                if CONTACT_FIELDS.contains(&field) {
                    return None;
                }
                format!(
                    "uses contact.{field}, which is not a contact field; custom fields are under contact.attributes"
                )
            } else if VARIABLE_ROOTS.contains(&root) || globals.contains(root) {
                return None;
            } else {
                format!(
                    "uses the unknown variable {path}; available: contact, campaign, unsubscribeUrl"
                )
            };
            Some(FieldError::new(part.field(), message))
        })
        .collect()
}

fn syntax_message(err: &JinjaError) -> String {
    let detail = err.detail().unwrap_or("invalid syntax");
    match err.line() {
        Some(line) => format!("has a template syntax error on line {line}: {detail}"),
        None => format!("has a template syntax error: {detail}"),
    }
}

fn runtime_message(err: &JinjaError) -> String {
    let what = match err.detail() {
        Some(detail) => detail.to_string(),
        None => err.kind().to_string(),
    };
    match err.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

fn too_much_work() -> String {
    format!("takes more than {FUEL_PER_PART} steps to render; shorten its loops")
}

fn too_large() -> String {
    format!("renders to more than {MAX_RENDERED_BYTES} bytes")
}

/// Breaks from data would make a multi-line header; a subject is one line.
fn single_line(s: String) -> String {
    if s.contains(['\r', '\n']) {
        s.split(['\r', '\n'])
            .filter(|line| !line.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s
    }
}

fn parse_email(errors: &mut Vec<FieldError>, value: &Value) -> Option<EmailContent> {
    let Value::Object(obj) = value else {
        return wrong(errors, "email", MUST_BE_OBJECT);
    };
    let before = errors.len();
    let subject = template_string(errors, obj, Part::EmailSubject, true);
    let html = template_string(errors, obj, Part::EmailHtml, false);
    let text = template_string(errors, obj, Part::EmailText, false);
    let body_given = [Part::EmailHtml, Part::EmailText]
        .iter()
        .any(|part| present(obj, part.key()).is_some_and(|v| !is_blank(v)));
    if !body_given {
        errors.push(FieldError::new(
            "email",
            "must include html or text (or both)",
        ));
    }
    match subject {
        Some(subject) if errors.len() == before => Some(EmailContent {
            subject,
            html,
            text,
        }),
        _ => None,
    }
}

fn parse_sms(errors: &mut Vec<FieldError>, value: &Value) -> Option<SmsContent> {
    let Value::Object(obj) = value else {
        return wrong(errors, "sms", MUST_BE_OBJECT);
    };
    template_string(errors, obj, Part::SmsBody, true).map(|body| SmsContent { body })
}

fn parse_social(errors: &mut Vec<FieldError>, value: &Value) -> Option<SocialContent> {
    let Value::Object(obj) = value else {
        return wrong(errors, "social", MUST_BE_OBJECT);
    };
    let before = errors.len();
    let text = template_string(errors, obj, Part::SocialText, true);
    let link = template_string(errors, obj, Part::SocialLink, false);
    let image_url = template_string(errors, obj, Part::SocialImageUrl, false);
    match text {
        Some(text) if errors.len() == before => Some(SocialContent {
            text,
            link,
            image_url,
        }),
        _ => None,
    }
}

/// One template string of a channel object. A blank optional string counts as absent. The
/// string is returned when its type is right, even if its template has errors, so the caller
/// can still tell "given" from "missing".
fn template_string(
    errors: &mut Vec<FieldError>,
    obj: &Map<String, Value>,
    part: Part,
    is_required: bool,
) -> Option<String> {
    match present(obj, part.key()) {
        None if is_required => required(errors, part.field()),
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            if is_required {
                errors.push(FieldError::new(part.field(), "must not be empty"));
            }
            None
        }
        Some(Value::String(s)) => {
            errors.extend(check_part(part, s));
            Some(s.clone())
        }
        Some(_) => wrong(errors, part.field(), MUST_BE_STRING),
    }
}

const MUST_BE_STRING: &str = "must be a string";
const MUST_BE_OBJECT: &str = "must be an object";

/// The field's value, treating `null` as absent.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn is_blank(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.trim().is_empty())
}

fn required<T>(errors: &mut Vec<FieldError>, field: &str) -> Option<T> {
    errors.push(FieldError::new(field, "is required"));
    None
}

fn wrong<T>(errors: &mut Vec<FieldError>, field: &str, message: &str) -> Option<T> {
    errors.push(FieldError::new(field, message));
    None
}

/// The trimmed name, or why it is not acceptable.
fn check_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        Err("must not be empty".to_string())
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        Err(format!("must be at most {MAX_NAME_CHARS} characters"))
    } else {
        Ok(trimmed.to_string())
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: Value) -> Vec<FieldError> {
        parse_template(&body).expect_err("the body should be refused")
    }

    fn error(field: &str, message: &str) -> FieldError {
        FieldError::new(field, message)
    }

    /// The single error at `field`, whatever else was reported.
    fn message_at(errors: &[FieldError], field: &str) -> String {
        let found: Vec<_> = errors.iter().filter(|e| e.field == field).collect();
        assert_eq!(found.len(), 1, "one error at {field} in {errors:?}");
        found[0].message.clone()
    }

    fn ada() -> RenderContext {
        RenderContext {
            contact: json!({
                "id": "ct-1",
                "email": "ada@example.com",
                "phone": "+15555550100",
                "firstName": "Ada",
                "lastName": "Lovelace",
                "tags": ["vip", "beta"],
                "attributes": {"plan": "pro", "seats": 12},
            }),
            campaign: json!({"id": "camp-1", "name": "Spring launch"}),
            unsubscribe_url:
                "https://herald.example/connect/automation/camp-1/run-1/unsubscribe/?t=abc"
                    .to_string(),
        }
    }

    fn email(subject: &str, html: &str, text: &str) -> TemplateContent {
        TemplateContent {
            email: Some(EmailContent {
                subject: subject.to_string(),
                html: Some(html.to_string()),
                text: Some(text.to_string()),
            }),
            ..TemplateContent::default()
        }
    }

    fn sms(body: &str) -> TemplateContent {
        TemplateContent {
            sms: Some(SmsContent {
                body: body.to_string(),
            }),
            ..TemplateContent::default()
        }
    }

    fn render_sms(body: &str, ctx: &RenderContext) -> Result<String, RenderError> {
        render(&sms(body), ctx).map(|message| message.sms.expect("an sms part").body)
    }

    #[test]
    fn a_template_with_every_channel_parses_and_is_stored_as_camel_case() {
        let input = parse_template(&json!({
            "id": "tpl-spring-launch",
            "name": "  Spring launch  ",
            "email": {
                "subject": "Hi {{ contact.firstName }}",
                "html": "<p>Hello {{ contact.firstName }}</p>",
                "text": "Hello {{ contact.firstName }}",
            },
            "sms": {"body": "{{ campaign.name }}: reply STOP to opt out"},
            "social": {"text": "Spring is here", "link": "https://example.com", "imageUrl": ""},
            "version": 7,
            "createdAt": "2026-01-01T00:00:00Z",
            "somethingElse": true,
        }))
        .expect("a valid template");

        assert_eq!(input.id.as_deref(), Some("tpl-spring-launch"));
        assert_eq!(input.name, "Spring launch");
        assert_eq!(
            serde_json::to_value(&input.content).unwrap(),
            json!({
                "email": {
                    "subject": "Hi {{ contact.firstName }}",
                    "html": "<p>Hello {{ contact.firstName }}</p>",
                    "text": "Hello {{ contact.firstName }}",
                },
                "sms": {"body": "{{ campaign.name }}: reply STOP to opt out"},
                "social": {"text": "Spring is here", "link": "https://example.com"},
            })
        );
        let back: TemplateContent =
            serde_json::from_value(serde_json::to_value(&input.content).unwrap()).unwrap();
        assert_eq!(back, input.content);
    }

    #[test]
    fn a_single_channel_is_enough() {
        let input = parse_template(&json!({"name": "SMS", "sms": {"body": "Hi"}, "email": null}))
            .expect("a valid template");
        assert_eq!(input.content, sms("Hi"));
        assert_eq!(input.id, None);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_as_a_whole() {
        for body in [json!([]), json!("x"), json!(null)] {
            assert_eq!(errors(body), [error("body", "must be an object")]);
        }
    }

    #[test]
    fn every_field_error_is_reported_at_once_with_its_path() {
        assert_eq!(
            errors(json!({
                "id": "bad id",
                "name": 3,
                "email": {"subject": 1, "html": ["x"]},
                "sms": {},
                "social": {"text": "", "link": false},
            })),
            [
                error("name", "must be a string"),
                error("id", INVALID_ID_MESSAGE),
                error("email.subject", "must be a string"),
                error("email.html", "must be a string"),
                error("sms.body", "is required"),
                error("social.text", "must not be empty"),
                error("social.link", "must be a string"),
            ]
        );
    }

    #[test]
    fn the_name_and_at_least_one_channel_are_required() {
        assert_eq!(
            errors(json!({"id": "tpl-1"})),
            [
                error("name", "is required"),
                error("body", "must include at least one of email, sms or social"),
            ]
        );
        assert_eq!(
            errors(json!({"name": " ", "sms": {"body": "x"}})),
            [error("name", "must not be empty")]
        );
        assert_eq!(
            errors(json!({"name": "x".repeat(201), "sms": {"body": "x"}})),
            [error("name", "must be at most 200 characters")]
        );
        assert!(parse_template(&json!({"name": "x".repeat(200), "sms": {"body": "x"}})).is_ok());
    }

    #[test]
    fn an_email_needs_a_subject_and_a_body() {
        assert_eq!(
            errors(json!({"name": "n", "email": {"html": "<p>hi</p>"}})),
            [error("email.subject", "is required")]
        );
        assert_eq!(
            errors(json!({"name": "n", "email": {"subject": "Hi", "html": " ", "text": null}})),
            [error("email", "must include html or text (or both)")]
        );
        assert_eq!(
            errors(json!({"name": "n", "email": "Hi", "sms": 1, "social": []})),
            [
                error("email", "must be an object"),
                error("sms", "must be an object"),
                error("social", "must be an object"),
            ]
        );
        let text_only =
            parse_template(&json!({"name": "n", "email": {"subject": "Hi", "text": "Hello"}}))
                .expect("a text-only email");
        assert_eq!(
            text_only.content.email.map(|e| (e.html, e.text)),
            Some((None, Some("Hello".to_string())))
        );
    }

    #[test]
    fn a_syntax_error_is_reported_at_its_field_with_its_line() {
        let errors = errors(json!({
            "name": "n",
            "email": {
                "subject": "Hi {{ contact.firstName",
                "html": "<p>one</p>\n<p>two</p>\n{% if contact.firstName %}Hi",
                "text": "fine",
            },
            "sms": {"body": "{% for t in contact.tags %}{{ t }}"},
        }));
        assert_eq!(errors.len(), 3, "{errors:?}");
        let subject = message_at(&errors, "email.subject");
        assert!(
            subject.starts_with("has a template syntax error on line 1: "),
            "{subject}"
        );
        let html = message_at(&errors, "email.html");
        assert!(
            html.starts_with("has a template syntax error on line 3: "),
            "{html}"
        );
        assert!(message_at(&errors, "sms.body").contains("syntax error on line 1"));
    }

    #[test]
    fn a_syntax_error_does_not_hide_the_other_errors_of_its_part() {
        let errors = errors(json!({"name": "n", "email": {"html": "{{"}}));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(message_at(&errors, "email.subject"), "is required");
        assert!(message_at(&errors, "email.html").contains("syntax error on line 1"));
    }

    #[test]
    fn a_variable_outside_the_allowed_roots_is_refused_at_save() {
        let content = email(
            "Hi {{ foo.bar }}",
            "{{ contact.firstName }} {{ contact.attributes.anything.deep }} {{ campaign.whatever }} {{ unsubscribeUrl }}",
            "{% for tag in contact.tags %}{{ loop.index }}{{ tag }}{% endfor %}{% set x = 1 %}{{ x }}{{ range(3)|join }}",
        );
        assert_eq!(
            check_variables(&content),
            [error(
                "email.subject",
                "uses the unknown variable foo.bar; available: contact, campaign, unsubscribeUrl"
            )]
        );

        let errors = errors(json!({"name": "n", "sms": {"body": "{{ unsubscribe_url }}"}}));
        assert_eq!(
            errors,
            [error(
                "sms.body",
                "uses the unknown variable unsubscribe_url; available: contact, campaign, unsubscribeUrl"
            )]
        );
    }

    #[test]
    fn the_debug_function_is_not_available() {
        assert_eq!(
            check_variables(&sms("{{ debug() }}")),
            [error(
                "sms.body",
                "uses the unknown variable debug; available: contact, campaign, unsubscribeUrl"
            )]
        );
    }

    #[test]
    fn a_misspelt_contact_field_is_refused_at_save() {
        assert_eq!(
            errors(json!({"name": "n", "sms": {"body": "Hi {{ contact.firstname }}"}})),
            [error(
                "sms.body",
                "uses contact.firstname, which is not a contact field; custom fields are under contact.attributes"
            )]
        );
    }

    #[test]
    fn an_unknown_filter_is_refused_at_save() {
        let errors = errors(json!({"name": "n", "sms": {"body": "{{ contact.firstName|shout }}"}}));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            message_at(&errors, "sms.body"),
            "filter shout is unknown (line 1)"
        );
    }

    #[test]
    fn every_variable_renders_in_every_channel() {
        let content = TemplateContent {
            email: Some(EmailContent {
                subject: "{{ campaign.name }} for {{ contact.firstName }}".to_string(),
                html: Some(
                    "<a href=\"{{ unsubscribeUrl }}\">Unsubscribe {{ contact.email }}</a>"
                        .to_string(),
                ),
                text: Some(
                    "Plan: {{ contact.attributes.plan }} ({{ contact.attributes.seats }} seats)\n"
                        .to_string(),
                ),
            }),
            sms: Some(SmsContent {
                body:
                    "{{ contact.firstName }} {{ contact.lastName }}: {{ contact.tags|join(', ') }}"
                        .to_string(),
            }),
            social: Some(SocialContent {
                text: "{{ campaign.name }}".to_string(),
                link: Some(" https://example.com/{{ campaign.id }} ".to_string()),
                image_url: Some("https://cdn.example.com/{{ contact.id }}.png".to_string()),
            }),
        };
        let message = render(&content, &ada()).expect("renders");
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({
                "email": {
                    "subject": "Spring launch for Ada",
                    "html": "<a href=\"https://herald.example/connect/automation/camp-1/run-1/unsubscribe/?t=abc\">Unsubscribe ada@example.com</a>",
                    "text": "Plan: pro (12 seats)\n",
                },
                "sms": {"body": "Ada Lovelace: vip, beta"},
                "social": {
                    "text": "Spring launch",
                    "link": "https://example.com/camp-1",
                    "imageUrl": "https://cdn.example.com/ct-1.png",
                },
            })
        );
    }

    #[test]
    fn html_is_escaped_but_subject_and_text_are_not() {
        let mut ctx = ada();
        ctx.contact["firstName"] = json!("<script>alert('x')</script> & co");
        let content = email(
            "Hi {{ contact.firstName }}",
            "<p title=\"{{ contact.firstName }}\">{{ contact.firstName }}</p>",
            "Hi {{ contact.firstName }}",
        );
        let email = render(&content, &ctx).unwrap().email.unwrap();
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co";
        assert_eq!(
            email.html.as_deref(),
            Some(format!("<p title=\"{escaped}\">{escaped}</p>").as_str())
        );
        assert_eq!(email.subject, "Hi <script>alert('x')</script> & co");
        assert_eq!(
            email.text.as_deref(),
            Some("Hi <script>alert('x')</script> & co")
        );
        assert_eq!(
            render_sms("{{ contact.firstName }}", &ctx).unwrap(),
            "<script>alert('x')</script> & co"
        );
    }

    #[test]
    fn missing_and_null_data_renders_empty() {
        let ctx = RenderContext {
            contact: json!({"id": "ct-2", "lastName": null}),
            campaign: json!({}),
            unsubscribe_url: String::new(),
        };
        assert_eq!(
            render_sms(
                "Hi {{ contact.firstName }}{{ contact.lastName }}{{ contact.attributes.plan.tier }}!",
                &ctx
            )
            .unwrap(),
            "Hi !"
        );
        assert_eq!(
            render_sms("Hi {{ contact.firstName|default('there') }}", &ctx).unwrap(),
            "Hi there"
        );
    }

    #[test]
    fn line_breaks_from_data_do_not_reach_the_subject() {
        let mut ctx = ada();
        ctx.contact["firstName"] = json!("Ada\r\nBcc: victim@example.com");
        let email = render(&email("Hi {{ contact.firstName }}", "x", "x"), &ctx)
            .unwrap()
            .email
            .unwrap();
        assert_eq!(email.subject, "Hi Ada Bcc: victim@example.com");
    }

    #[test]
    fn a_runaway_loop_fails_instead_of_hanging() {
        let ctx = ada();
        for body in [
            "{% for i in range(100000000) %}x{% endfor %}",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
        ] {
            let err = render_sms(body, &ctx).expect_err("must not render");
            assert_eq!(err.field_errors()[0].field, "sms.body", "{err}");
        }
        assert_eq!(
            render_sms(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                &ctx
            ),
            Err(RenderError::TooMuchWork { field: "sms.body" })
        );
    }

    #[test]
    fn output_larger_than_the_limit_is_refused() {
        assert_eq!(
            render_sms("{{ 'x' * 2000000 }}", &ada()),
            Err(RenderError::TooLarge { field: "sms.body" })
        );
        let big = format!("{}{{{{ contact.firstName }}}}", "x".repeat(600_000));
        assert_eq!(
            render_sms(&format!("{big}{big}"), &ada()),
            Err(RenderError::TooLarge { field: "sms.body" })
        );
    }

    #[test]
    fn templates_that_fail_on_any_contact_are_refused_at_save() {
        let errors = errors(json!({
            "name": "n",
            "sms": {"body": "{% for i in range(100000) %}{{ i }}{% endfor %}"},
        }));
        assert_eq!(
            errors,
            [error(
                "sms.body",
                "takes more than 100000 steps to render; shorten its loops"
            )]
        );
    }

    #[test]
    fn a_data_dependent_failure_is_a_render_error_naming_the_field() {
        let err = render_sms(
            "{{ contact.attributes.seats + contact.attributes.plan }}",
            &ada(),
        )
        .expect_err("a number plus a string");
        match &err {
            RenderError::Failed { field, message } => {
                assert_eq!(*field, "sms.body");
                assert!(message.contains("line 1"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("sms.body could not be rendered: "));
    }

    #[test]
    fn render_reports_syntax_errors_of_unchecked_content() {
        let err = render(&sms("{{"), &ada()).expect_err("does not compile");
        let errors = err.field_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "sms.body");
        assert!(errors[0].message.contains("syntax error on line 1"));
    }

    #[test]
    fn includes_and_macros_are_not_part_of_the_language() {
        for body in [
            "{% include 'email.html' %}",
            "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        ] {
            let errors = errors(json!({"name": "n", "sms": {"body": body}}));
            assert!(
                message_at(&errors, "sms.body").contains("syntax error"),
                "{body}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_compiled_template_renders_many_contacts_and_is_shareable() {
        fn shareable<T: Send + Sync>(_: &T) {}
        let compiled = CompiledTemplate::new(&sms("Hi {{ contact.firstName }}")).unwrap();
        shareable(&compiled);
        for (i, name) in ["Ada", "Grace", "Edsger"].into_iter().enumerate() {
            let mut ctx = ada();
            ctx.contact["firstName"] = json!(name);
            let message = compiled.render(&ctx).unwrap();
            assert_eq!(
                message.sms.unwrap().body,
                format!("Hi {name}"),
                "contact {i}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_template_string_is_accepted_or_refused_without_panicking(source in "\\PC{0,60}") {
            let body = json!({"name": "n", "sms": {"body": source}, "email": {"subject": source, "html": source}});
            if let Err(errors) = parse_template(&body) {
                proptest::prop_assert!(!errors.is_empty());
            }
        }

        #[test]
        fn text_without_template_syntax_renders_as_written(text in "[^{}%#]{1,80}") {
            proptest::prop_assume!(!text.trim().is_empty());
            let input = parse_template(&json!({"name": "n", "sms": {"body": text}})).unwrap();
            let message = render(&input.content, &ada()).unwrap();
            proptest::prop_assert_eq!(message.sms.unwrap().body, text);
        }
    }
}
