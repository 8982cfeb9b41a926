//! Connection pools, connecting and migrations.

use std::path::Path;
use std::sync::Arc;

use diesel::migration::MigrationSource;
use diesel::SqliteConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::bus::Bus;
use crate::error::StoreError;
use crate::repo::on;

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Key of the PostgreSQL advisory lock serialising concurrent migrations
/// ("tidechat" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x7469_6465_6368_6174;

/// Per-connection SQLite setup. `busy_timeout` goes first so the others
/// (switching to WAL needs a lock) wait instead of failing.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; \
     PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; \
     PRAGMA synchronous = NORMAL;";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Clone)]
pub(crate) enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite {
        pool: Pool<SqliteConn>,
        /// SQLite allows one writer: writers in this process queue here
        /// instead of failing with `SQLITE_BUSY`.
        write_lock: Arc<tokio::sync::Mutex<()>>,
    },
}

/// Handle on the database. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    pub(crate) pools: Pools,
    bus: Bus,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

/// Holds a pooled connection during a transaction. Dropped before
/// [`finished`](Self::finished) was called — i.e. the transaction future was
/// cancelled — it detaches the connection from the pool and drops it:
/// closing the connection rolls the open transaction back and releases its
/// locks (a still-running SQLite statement finishes first, on its blocking
/// thread, and closes the connection afterwards).
pub(crate) struct DetachOnCancel<M: deadpool::managed::Manager> {
    conn: Option<deadpool::managed::Object<M>>,
    finished: bool,
}

impl<M: deadpool::managed::Manager> DetachOnCancel<M> {
    pub(crate) fn new(conn: deadpool::managed::Object<M>) -> Self {
        Self {
            conn: Some(conn),
            finished: false,
        }
    }

    pub(crate) fn conn(&mut self) -> &mut M::Type {
        match self.conn.as_mut() {
            Some(conn) => conn,
            // `conn` is only taken in `drop`.
            None => unreachable!("connection taken before drop"),
        }
    }

    /// The transaction completed (committed or rolled back): the connection
    /// may go back to the pool.
    pub(crate) fn finished(&mut self) {
        self.finished = true;
    }
}

impl<M: deadpool::managed::Manager> Drop for DetachOnCancel<M> {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(conn) = self.conn.take() {
                tracing::debug!("write transaction cancelled; closing its connection");
                drop(deadpool::managed::Object::take(conn));
            }
        }
    }
}

/// Splits a `sqlite:` URL into a file path.
fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
}

impl Store {
    /// Connects a pool of at most `max_connections` (at least 1).
    ///
    /// `url` is `sqlite://PATH` / `sqlite:PATH` (parent directories and the
    /// file are created) or `postgres://…` / `postgresql://…`. One connection
    /// is opened eagerly so a bad URL fails here.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Store, StoreError> {
        let max = max_connections.max(1);
        let store = if let Some(path) = sqlite_path(url) {
            Self::connect_sqlite(path, max)?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
            let pool = Pool::builder(manager)
                .max_size(max)
                .build()
                .map_err(|e| StoreError::Pool(e.to_string()))?;
            let pools = Pools::Postgres(pool);
            Store {
                bus: Bus::new(pools.clone(), Some(url.to_owned())),
                pools,
            }
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme `{}` (expected sqlite: or postgres:)",
                scheme.chars().take(32).collect::<String>()
            )));
        };
        store.ping().await?;
        Ok(store)
    }

    fn connect_sqlite(path: &str, max: usize) -> Result<Store, StoreError> {
        if path.is_empty() {
            return Err(StoreError::Config("empty SQLite path".into()));
        }
        if path.starts_with(":memory:") || path.contains("mode=memory") {
            // Every pooled connection would get its own private database.
            return Err(StoreError::Config(
                "in-memory SQLite is not supported; use a file path".into(),
            ));
        }
        let file = Path::new(path);
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Config(format!("cannot create directory for SQLite database: {e}"))
            })?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| StoreError::Config(format!("cannot create SQLite database file: {e}")))?;

        let mut config = ManagerConfig::<SqliteConn>::default();
        config.custom_setup = Box::new(|url: &str| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = SqliteConn::establish(&url).await?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, config);
        let pool = Pool::builder(manager)
            .max_size(max)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let pools = Pools::Sqlite {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        Ok(Store {
            bus: Bus::new(pools.clone(), None),
            pools,
        })
    }

    /// Publish/subscribe between the processes on this database (see
    /// [`crate::bus`]).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(async |c| {
            on!(c, conn => {
                diesel::sql_query("SELECT 1").execute(conn).await?;
                Ok(())
            })
        })
        .await
    }

    /// Raw SQL for tests (feature `test-support`).
    #[cfg(feature = "test-support")]
    pub(crate) async fn execute_sql(&self, sql: &str) -> Result<(), StoreError> {
        self.read(async |c| {
            on!(c, conn => {
                diesel::sql_query(sql).execute(conn).await?;
                Ok(())
            })
        })
        .await
    }

    /// Applies pending migrations. Idempotent, and safe when several
    /// processes start at once: PostgreSQL serialises on an advisory lock,
    /// SQLite runs everything in one `BEGIN IMMEDIATE` transaction.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Postgres(pool) => {
                // The harness is synchronous: take a connection out of the
                // pool and drive it from a blocking thread.
                let conn = Object::take(pool.get().await?);
                tokio::task::spawn_blocking(move || migrate_pg(conn))
                    .await
                    .map_err(|e| StoreError::Migration(format!("migration task failed: {e}")))?
            }
            Pools::Sqlite { pool, write_lock } => {
                let _writer = write_lock.lock().await;
                let mut conn = pool.get().await?;
                let outcome = conn
                    .spawn_blocking(|c: &mut SqliteConnection| {
                        Ok(c.immediate_transaction(|c| {
                            run_pending(c, SQLITE_MIGRATIONS)
                                .map_err(|e| MigrateFailure::Harness(e.to_string()))
                        }))
                    })
                    .await
                    .map_err(|e| StoreError::Migration(e.to_string()))?;
                outcome.map(|_| ()).map_err(MigrateFailure::into_store)
            }
        }
    }
}

/// Error type threaded through the SQLite migration transaction.
#[derive(Debug)]
enum MigrateFailure {
    Db(diesel::result::Error),
    Harness(String),
}

impl From<diesel::result::Error> for MigrateFailure {
    fn from(e: diesel::result::Error) -> Self {
        MigrateFailure::Db(e)
    }
}

impl MigrateFailure {
    fn into_store(self) -> StoreError {
        match self {
            MigrateFailure::Db(e) => StoreError::Migration(e.to_string()),
            MigrateFailure::Harness(e) => StoreError::Migration(e),
        }
    }
}

fn run_pending<C, S>(
    conn: &mut C,
    source: S,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>>
where
    C: MigrationHarness<diesel::sqlite::Sqlite>,
    S: MigrationSource<diesel::sqlite::Sqlite>,
{
    let applied = conn.run_pending_migrations(source)?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "applied SQLite migrations");
    }
    Ok(applied.len())
}

fn migrate_pg(conn: AsyncPgConnection) -> Result<(), StoreError> {
    let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = AsyncConnectionWrapper::from(conn);
    let lock = format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})");
    diesel::RunQueryDsl::execute(diesel::sql_query(lock), &mut conn)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    let result = conn
        .run_pending_migrations(PG_MIGRATIONS)
        .map(|applied| {
            if !applied.is_empty() {
                tracing::info!(count = applied.len(), "applied PostgreSQL migrations");
            }
        })
        .map_err(|e| StoreError::Migration(e.to_string()));
    let unlock = format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})");
    // Closing the connection (it is dropped here) releases the lock anyway.
    let _ = diesel::RunQueryDsl::execute(diesel::sql_query(unlock), &mut conn);
    result
}
