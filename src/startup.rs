//! Builds the application from its configuration and runs it until a shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Verifier;
use crate::config::Config;
use crate::db::Db;
use crate::http::{self, AppState};
use crate::projector::{self, Wakeup};
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
}

impl Application {
    /// Connects and migrates the database, resolves secrets and binds the listener (port 0 picks
    /// a free port, as the tests do).
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let secrets = config.secrets()?;
        let db = Db::connect(&config.database_url(), config.db_connections()).await?;
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
        let wakeup = Wakeup::default();
        let state = AppState {
            db: db.clone(),
            verifier: Arc::new(verifier),
            wakeup: wakeup.clone(),
            started: Arc::new(chrono::Utc::now()),
            workers: config.workers,
            metrics_token: config.metrics_token.clone().map(Arc::new),
            sealer: Arc::new(crate::secrets::Sealer::new(&secrets.secrets_key)),
            public_url: config.public_url().into(),
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
        };
        let scheduler = config.workers.then(|| {
            let sender = Sender::new(
                state.db.clone(),
                state.sealer.clone(),
                &secrets.tracking_secret,
                state.public_url.clone(),
                crate::vendors::http_client(std::time::Duration::from_secs(30)),
            );
            Arc::new(Scheduler::new(
                state.db.clone(),
                sender,
                state.wakeup.clone(),
                LaunchClock::ahead(config.test_clock_ahead),
            ))
        });
        Ok(Application {
            listener,
            database_url: config.database_url(),
            state,
            workers: config.workers,
            scheduler,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until Ctrl-C or SIGTERM, then drains requests and stops the workers.
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
        if self.workers {
            crate::purge::resume(&self.state.db).await?;
        }
        tracing::info!(address = %self.local_addr(), workers = self.workers, "herald is listening");
        let app = http::router(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        let _ = stop_tx.send(true);
        for task in listener {
            task.abort();
        }
        if let Some(runner) = runner {
            let _ = runner.await;
        }
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        Ok(())
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
