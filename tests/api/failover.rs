//! Failover with real processes on one PostgreSQL (SQLite is one process by design): the node
//! sending a run is killed, stopped or asked to stop mid-run, and the other takes the job over
//! (in seconds after a crash, at once after SIGTERM) while every contact gets exactly one
//! message; a node whose clock runs 10 s ahead neither steals a live lease nor waits for a
//! dead one. Bounds are the issue's own (the lease, one poll, one second) with generous slack;
//! the speeds themselves are measured by `bench/failover.sh`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// `HERALD_JOB_LEASE`'s default, and the scheduler's poll interval.
const LEASE: Duration = Duration::from_secs(4);
const POLL: Duration = Duration::from_millis(200);
/// Slack on top of the bounds for a loaded test machine (two cores, debug build).
const SLACK: Duration = Duration::from_secs(5);

/// A `herald serve` process whose log goes to a file, killed when dropped.
struct Node {
    child: Child,
    base: String,
    log: PathBuf,
    /// Its scheduler's node id, as it appears in `jobs.locked_by`.
    id: String,
}

impl Node {
    async fn start(db: &herald::db::Db, url: &str, dir: &Path, env: &[(&str, &str)]) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("node-{port}.log"));
        std::fs::create_dir_all(dir).unwrap();
        let before = node_ids(db).await;
        let child = herald_process(url, dir)
            .arg("serve")
            .envs(env.iter().copied())
            .env("HERALD_BIND", format!("127.0.0.1:{port}"))
            .env("HERALD_DB_CONNECTIONS", "8")
            .env("RUST_LOG", "warn")
            .env("HERALD_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start herald serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let ready = eventually(Duration::from_secs(60), || async {
            client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        assert!(ready, "herald serve did not become ready at {base}");
        let id = node_ids(db)
            .await
            .into_iter()
            .find(|id| !before.contains(id))
            .expect("the new process registered its scheduler node");
        Node {
            child,
            base,
            log,
            id,
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `fields` of every log line whose message is `message`, with its `level`.
    fn logged(&self, message: &str) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .map(|line| {
                let mut fields = line["fields"].clone();
                fields["level"] = line["level"].clone();
                fields
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scheduler nodes registered so far (none before the first process migrated the database).
async fn node_ids(db: &herald::db::Db) -> HashSet<String> {
    sqlx::query_scalar::<_, String>("select node_id from scheduler_nodes")
        .fetch_all(&db.read)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// One PostgreSQL database, its pool for the test's own reads, and an admin client.
struct Cluster {
    url: String,
    dir: PathBuf,
    db: herald::db::Db,
    client: reqwest::Client,
    token: String,
}

impl Cluster {
    async fn new() -> Cluster {
        let url = fresh_postgres_database().await;
        Cluster {
            db: herald::db::Db::connect(&url, 2).await.unwrap(),
            url,
            dir: std::env::temp_dir().join(format!("herald-failover-{}", uuid::Uuid::now_v7())),
            client: reqwest::Client::new(),
            token: token(&["acme"], &["admin"], "alice"),
        }
    }

    async fn node(&self, env: &[(&str, &str)]) -> Node {
        Node::start(&self.db, &self.url, &self.dir, env).await
    }

    async fn call(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&self.token)
            .header("orgid", "acme");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A sandbox email connection, a template, an audience and `n` contacts, then a one-shot
    /// campaign to them, launched at once.
    async fn launch(&self, base: &str, n: usize) {
        let post = |path: &'static str, body: Value| {
            self.call(base, reqwest::Method::POST, path, Some(body))
        };
        post(
            "/crm/integrations/connections",
            json!({"platform": "email", "vendor": "sandbox", "label": "Sandbox"}),
        )
        .await;
        post(
            "/crm/marketing/templates",
            json!({"id": "tpl-news", "name": "News",
                "email": {"subject": "News for {{ contact.firstName }}", "html": "<p>Hi {{ contact.firstName }}</p>"}}),
        )
        .await;
        post(
            "/crm/audiences",
            json!({"id": "aud-news", "name": "News", "filter": {"datatype": "contact", "where": {"tags": "news"}}}),
        )
        .await;
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let contacts: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    json!({"id": format!("ct-{i:06}"), "email": format!("c{i}@acme.test"),
                    "firstName": format!("C{i}"), "tags": ["news"]})
                })
                .collect();
            post("/crm/contacts/import", Value::Array(contacts)).await;
        }
        let launched = post(
            "/crm/marketing/campaigns",
            json!({"id": "camp-big", "name": "Big", "type": "one-shot", "channels": ["email"],
                "audienceId": "aud-news", "templateId": "tpl-news", "status": "running"}),
        )
        .await;
        assert_eq!(launched["status"], "running", "{launched}");
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.db.read)
            .await
            .unwrap()
    }

    async fn sent(&self) -> i64 {
        self.scalar("select count(*) from sandbox_messages").await
    }

    /// The node holding the run's send job and the lease generation it holds.
    async fn holder(&self) -> Option<(String, i64)> {
        sqlx::query_as::<_, (Option<String>, i64)>(
            "select locked_by, lease_generation from jobs where kind = 'send' and state = 'running'",
        )
        .fetch_optional(&self.db.read)
        .await
        .unwrap()
        .and_then(|(node, generation)| node.map(|node| (node, generation)))
    }

    /// Waits until a node holds the send job and has recorded some, not all, of the run.
    async fn sending(&self, n: usize) -> (String, i64) {
        let started = eventually(Duration::from_secs(120), || async {
            self.holder().await.is_some() && self.sent().await > 0
        })
        .await;
        assert!(started, "the run started sending");
        let holder = self.holder().await.expect("a node holds the send job");
        assert!(
            self.sent().await < n as i64,
            "the run is still in the middle"
        );
        holder
    }

    /// Waits until `node` holds the send job; the time it took from `since`.
    async fn taken_by(&self, node: &Node, since: Instant, within: Duration) -> Duration {
        let taken = eventually(within + Duration::from_secs(30), || async {
            self.holder()
                .await
                .is_some_and(|(holder, _)| holder == node.id)
                || self.completed(&node.base).await
        })
        .await;
        assert!(taken, "{} took the send job over", node.id);
        since.elapsed()
    }

    /// Waits until more than `before` messages are out; the time it took from `since`.
    async fn sends_again(&self, before: i64, since: Instant, within: Duration) -> Duration {
        let again = eventually(within + Duration::from_secs(30), || async {
            self.sent().await > before
        })
        .await;
        assert!(again, "sending resumed");
        since.elapsed()
    }

    async fn completed(&self, base: &str) -> bool {
        self.call(
            base,
            reqwest::Method::GET,
            "/crm/marketing/campaigns/camp-big",
            None,
        )
        .await["status"]
            == "completed"
    }

    /// The run completes with exactly one message per contact and one `sent` ledger row each.
    async fn exactly_once(&self, base: &str, n: usize) {
        let completed = eventually(Duration::from_secs(300), || self.completed(base)).await;
        assert!(completed, "the run completed");
        assert_eq!(self.sent().await, n as i64, "messages in the outbox");
        assert_eq!(
            self.scalar("select count(distinct contact_id) from sandbox_messages")
                .await,
            n as i64,
            "no contact has two messages"
        );
        assert_eq!(
            self.scalar("select count(*) from send_ledger where state = 'sent'")
                .await,
            n as i64
        );
    }

    async fn metric(&self, base: &str, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics: {text}"))
    }
}

/// Of two nodes, the one whose id is `id`, and the other.
fn split(nodes: Vec<Node>, id: &str) -> (Node, Node) {
    let (mut holder, mut other): (Vec<Node>, Vec<Node>) =
        nodes.into_iter().partition(|n| n.id == id);
    (
        holder.pop().expect("the holder is one of the nodes"),
        other.pop().expect("the other node"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sender_is_taken_over_within_the_lease_and_no_contact_gets_two_messages() {
    const CONTACTS: usize = 10_000;
    let cluster = Cluster::new().await;
    let nodes = vec![cluster.node(&[]).await, cluster.node(&[]).await];
    cluster.launch(&nodes[0].base, CONTACTS).await;
    let (holder, _) = cluster.sending(CONTACTS).await;
    let (mut killed, survivor) = split(nodes, &holder);

    // The health view lists both live nodes with their heartbeats, and the run's job under the
    // node holding it.
    let view = cluster
        .call(
            &survivor.base,
            reqwest::Method::GET,
            "/crm/marketing/health",
            None,
        )
        .await;
    let live = view["scheduler"]["liveNodes"].as_array().unwrap();
    let ids: HashSet<&str> = live.iter().map(|n| n["nodeId"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        HashSet::from([holder.as_str(), survivor.id.as_str()]),
        "{view}"
    );
    for node in live {
        assert!(node["heartbeatAt"].is_string(), "{node}");
        let jobs: Vec<&str> = node["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["campaignId"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if node["nodeId"] == holder.as_str() {
            &["camp-big"]
        } else {
            &[]
        };
        assert_eq!(jobs, expected, "{node}");
    }

    let _ = killed.child.kill();
    let at = Instant::now();
    let _ = killed.child.wait();
    let before = cluster.sent().await;
    let bound = LEASE + POLL + SLACK;
    let taken = cluster.taken_by(&survivor, at, bound).await;
    let again = cluster.sends_again(before, at, bound).await;
    assert!(taken <= bound, "taken over {taken:?} after the kill");
    assert!(
        again <= bound,
        "the survivor sent again {again:?} after the kill (taken over after {taken:?}); the lease is {LEASE:?}"
    );
    cluster.exactly_once(&survivor.base, CONTACTS).await;

    assert!(
        cluster
            .metric(&survivor.base, "herald_job_takeovers_total")
            .await
            >= 1.0
    );
    let takeovers = survivor.logged("took over a job whose lease ran out");
    assert_eq!(
        takeovers.len(),
        1,
        "one warning per takeover: {}",
        survivor.log()
    );
    let takeover = &takeovers[0];
    assert_eq!(takeover["level"], "WARN", "{takeover}");
    assert_eq!(takeover["lost_by"], killed.id.as_str(), "{takeover}");
    assert_eq!(takeover["taken_by"], survivor.id.as_str(), "{takeover}");
    assert_eq!(takeover["campaign"], "camp-big", "{takeover}");
    assert!(
        takeover["job"].as_str().unwrap().starts_with("send:acme:"),
        "{takeover}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_stopped_past_its_lease_wakes_up_knowing_it_lost_it_and_sends_nobody_twice() {
    const CONTACTS: usize = 10_000;
    let cluster = Cluster::new().await;
    let nodes = vec![cluster.node(&[]).await, cluster.node(&[]).await];
    cluster.launch(&nodes[0].base, CONTACTS).await;
    let (holder, generation) = cluster.sending(CONTACTS).await;
    let (stalled, other) = split(nodes, &holder);

    stalled.signal("STOP");
    let at = Instant::now();
    let taken = cluster.taken_by(&other, at, LEASE + POLL + SLACK).await;
    let (_, now) = cluster.holder().await.unwrap_or_default();
    assert!(
        now > generation || cluster.completed(&other.base).await,
        "a takeover is a new lease generation ({generation} → {now}), after {taken:?}"
    );
    stalled.signal("CONT");

    cluster.exactly_once(&other.base, CONTACTS).await;
    let lost = "lost the lease on a job another node took over; stopping it without sending more";
    let noticed = eventually(Duration::from_secs(30), || async {
        !stalled.logged(lost).is_empty()
    })
    .await;
    assert!(
        noticed,
        "the woken process logs that it lost the lease: {}",
        stalled.log()
    );
    assert!(
        cluster
            .metric(&other.base, "herald_job_lease_renewals_failed_total")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_run_over_at_once_answers_not_ready_and_exits_within_the_timeout() {
    const CONTACTS: usize = 10_000;
    let cluster = Cluster::new().await;
    let nodes = vec![cluster.node(&[]).await, cluster.node(&[]).await];
    cluster.launch(&nodes[0].base, CONTACTS).await;
    let (holder, _) = cluster.sending(CONTACTS).await;
    let (mut stopping, other) = split(nodes, &holder);

    stopping.signal("TERM");
    let at = Instant::now();
    let ready = cluster
        .client
        .get(format!("{}/readyz", stopping.base))
        .send()
        .await
        .expect("the stopping process still answers while it drains");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let healthy = cluster
        .client
        .get(format!("{}/healthz", stopping.base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), StatusCode::OK, "alive while it stops");

    // The bound is one second; far less than the lease, so this is a hand-back.
    let taken = cluster
        .taken_by(
            &other,
            at,
            Duration::from_secs(1) + Duration::from_millis(1500),
        )
        .await;
    assert!(
        taken < LEASE,
        "the other node took the job {taken:?} after SIGTERM, not after the lease ran out"
    );
    let status = loop {
        if let Some(status) = stopping.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            at.elapsed() < Duration::from_secs(20) + SLACK,
            "the stopped process exits within HERALD_SHUTDOWN_TIMEOUT (20 s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit: {status}");
    cluster.exactly_once(&other.base, CONTACTS).await;
    assert_eq!(
        cluster
            .metric(&other.base, "herald_job_takeovers_total")
            .await,
        0.0,
        "a hand-back is not a takeover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_is_10s_ahead_neither_steals_a_live_lease_nor_waits_for_a_dead_one() {
    const CONTACTS: usize = 30_000;
    const AHEAD: &[(&str, &str)] = &[("HERALD_TEST_CLOCK_SKEW", "10s")];
    let cluster = Cluster::new().await;
    // The normal node runs alone, so it is the one that claims the run.
    let normal = cluster.node(&[]).await;
    cluster.launch(&normal.base, CONTACTS).await;
    let (holder, generation) = cluster.sending(CONTACTS).await;
    assert_eq!(holder, normal.id);

    // A lease written by the database's clock is live for a node 10 s ahead too: watched for
    // longer than a lease, it stays the normal node's at the same generation.
    let ahead = cluster.node(AHEAD).await;
    let watched = Instant::now();
    while watched.elapsed() < LEASE + Duration::from_secs(1) {
        if cluster.completed(&normal.base).await {
            break;
        }
        assert_eq!(
            cluster.holder().await,
            Some((normal.id.clone(), generation)),
            "the node 10 s ahead stole a live lease"
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(
        !cluster.completed(&normal.base).await,
        "the run lasts long enough to show a steal"
    );

    // Once the normal node dies, the one ahead takes over when the lease runs out by the
    // database's clock; then a normal node waits no longer for a dead node that was ahead.
    let mut normal = normal;
    let _ = normal.child.kill();
    let _ = normal.child.wait();
    cluster
        .taken_by(&ahead, Instant::now(), LEASE + POLL + SLACK)
        .await;
    let second = cluster.node(&[]).await;
    let sending = eventually(Duration::from_secs(60), || async {
        cluster.holder().await.is_some_and(|(h, _)| h == ahead.id)
    })
    .await;
    assert!(sending, "the node ahead holds the run");
    let mut ahead = ahead;
    let _ = ahead.child.kill();
    let at = Instant::now();
    let _ = ahead.child.wait();
    let taken = cluster.taken_by(&second, at, LEASE + POLL + SLACK).await;
    assert!(
        taken <= LEASE + POLL + SLACK,
        "the normal node waited {taken:?} for the dead node ahead, not the lease ({LEASE:?})"
    );
    cluster.exactly_once(&second.base, CONTACTS).await;
}
