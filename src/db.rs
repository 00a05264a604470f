//! Database connections: one pool for reads, one for writes, on PostgreSQL or embedded SQLite.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

/// Why [`Db::open_existing`] found no Herald database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no database file")]
    NoFile,
    /// With why, as the driver says it.
    #[error("cannot open the database")]
    Unreachable(String),
    #[error("no Herald schema in the database")]
    NoSchema,
}

/// Which database engine the service runs on. SQL differs in a few places (gap-safe reads,
/// transaction start), so callers ask rather than guess from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The service's database handle.
///
/// SQLite has one writer, so writes go through a single-connection pool and start with
/// `BEGIN IMMEDIATE`; that turns lock upgrades (which fail at once) into queueing.
#[derive(Debug, Clone)]
pub struct Db {
    pub backend: Backend,
    pub read: AnyPool,
    pub write: AnyPool,
    /// Campaign documents this process has read or written (see [`crate::cache`]).
    pub cache: std::sync::Arc<crate::cache::CampaignCache>,
    /// The key erased addresses are suppressed under (`suppressions::suppressed` looks each
    /// address up in plain and hashed form). Carried here because every reader of the
    /// suppression list has the database handle; set by the server at start
    /// ([`Db::with_erasure_key`]), absent in the command-line tools, which never send.
    pub erasure_key: Option<std::sync::Arc<herald_domain::suppression::AddressKey>>,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A pooled PostgreSQL connection idle this long is pinged before it is handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(2);

impl Db {
    /// Connects to `url` (`postgres://…` or `sqlite://…`), creating the SQLite file if needed.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        Self::connect_mode(url, max_connections, true).await
    }

    /// Opens the Herald database at `url` only if it is there: a SQLite file that exists, a
    /// PostgreSQL database that answers, either with Herald's schema. Creates nothing. For the
    /// command-line tools other than `serve` and `migrate`, which must not leave an empty
    /// database where they looked by mistake.
    pub async fn open_existing(url: &str, max_connections: u32) -> Result<Db, OpenError> {
        if let Some(file) = sqlite_file(url) {
            if !file.is_file() {
                return Err(OpenError::NoFile);
            }
            // Read-only first: the pool's pragmas would write to an empty or foreign file.
            sqlx::any::install_default_drivers();
            let read_only = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=ro")
            } else {
                format!("{url}?mode=ro")
            };
            let mut conn = sqlx::AnyConnection::connect(&read_only)
                .await
                .map_err(|error| OpenError::Unreachable(error.to_string()))?;
            let migrated: Result<i64, _> = sqlx::query_scalar(
                "select count(*) from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
            )
            .fetch_one(&mut conn)
            .await;
            let _ = conn.close().await;
            if !matches!(migrated, Ok(1)) {
                return Err(OpenError::NoSchema);
            }
        }
        let db = Self::connect_mode(url, max_connections, false)
            .await
            .map_err(|error| OpenError::Unreachable(error.to_string()))?;
        let schema: Result<i64, _> = sqlx::query_scalar("select count(*) from _sqlx_migrations")
            .fetch_one(&db.read)
            .await;
        match schema {
            Ok(n) if n > 0 => Ok(db),
            _ => Err(OpenError::NoSchema),
        }
    }

    async fn connect_mode(url: &str, max_connections: u32, create: bool) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite://");
        };
        match backend {
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    // A ping on every acquire doubled the round trips of a busy server; only a
                    // connection that sat idle is checked (a dead one is dropped and replaced).
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for < IDLE_BEFORE_PING {
                                return Ok(true);
                            }
                            Ok(sqlx::Connection::ping(conn).await.is_ok())
                        })
                    })
                    .connect_with(options)
                    .await?;
                Ok(Db {
                    backend,
                    read: pool.clone(),
                    write: pool,
                    // Usable once the change listener is connected (`cache::listen`).
                    cache: std::sync::Arc::new(crate::cache::CampaignCache::new(false)),
                    erasure_key: None,
                })
            }
            Backend::Sqlite => {
                let url = if create {
                    let url = with_create_mode(url);
                    if let Some(dir) = sqlite_parent_dir(&url) {
                        create_private_dir(&dir)?;
                    }
                    if let Some(file) = sqlite_file(&url) {
                        create_private_file(&file)?;
                    }
                    url
                } else {
                    url.to_string()
                };
                let options = AnyConnectOptions::from_str(&url)?;
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(sqlite_pragmas)
                    .connect_with(options.clone())
                    .await?;
                let read = AnyPoolOptions::new()
                    .max_connections(max_connections.clamp(1, 8))
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(sqlite_pragmas)
                    .connect_with(options)
                    .await?;
                Ok(Db {
                    backend,
                    read,
                    write,
                    // Embedded SQLite has one process: its own writes are all there is.
                    cache: std::sync::Arc::new(crate::cache::CampaignCache::new(true)),
                    erasure_key: None,
                })
            }
        }
    }

    /// This handle with the key of erased addresses.
    pub fn with_erasure_key(mut self, secret: &str) -> Db {
        self.erasure_key = Some(std::sync::Arc::new(
            herald_domain::suppression::AddressKey::new(secret.as_bytes()),
        ));
        self
    }

    /// Applies the migrations of this backend's folder.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.write)
                    .await?
            }
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.write).await?,
        }
        Ok(())
    }

    /// Whether every migration this binary knows has been applied (for `/readyz`).
    pub async fn migrations_done(&self) -> bool {
        let expected = match self.backend {
            Backend::Postgres => sqlx::migrate!("migrations/postgres").iter().count(),
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").iter().count(),
        } as i64;
        let applied: Result<i64, _> =
            sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
                .fetch_one(&self.read)
                .await;
        matches!(applied, Ok(n) if n >= expected)
    }

    /// Gathers PostgreSQL planner statistics for `table` when they are missing or far behind
    /// its contents. Bulk writers call it: a table planned as empty gets its lookups planned as
    /// scans (an import's key lookups took a second each at a million rows), and autovacuum may
    /// be off or late. Cheap when the statistics are fresh; does nothing on SQLite.
    /// Only `columns` are analyzed (the keys the lookups use; the JSON payloads are costly to
    /// sample and no plan depends on them).
    pub async fn analyze_if_stale(&self, table: &str, columns: &str) -> Result<(), sqlx::Error> {
        let Some(TableStats {
            live,
            changed,
            never,
        }) = self.table_stats(table).await?
        else {
            return Ok(());
        };
        let stale = if never {
            live + changed > 1_000
        } else {
            changed > 10_000 && changed > live / 5
        };
        if stale {
            self.analyze(table, columns).await?;
        }
        Ok(())
    }

    /// Gathers PostgreSQL planner statistics of `table`'s `columns` now (nothing on SQLite).
    pub async fn analyze(&self, table: &str, columns: &str) -> Result<(), sqlx::Error> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        tracing::debug!(table, "gathering planner statistics");
        // Names are ours, never input.
        sqlx::query(&format!("analyze {table} ({columns})"))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Whether PostgreSQL has statistics of `table` (always true on SQLite).
    pub async fn analyzed(&self, table: &str) -> Result<bool, sqlx::Error> {
        Ok(!matches!(self.table_stats(table).await?, Some(stats) if stats.never))
    }

    /// What PostgreSQL's statistics views say of `table` (`None` on SQLite or for an unknown
    /// table). The row counts lag the writes by up to a second.
    async fn table_stats(&self, table: &str) -> Result<Option<TableStats>, sqlx::Error> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let row = sqlx::query(
            "select n_live_tup, n_mod_since_analyze,
                    (last_analyze is null and last_autoanalyze is null) as never
             from pg_stat_user_tables where relname = $1",
        )
        .bind(table)
        .fetch_optional(&self.read)
        .await?;
        use sqlx::Row;
        row.map(|row| {
            Ok(TableStats {
                live: row.try_get("n_live_tup")?,
                changed: row.try_get("n_mod_since_analyze")?,
                never: row.try_get("never")?,
            })
        })
        .transpose()
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Postgres => self.write.begin().await,
            Backend::Sqlite => self.write.begin_with("begin immediate").await,
        }
    }
}

/// On PostgreSQL, keeps the key lookups of `tx` on their indexes whatever the tables'
/// statistics say (ADR 8): for transactions that fill a table faster than its statistics follow
/// (an import, a rebuild), where a plan made while the table was small would scan it whole as it
/// grows. Scoped to the transaction; nothing on SQLite.
pub async fn trust_no_statistics(tx: &mut Tx, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("set local plan_cache_mode = force_custom_plan")
            .execute(&mut **tx)
            .await?;
        sqlx::query("set local enable_seqscan = off")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The file of a `sqlite:` URL (none for an in-memory database or another scheme).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite:")?;
    let path = path.trim_start_matches("//").split('?').next()?;
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates `dir` (and its parents) readable by this user only (`0700`) where it is new.
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))
}

/// Creates a new, empty database file readable by this user only (`0600`) before SQLite opens
/// it, so the data never sits in a file others can read; SQLite gives its `-wal` and `-shm`
/// files the database file's mode. An existing file is left as it is.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next()?;
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let parent = std::path::Path::new(path).parent()?;
    (!parent.as_os_str().is_empty()).then(|| parent.to_path_buf())
}

/// Per-connection SQLite settings: WAL so readers never block the writer, and a busy timeout.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute(
            "pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 10000;",
        )
        .await?;
        Ok(())
    })
}

/// A table's row counts and whether it was ever analyzed, from `pg_stat_user_tables`.
struct TableStats {
    live: i64,
    changed: i64,
    never: bool,
}

impl Db {
    /// Tells running servers that a command of this process changed these campaigns (`None`: any
    /// campaign, as a replay rewrites them all). For the commands that run as their own process.
    pub async fn tell_other_processes(
        &self,
        changed: Option<(&str, &[String])>,
    ) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Postgres => {
                let Some((org_id, ids)) = changed else {
                    // A replay of every campaign runs while no server serves (`docs/operations.md`);
                    // a server's listener empties its cache whenever it (re)connects.
                    return Ok(());
                };
                for chunk in ids.chunks(200) {
                    let payload: Vec<String> =
                        chunk.iter().map(|id| format!("{org_id}\t{id}")).collect();
                    sqlx::query("select 1 from (select pg_notify($1, $2)) notified")
                        .bind(crate::cache::CHANNEL)
                        .bind(payload.join("\n"))
                        .execute(&self.write)
                        .await?;
                }
            }
            Backend::Sqlite => {
                sqlx::query("update cache_epoch set epoch = epoch + 1 where id = 1")
                    .execute(&self.write)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[cfg(unix)]
    #[test]
    fn a_new_data_dir_and_database_file_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("herald-perm-{}", uuid::Uuid::now_v7()));
        let dir = root.join("data");
        create_private_dir(&dir).unwrap();
        let file = dir.join("herald.db");
        create_private_file(&file).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        // Existing ones are left as they are.
        std::fs::write(&file, b"kept").unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"kept");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_sqlite_url_names_its_file() {
        assert_eq!(
            sqlite_file("sqlite://data/herald.db?mode=rwc"),
            Some(PathBuf::from("data/herald.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/herald/herald.db"),
            Some(PathBuf::from("/var/lib/herald/herald.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/herald"), None);
    }
}
