//! Google Ads and Meta Ads connections, which have nothing to send per contact.
//!
//! An ad campaign runs inside the ads platform; Herald records its results through
//! `POST /crm/marketing/campaigns/:id/engagements`. The nearest per-contact call would add the
//! contact to a Customer Match (Google) or Custom Audience (Meta) list, but that is audience
//! sync, not a send: it needs an audience id and hashed identifiers that connections do not
//! hold, and Google's OAuth refresh also needs a client id and secret. TODO: offer audience sync
//! as its own feature if customers ask for it.

use super::{permanent, Adapter, OutboundMessage, Receipt, SendError};

pub(super) struct Ads {
    vendor: &'static str,
}

impl Ads {
    pub(super) fn new(vendor: &'static str) -> Ads {
        Ads { vendor }
    }
}

#[async_trait::async_trait]
impl Adapter for Ads {
    fn vendor(&self) -> &'static str {
        self.vendor
    }

    async fn send(&self, _message: &OutboundMessage) -> Result<Receipt, SendError> {
        Err(permanent(
            self.vendor,
            "ads platforms are not sent per contact; run the ad campaign in the platform and \
             report its results through the campaign's engagements endpoint",
        ))
    }
}
