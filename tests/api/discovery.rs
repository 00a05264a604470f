//! Discovery endpoints for channel pickers and campaign types.

use reqwest::Method;

use crate::db_test;
use crate::helpers::*;

db_test!(
    campaign_types_and_platforms_are_listed_for_any_role,
    |app: TestApp| async move {
        let t = token(&["acme"], &["auditor"], "audrey");
        let types = app
            .as_user(&t, "acme", Method::GET, "/crm/marketing/campaign-types")
            .send()
            .await;
        assert_eq!(types.status, 200);
        let ids: Vec<&str> = types
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        for wanted in [
            "one-shot",
            "drip",
            "recurring",
            "milestone",
            "multi-channel",
        ] {
            assert!(ids.contains(&wanted), "{wanted} in {ids:?}");
        }
        assert!(types.body[0]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));

        let platforms = app
            .as_user(&t, "acme", Method::GET, "/crm/marketing/platforms")
            .send()
            .await;
        let ids: Vec<&str> = platforms
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "email",
                "sms",
                "facebook",
                "instagram",
                "linkedin",
                "x",
                "google-ads",
                "meta-ads"
            ]
        );
        let email = &platforms.body[0];
        assert_eq!(email["category"], "email");
        assert!(email["vendors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "sandbox"));

        let profiles = app
            .admin(Method::GET, "/crm/marketing/social-profiles/facebook")
            .send()
            .await;
        assert_eq!(profiles.body, serde_json::json!([]));
        app.admin(Method::GET, "/crm/marketing/social-profiles/myspace")
            .send()
            .await
            .assert_problem(404);
    }
);
