//! Vendor adapter tests: the real adapters against local stand-ins (wiremock for HTTP vendors, a
//! tiny SMTP server) that accept only the request shape each vendor documents.

mod helpers;

mod ads;
mod config;
mod failures;
mod linkedin;
mod mailgun;
mod meta;
mod rate_limit;
mod sendgrid;
mod smtp;
mod twilio;
mod x;
