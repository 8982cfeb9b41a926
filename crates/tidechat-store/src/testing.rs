//! Throw-away, migrated databases for tests (feature `test-support`).
//!
//! ```text
//! let db = tidechat_store::testing::sqlite().await;
//! if let Some(pg) = tidechat_store::testing::postgres().await { /* … */ }
//! ```
//!
//! These helpers panic when the database cannot be set up: they are meant
//! for tests only.

use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::Store;

/// Environment variable naming an admin PostgreSQL URL for tests.
pub const POSTGRES_URL_ENV: &str = "TIDECHAT_TEST_POSTGRES_URL";

/// Per-test database names start with this; the rest is a lower-case ULID.
const DB_PREFIX: &str = "tidechat_t_";

/// Databases left behind by earlier runs older than this are dropped.
const STALE_AFTER_MS: u64 = 60 * 60 * 1000;

/// A migrated database that lives as long as this value.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _guard: Guard,
}

impl TestDb {
    /// Runs raw SQL on the test database, e.g. to break it on purpose.
    pub async fn execute_sql(&self, sql: &str) -> Result<(), crate::StoreError> {
        self.store.execute_sql(sql).await
    }
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.store.backend())
            .finish()
    }
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, db_name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, db_name } = self {
            // Best-effort and non-blocking: a detached thread drops the
            // database (leftovers are swept by later runs).
            let admin_url = std::mem::take(admin_url);
            let db_name = std::mem::take(db_name);
            let _ = std::thread::Builder::new()
                .name("tidechat-test-dropdb".into())
                .spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        rt.block_on(async move {
                            if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                                let _ = drop_database(&mut admin, &db_name).await;
                            }
                        });
                    }
                });
        }
    }
}

/// A fresh SQLite database file in a temporary directory, migrated, with a
/// pool of 8 connections.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("tidechat.db").display());
    let store = Store::connect(&url, 8)
        .await
        .unwrap_or_else(|e| panic!("connect SQLite test db: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate SQLite test db: {e}"));
    TestDb {
        store,
        url,
        _guard: Guard::Sqlite(dir),
    }
}

/// A fresh, migrated PostgreSQL database (`tidechat_t_<ulid>`) created via
/// the admin URL in `TIDECHAT_TEST_POSTGRES_URL`; `None` when it is unset.
pub async fn postgres() -> Option<TestDb> {
    let admin_url = std::env::var(POSTGRES_URL_ENV).ok()?;
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_ENV}: {e}"));
    sweep_stale(&mut admin).await;
    let db_name = format!(
        "{DB_PREFIX}{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    diesel::sql_query(format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {db_name}: {e}"));
    let url = replace_db_name(&admin_url, &db_name);
    let guard = Guard::Postgres { admin_url, db_name };
    let store = Store::connect(&url, 8)
        .await
        .unwrap_or_else(|e| panic!("connect PostgreSQL test db: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate PostgreSQL test db: {e}"));
    Some(TestDb {
        store,
        url,
        _guard: guard,
    })
}

/// `scheme://authority/old?query` -> `scheme://authority/new?query`.
pub fn replace_db_name(url: &str, db_name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let query = rest[authority_end..]
        .split_once('?')
        .map(|(_, q)| q)
        .filter(|q| !q.is_empty());
    match query {
        Some(q) => format!("{scheme}://{authority}/{db_name}?{q}"),
        None => format!("{scheme}://{authority}/{db_name}"),
    }
}

async fn drop_database(admin: &mut AsyncPgConnection, db_name: &str) -> diesel::QueryResult<()> {
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(admin)
        .await
        .map(|_| ())
}

#[derive(QueryableByName)]
struct DbName {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Drops test databases of earlier runs (older than an hour by their ULID).
async fn sweep_stale(admin: &mut AsyncPgConnection) {
    let Ok(names) = diesel::sql_query(format!(
        "SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'"
    ))
    .load::<DbName>(admin)
    .await
    else {
        return;
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for DbName { datname } in names {
        let Some(id) = datname.strip_prefix(DB_PREFIX) else {
            continue;
        };
        let Ok(ulid) = ulid::Ulid::from_string(id) else {
            continue;
        };
        if now_ms.saturating_sub(ulid.timestamp_ms()) > STALE_AFTER_MS {
            let _ = drop_database(admin, &datname).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replace_db_name;

    #[test]
    fn replaces_path_and_keeps_query() {
        assert_eq!(
            replace_db_name("postgres://root@127.0.0.1:5432/postgres", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_db_name("postgresql://u:p@h/db?sslmode=disable&a=b", "x"),
            "postgresql://u:p@h/x?sslmode=disable&a=b"
        );
        assert_eq!(replace_db_name("postgres://h:1", "x"), "postgres://h:1/x");
        assert_eq!(
            replace_db_name("postgres://h?s=1", "x"),
            "postgres://h/x?s=1"
        );
    }
}
