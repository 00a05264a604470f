//! The org's marketing settings (`api.md` section 12): defaults until an admin sets them, a
//! whole-body `PUT` validated field by field, each change an event with its actor.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const PATH: &str = "/crm/marketing/settings";

fn example() -> Value {
    json!({"defaultTimezone": "Europe/Berlin",
        "frequencyCaps": [{"channel": "email", "max": 2, "per": "day"}, {"channel": "*", "max": 5, "per": "week"}],
        "quietHours": {"start": "21:00", "end": "08:00", "channels": ["sms"]}})
}

db_test!(
    api_only an_admin_sets_the_settings_and_every_role_reads_them,
    |app: TestApp| async move {
        let fresh = app.admin(Method::GET, PATH).send().await;
        assert_eq!(fresh.status, 200, "{}", fresh.text);
        assert_eq!(
            fresh.body,
            json!({"defaultTimezone": "UTC", "frequencyCaps": [], "quietHours": null})
        );
        let put = app.admin(Method::PUT, PATH).json(&example()).send().await;
        assert_eq!(put.status, 200, "{}", put.text);
        assert_eq!(put.body, example());
        let analyst = token(&["acme"], &["analyst"], "ana");
        let read = app
            .as_user(&analyst, "acme", Method::GET, &format!("/api{PATH}"))
            .send()
            .await;
        assert_eq!(read.body, example());
        let other = token(&["globex"], &["admin"], "gina");
        let theirs = app.as_user(&other, "globex", Method::GET, PATH).send().await;
        assert_eq!(theirs.body["defaultTimezone"], "UTC", "another org is untouched");

        // The same body again writes nothing.
        let again = app.admin(Method::PUT, PATH).json(&example()).send().await;
        assert_eq!(again.status, 200);
        let events: Vec<Value> = app
            .all_events()
            .await
            .into_iter()
            .filter(|e| e["eventType"] == "SettingsUpdated")
            .collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["streamId"], "settings-acme");
        assert_eq!(events[0]["metadata"]["actor"], "alice");
        assert_eq!(events[0]["data"], example());
    }
);

db_test!(
    api_only bad_settings_are_422_and_change_nothing,
    |app: TestApp| async move {
        let put = app.admin(Method::PUT, PATH).json(&example()).send().await;
        assert_eq!(put.status, 200, "{}", put.text);
        for (change, field) in [
            (json!({"defaultTimezone": "Mars/Olympus"}), "defaultTimezone"),
            (json!({"frequencyCaps": [{"channel": "email", "max": 0, "per": "day"}]}), "frequencyCaps[0].max"),
            (json!({"frequencyCaps": [{"channel": "email", "max": 1, "per": "month"}]}), "frequencyCaps[0].per"),
            (json!({"frequencyCaps": [{"channel": "fax", "max": 1, "per": "day"}]}), "frequencyCaps[0].channel"),
            (json!({"quietHours": {"start": "9pm", "end": "08:00", "channels": ["sms"]}}), "quietHours.start"),
            (json!({"quietHours": {"start": "21:00", "end": "24:00", "channels": ["sms"]}}), "quietHours.end"),
            (json!({"quietHours": {"start": "21:00", "end": "8:00", "channels": ["sms"]}}), "quietHours.end"),
        ] {
            let mut body = example();
            for (key, value) in change.as_object().unwrap() {
                body[key] = value.clone();
            }
            let reply = app.admin(Method::PUT, PATH).json(&body).send().await;
            reply.assert_problem(422);
            assert_eq!(reply.body["errors"][0]["field"], field, "{body}: {}", reply.text);
        }
        let marketer = token(&["acme"], &["marketer"], "mo");
        app.as_user(&marketer, "acme", Method::PUT, PATH)
            .json(&json!({"defaultTimezone": "Asia/Tokyo"}))
            .send()
            .await
            .assert_problem(403);
        assert_eq!(app.admin(Method::GET, PATH).send().await.body, example());
    }
);
