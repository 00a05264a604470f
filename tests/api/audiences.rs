//! Audiences, DynamicQuery reach and preview, and templates with rendering.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

async fn seed_contacts(app: &TestApp) {
    let contacts = json!([
        {"id": "ct-ann", "email": "ann@example.com", "firstName": "Ann", "tags": ["prospect"], "attributes": {"plan": "pro", "score": 80}},
        {"id": "ct-bob", "email": "bob@example.com", "firstName": "Bob", "tags": ["vip", "customer"], "attributes": {"plan": "free", "score": 20}},
        {"id": "ct-cid", "email": "cid@example.com", "firstName": "<script>alert(1)</script>", "tags": [], "attributes": {"score": "high"}},
        {"id": "ct-dee", "phone": "+447911123456", "firstName": "Dee", "tags": ["prospect", "vip"]}
    ]);
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&contacts)
        .send()
        .await;
    assert_eq!(reply.body["created"], 4, "{}", reply.text);
}

fn ids(reply: &Reply) -> Vec<String> {
    let mut ids: Vec<String> = reply.body["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

db_test!(
    reach_and_preview_evaluate_the_filter_over_the_orgs_contacts,
    |app: TestApp| async move {
        seed_contacts(&app).await;
        let audience = json!({"id": "aud-hot", "name": "Hot", "type": "dynamic", "filter": {"datatype": "contact",
        "where": {"tags": {"$in": ["prospect", "vip"]}, "attributes.score": {"$gte": 50}, "email": {"$exists": true}}}});
        let created = app
            .admin(Method::POST, "/crm/audiences")
            .json(&audience)
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let reach = app
            .admin(Method::GET, "/crm/audiences/aud-hot/reach")
            .send()
            .await;
        assert_eq!(reach.body["count"], 1, "{}", reach.text);
        assert_eq!(ids(&reach), ["ct-ann"]);

        let preview = |filter: Value| {
            app.admin(Method::POST, "/crm/audiences/preview")
                .json(&json!({"filter": filter}))
                .send()
        };
        let vip = preview(json!({"datatype": "contact", "where": {"tags": "vip"}})).await;
        assert_eq!(ids(&vip), ["ct-bob", "ct-dee"]);
        let no_email = preview(json!({"datatype": "contact", "where": {"email": null}})).await;
        assert_eq!(ids(&no_email), ["ct-dee"]);
        let strict =
            preview(json!({"datatype": "contact", "where": {"attributes.score": {"$gt": 10}}}))
                .await;
        assert_eq!(
            ids(&strict),
            ["ct-ann", "ct-bob"],
            "a string score is not compared with numbers"
        );
        let beta = token(&["beta"], &["admin"], "bob");
        let other = app
            .as_user(&beta, "beta", Method::POST, "/crm/audiences/preview")
            .json(&json!({"filter": {"datatype": "contact", "where": {}}}))
            .send()
            .await;
        assert_eq!(
            other.body["count"], 0,
            "another org's contacts are never counted"
        );
    }
);

db_test!(
    bad_filters_are_422_naming_the_path,
    |app: TestApp| async move {
        let mut deep = json!({"$eq": 1});
        for _ in 0..40 {
            deep = json!({"$and": [ {"x": deep} ]});
        }
        let cases = [
            (
                json!({"datatype": "contact", "where": {"tags": {"$foo": 1}}}),
                "filter.where.tags.$foo",
            ),
            (
                json!({"datatype": "contact", "where": {"tags": {"$in": "vip"}}}),
                "filter.where.tags.$in",
            ),
            (
                json!({"datatype": "contact", "where": {"tags": {"$size": "two"}}}),
                "filter.where.tags.$size",
            ),
            (
                json!({"datatype": "contact", "where": {"email": {"$regex": "(unclosed"}}}),
                "filter.where.email.$regex",
            ),
            (json!({"datatype": "deal", "where": {}}), "filter.datatype"),
            (
                json!({"datatype": "contact", "where": deep}),
                "filter.where",
            ),
        ];
        for (filter, field) in cases {
            let reply = app
                .admin(Method::POST, "/crm/audiences")
                .json(&json!({"name": "Bad", "filter": filter}))
                .send()
                .await;
            reply.assert_problem(422);
            let fields: Vec<&str> = reply.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(
                fields.iter().any(|f| f.starts_with(field)),
                "{field} in {fields:?}"
            );
            let preview = app
                .admin(Method::POST, "/crm/audiences/preview")
                .json(&json!({"filter": filter}))
                .send()
                .await;
            preview.assert_problem(422);
        }
        assert!(app.all_events().await.is_empty());
    }
);

db_test!(
    templates_render_per_contact_with_html_escaping,
    |app: TestApp| async move {
        seed_contacts(&app).await;
        let template = json!({"id": "tpl-hello", "name": "Hello",
        "email": {"subject": "Hi {{ contact.firstName }}", "html": "<p>Hello {{ contact.firstName }} on {{ contact.attributes.plan }}</p><a href=\"{{ unsubscribeUrl }}\">unsubscribe</a>", "text": "Hello {{ contact.firstName }}"},
        "sms": {"body": "Hi {{ contact.firstName }}"}});
        let created = app
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&template)
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let rendered = app
            .admin(Method::POST, "/crm/marketing/templates/tpl-hello/render")
            .json(&json!({"contactId": "ct-ann"}))
            .send()
            .await;
        assert_eq!(rendered.status, 200, "{}", rendered.text);
        assert_eq!(rendered.body["rendered"]["email"]["subject"], "Hi Ann");
        assert!(rendered.body["rendered"]["email"]["html"]
            .as_str()
            .unwrap()
            .contains("Hello Ann on pro"));
        assert_eq!(rendered.body["rendered"]["sms"]["body"], "Hi Ann");
        let escaped = app
            .admin(Method::POST, "/crm/marketing/templates/tpl-hello/render")
            .json(&json!({"contactId": "ct-cid"}))
            .send()
            .await;
        let html = escaped.body["rendered"]["email"]["html"].as_str().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");

        let beta = token(&["beta"], &["admin"], "bob");
        app.as_user(
            &beta,
            "beta",
            Method::POST,
            "/crm/marketing/templates/tpl-hello/render",
        )
        .json(&json!({"contactId": "ct-ann"}))
        .send()
        .await
        .assert_problem(404);
        app.admin(Method::POST, "/crm/marketing/templates/tpl-hello/render")
            .json(&json!({"contactId": "ct-nobody"}))
            .send()
            .await
            .assert_problem(404);
    }
);

db_test!(
    a_template_with_a_syntax_error_or_unknown_variable_is_422,
    |app: TestApp| async move {
        let unclosed =
            json!({"name": "Broken", "email": {"subject": "Hi {{ contact.firstName", "text": "x"}});
        let reply = app
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&unclosed)
            .send()
            .await;
        reply.assert_problem(422);
        assert_eq!(reply.body["errors"][0]["field"], "email.subject");
        let unknown = json!({"name": "Unknown", "sms": {"body": "Hi {{ customer.name }}"}});
        let reply = app
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&unknown)
            .send()
            .await;
        reply.assert_problem(422);
        assert_eq!(reply.body["errors"][0]["field"], "sms.body");
        assert!(app.all_events().await.is_empty());
    }
);
