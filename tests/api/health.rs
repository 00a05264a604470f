//! Liveness, readiness and the operations health view.

use reqwest::Method;

use crate::db_test;
use crate::helpers::*;

db_test!(
    health_endpoints_report_the_process_and_projections,
    |app: TestApp| async move {
        assert_eq!(
            app.anonymous(Method::GET, "/healthz").send().await.status,
            200
        );
        let ready = app.anonymous(Method::GET, "/readyz").send().await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        app.post_campaign(&seed_campaign()).await;
        let health = app.admin(Method::GET, "/crm/marketing/health").send().await;
        assert_eq!(health.status, 200);
        assert_eq!(health.body["status"], "ok");
        assert!(
            health.body["projections"]["campaigns"]["position"]
                .as_i64()
                .unwrap()
                >= 1
        );
        app.anonymous(Method::GET, "/crm/marketing/health")
            .send()
            .await
            .assert_problem(401);
        let metrics = app.anonymous(Method::GET, "/metrics").send().await;
        assert!(metrics.text.contains("herald_event_log_head_position"));
    }
);
