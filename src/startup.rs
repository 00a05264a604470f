//! Builds the application from its configuration and runs it until a shutdown signal, then
//! stops within `HERALD_SHUTDOWN_TIMEOUT`: readiness off, workers' jobs handed back, requests
//! in flight finished.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Verifier;
use crate::config::Config;
use crate::db::Db;
use crate::http::dashboard::SignIn;
use crate::http::{self, AppState};
use crate::limits::Limits;
use crate::projector::{self, Wakeup};
use crate::sending::jobs::{LeaseSettings, NodeClock};
use crate::sending::launch::LaunchClock;
use crate::sending::run::Sender;
use crate::sending::scheduler::Scheduler;

/// A bound, migrated, ready-to-serve Herald.
pub struct Application {
    listener: TcpListener,
    database_url: String,
    state: AppState,
    workers: bool,
    /// The scheduler and send workers, unless `HERALD_WORKERS=false`.
    scheduler: Option<Arc<Scheduler>>,
    shutdown_timeout: Duration,
    /// The one-time dashboard sign-in link printed once listening, when sign-in links are on.
    signin_link: Option<String>,
    connection_limits: crate::serve::ConnectionLimits,
}

/// How long a stopping process keeps answering (with `/readyz` at `503`) before it closes its
/// listener: long enough for a load balancer's readiness checks to take it out of rotation.
/// A quarter of the shutdown timeout, at most 5 s.
fn drain_time(shutdown_timeout: Duration) -> Duration {
    (shutdown_timeout / 4).min(Duration::from_secs(5))
}

impl Application {
    /// Connects and migrates the database, resolves secrets and binds the listener (port 0 picks
    /// a free port, as the tests do).
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let job_lease = config.job_lease()?;
        let shutdown_timeout = config.shutdown_timeout()?;
        let connection_limits = config.connection_limits()?;
        let outbound_policy = Arc::new(config.outbound_policy()?);
        let secrets = config.secrets()?;
        let db = Db::connect(&config.database_url(), config.db_connections())
            .await?
            .with_erasure_key(&secrets.erasure_key);
        db.migrate().await?;
        let public_key = config.jwt_public_key_pem()?;
        let verifier = Verifier::new(
            secrets.jwt_secret.as_deref(),
            public_key.as_deref(),
            config.jwt_issuer.as_deref(),
            config.jwt_audience.as_deref(),
        )?;
        if secrets.generated {
            tracing::info!(
                data_dir = %config.data_dir.display(),
                "generated development secrets into the data dir; mint a token with `herald token --org acme --role admin` (cargo run --release -- token --org acme --role admin)"
            );
        }
        if config.public_url_is_local() {
            tracing::warn!(
                public_url = %config.public_url(),
                "tracking and unsubscribe links will point at this machine, which recipients cannot reach; set HERALD_PUBLIC_URL to the address they can"
            );
        }
        let listener = TcpListener::bind(&config.bind).await?;
        let signin = Arc::new(signin(config, &secrets)?);
        let signin_link = signin
            .issue()
            .map(|code| format!("{}/#signin={code}", local_base(listener.local_addr())));
        let wakeup = Wakeup::default();
        let sealer = Arc::new(crate::secrets::Sealer::new(&secrets.secrets_key));
        let resealed = crate::secrets::reseal_unbound(&db, &sealer).await?;
        if resealed > 0 {
            tracing::info!(
                resealed,
                "bound stored connection credentials to their org and connection"
            );
        }
        let public_url: Arc<str> = config.public_url().into();
        let state = AppState::new(crate::http::Shared {
            sender: Arc::new(Sender::new(
                db.clone(),
                sealer.clone(),
                &secrets.tracking_secret,
                public_url.clone(),
                crate::vendors::Outbound::new(Duration::from_secs(30), outbound_policy.clone()),
            )),
            db: db.clone(),
            verifier: Arc::new(verifier),
            wakeup: wakeup.clone(),
            started: Arc::new(chrono::Utc::now()),
            workers: config.workers,
            metrics_token: config.metrics_token.clone().map(Arc::new),
            sealer,
            public_url,
            assets: Arc::default(),
            analytics: Arc::default(),
            tracking_key: secrets.tracking_secret.as_bytes().into(),
            recorder: crate::engagements::Recorder::start(
                db.clone(),
                wakeup.clone(),
                match db.backend {
                    crate::db::Backend::Postgres => 3,
                    crate::db::Backend::Sqlite => 1,
                },
            ),
            stopping: Arc::default(),
            signin,
            metrics_cache: Arc::default(),
            limits: Arc::new(Limits::new(
                config.rate_limit_org,
                config.tracking_max_per_token,
            )),
        });
        let scheduler = config.workers.then(|| {
            let sender = Sender::new(
                state.db.clone(),
                state.sealer.clone(),
                &secrets.tracking_secret,
                state.public_url.clone(),
                crate::vendors::Outbound::new(Duration::from_secs(30), outbound_policy.clone()),
            );
            Arc::new(Scheduler::new(
                state.db.clone(),
                sender,
                state.wakeup.clone(),
                LaunchClock::ahead(Some(
                    config.test_clock_ahead.unwrap_or_default()
                        + config.test_clock_skew.unwrap_or_default(),
                )),
                LeaseSettings {
                    length: job_lease,
                    clock: NodeClock::skewed(config.test_clock_skew),
                },
            ))
        });
        Ok(Application {
            listener,
            database_url: config.database_url(),
            state,
            workers: config.workers,
            scheduler,
            shutdown_timeout,
            signin_link,
            connection_limits,
        })
    }

    /// The one-time dashboard sign-in link (`http://…/#signin=<code>`), when sign-in links are
    /// on (`HERALD_SIGNIN_LINK`). Printed to the log once the server listens.
    pub fn signin_link(&self) -> Option<&str> {
        self.signin_link.as_deref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until Ctrl-C or SIGTERM, then stops within the shutdown timeout: `/readyz`
    /// answers `503` from the signal on, the workers stop claiming and hand their jobs back
    /// after the page in flight (so another node takes them at once), the listener stays open
    /// for the drain time, and requests in flight finish. What is not done by the timeout is
    /// left: its leases run out and another node takes the jobs over.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = self.workers.then(|| {
            tokio::spawn(projector::run(
                self.state.db.clone(),
                self.state.wakeup.clone(),
                stop_rx.clone(),
            ))
        });
        let db = &self.state.db;
        let listener = match db.backend {
            crate::db::Backend::Postgres => {
                let announcer = tokio::spawn(crate::cache::announce_changes(
                    db.write.clone(),
                    db.cache.clone(),
                ));
                let listener = tokio::spawn(crate::cache::listen(
                    self.database_url.clone(),
                    db.cache.clone(),
                ));
                vec![announcer, listener]
            }
            crate::db::Backend::Sqlite => Vec::new(),
        };
        let scheduler = match self.scheduler.clone() {
            Some(scheduler) => {
                // Heartbeat and crash recovery before the first request is served.
                scheduler.prepare().await?;
                Some(tokio::spawn(scheduler.run(stop_rx.clone())))
            }
            None => None,
        };
        let pruner = tokio::spawn(crate::limits::prune_every_while(self.state.limits.clone()));
        if self.workers {
            crate::purge::resume(&self.state.db).await?;
            crate::erasure::resume(&self.state.db).await?;
        }
        tracing::info!(address = %self.local_addr(), workers = self.workers, "herald is listening");
        if let Some(link) = &self.signin_link {
            tracing::info!(
                "open the dashboard: {link} (signs you in as admin of org {}, once, within {} minutes)",
                self.state.signin.org(),
                crate::http::dashboard::SIGNIN_CODE_TTL.as_secs() / 60
            );
        }
        let stopping = self.state.stopping.clone();
        let app = http::router(self.state);
        let (close_tx, mut close_rx) = watch::channel(false);
        let mut server = tokio::spawn(crate::serve::serve(
            self.listener,
            app,
            self.connection_limits,
            async move {
                let _ = close_rx.wait_for(|close| *close).await;
            },
        ));
        tokio::select! {
            _ = shutdown_signal() => {}
            served = &mut server => return served?.map_err(Into::into),
        }
        let signalled = tokio::time::Instant::now();
        stopping.store(true, Ordering::Release);
        let _ = stop_tx.send(true);
        let timeout = self.shutdown_timeout;
        let stop = async {
            if let Some(runner) = runner {
                let _ = runner.await;
            }
            if let Some(scheduler) = scheduler {
                let _ = scheduler.await;
            }
            tokio::time::sleep_until(signalled + drain_time(timeout)).await;
            let _ = close_tx.send(true);
            (&mut server).await
        };
        let stopped = tokio::select! {
            stopped = tokio::time::timeout_at(signalled + timeout, stop) => stopped.ok(),
            // A second Ctrl-C or SIGTERM: the operator does not want to wait.
            _ = shutdown_signal() => None,
        };
        for task in listener {
            task.abort();
        }
        pruner.abort();
        match stopped {
            Some(served) => served?.map_err(Into::into),
            None => {
                tracing::warn!(
                    timeout_seconds = timeout.as_secs_f64(),
                    "stopped before everything finished (shutdown timeout, or a second signal); unfinished jobs' leases run out and other nodes take them over"
                );
                Ok(())
            }
        }
    }
}

/// The dashboard sign-in set-up `HERALD_SIGNIN_LINK` asks for.
fn signin(config: &Config, secrets: &crate::config::Secrets) -> anyhow::Result<SignIn> {
    let secret = secrets.jwt_secret.clone();
    let on = match config.signin_link.as_str() {
        "off" => false,
        "on" if secret.is_none() => anyhow::bail!(
            "HERALD_SIGNIN_LINK=on needs an HS256 secret (HERALD_JWT_SECRET); with HERALD_JWT_PUBLIC_KEY tokens come from your identity provider"
        ),
        "on" => true,
        _ => secrets.jwt_secret_in_data_dir,
    };
    let Some(secret) = secret.filter(|_| on) else {
        return Ok(SignIn::off());
    };
    if !herald_domain::is_valid_id(&config.signin_org) {
        anyhow::bail!(
            "HERALD_SIGNIN_ORG={:?} is not a valid org id",
            config.signin_org
        );
    }
    Ok(SignIn::new(
        secret,
        config.signin_org.clone(),
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    ))
}

/// `http://host:port` of the listener, for links a person on this machine follows: an
/// unspecified address (`0.0.0.0`, `::`) becomes loopback.
fn local_base(address: std::io::Result<SocketAddr>) -> String {
    match address {
        Ok(mut address) => {
            if address.ip().is_unspecified() {
                address.set_ip(match address {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{address}")
        }
        Err(_) => "http://127.0.0.1:8080".to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
