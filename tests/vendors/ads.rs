use herald::vendors::adapter_for;
use herald_domain::spec::Channel;
use serde_json::json;
use std::time::Duration;

use crate::helpers::{connection, http_client, post};

#[tokio::test]
async fn ads_connections_refuse_per_contact_sends_for_good() {
    for (vendor, channel, credentials, settings) in [
        (
            "google-ads",
            Channel::GoogleAds,
            json!({"developerToken": "dev-secret", "refreshToken": "refresh-secret"}),
            json!({"customerId": "123-456-7890"}),
        ),
        (
            "meta-ads",
            Channel::MetaAds,
            json!({"accessToken": "ads-secret"}),
            json!({"adAccountId": "act_1"}),
        ),
    ] {
        let config = connection(vendor, settings, credentials);
        let adapter = adapter_for(&config, http_client(Duration::from_secs(1))).unwrap();

        let error = adapter
            .send(&post(channel, "ct-1", "Spring sale"))
            .await
            .unwrap_err();

        assert_eq!(adapter.vendor(), vendor);
        assert!(!error.is_retryable());
        assert!(
            error
                .to_string()
                .contains("ads platforms are not sent per contact"),
            "{error}"
        );
    }
}
