//! Repository functions, one module per aggregate. Each takes a [`Conn`],
//! so that several compose inside one [`Store::transaction`]; [`Store`] keeps
//! a method per function for callers that need just one (it opens a
//! transaction for functions that write, and borrows a pooled connection for
//! the others).
//!
//! A function that issues several statements (an append that bumps the
//! session's counters, a check followed by an insert) relies on its caller
//! for atomicity: call it inside [`Store::transaction`] (the `Store` methods
//! do).
//!
//! Queries are written once: [`on!`] expands the body once per backend with
//! the concrete diesel connection type (diesel checks queries per backend;
//! a generic "any connection" version would need more trait bounds than the
//! queries are long).

use std::future::Future;

use diesel_async::AsyncPgConnection;

use crate::error::StoreError;
use crate::pool::{DetachOnCancel, Pools, SqliteConn};
use crate::{Backend, Store};

pub mod faqs;
pub mod keys;
pub mod knowledge;
pub mod limits;
pub mod messages;
pub mod orgs;
pub mod personas;
pub mod quotas;
pub mod secrets;
pub mod sessions;
pub mod tools;
pub mod usage;
pub mod widget;

/// A database connection (pooled, possibly inside a transaction) that
/// repository functions run on.
pub struct Conn<'c>(pub(crate) Backing<'c>);

pub(crate) enum Backing<'c> {
    Postgres(&'c mut AsyncPgConnection),
    Sqlite(&'c mut SqliteConn),
}

impl Conn<'_> {
    pub fn backend(&self) -> Backend {
        match self.0 {
            Backing::Postgres(_) => Backend::Postgres,
            Backing::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Runs `$body` with `$conn: &mut <concrete connection>` of the [`Conn`]
/// `$c`, expanded once per backend. The body may use `?`.
macro_rules! on {
    ($c:expr, $conn:ident => $body:expr) => {
        match &mut $c.0 {
            $crate::repo::Backing::Postgres($conn) => {
                let $conn: &mut ::diesel_async::AsyncPgConnection = &mut **$conn;
                $body
            }
            $crate::repo::Backing::Sqlite($conn) => {
                let $conn: &mut $crate::pool::SqliteConn = &mut **$conn;
                $body
            }
        }
    };
}
pub(crate) use on;

/// Evaluates a block of statements whose `return`s and `?`s end the block,
/// not the enclosing function.
pub(crate) async fn scope<T>(
    block: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    block.await
}

/// An async closure over a [`Conn`] whose future is `Send` (the bound
/// diesel-async uses for its own transactions: the future type of an async
/// closure cannot be named otherwise).
pub trait ConnFn<T, R>: AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as ConnFn<T, R>>::Fut {
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> ConnFn<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}

impl Store {
    /// Runs `f` on a pooled connection, outside a transaction (each
    /// statement commits on its own). For reads.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        for<'r, 'c> F: AsyncFnOnce(&'r mut Conn<'c>) -> Result<R, StoreError>
            + ConnFn<&'r mut Conn<'c>, Result<R, StoreError>, Fut: Send>
            + Send,
        R: Send,
    {
        match &self.pools {
            Pools::Postgres(pool) => {
                let mut pooled = pool.get().await?;
                let mut c = Conn(Backing::Postgres(&mut pooled));
                f(&mut c).await
            }
            Pools::Sqlite { pool, .. } => {
                let mut pooled = pool.get().await?;
                let mut c = Conn(Backing::Sqlite(&mut pooled));
                f(&mut c).await
            }
        }
    }

    /// Runs `f` in a write transaction: commit when it returns `Ok`, roll
    /// back on `Err`.
    ///
    /// On SQLite the in-process writer lock is taken first and the
    /// transaction starts with `BEGIN IMMEDIATE`, so the write lock is
    /// acquired up front and `busy_timeout` applies against other processes
    /// (a deferred transaction that reads first can fail with `SQLITE_BUSY`
    /// when it later upgrades to write). Bodies still issue their write first
    /// where possible (PostgreSQL row locks, then reads see the updated row).
    ///
    /// If the returned future is dropped mid-transaction (client gone,
    /// timeout), [`DetachOnCancel`] closes the connection instead of returning
    /// it to the pool with the transaction — and its locks — still open. (The
    /// guard is dropped before the SQLite writer lock, which is declared
    /// first.)
    pub async fn transaction<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        for<'r, 'c> F: AsyncFnOnce(&'r mut Conn<'c>) -> Result<R, StoreError>
            + ConnFn<&'r mut Conn<'c>, Result<R, StoreError>, Fut: Send>
            + Send,
        R: Send,
    {
        match &self.pools {
            Pools::Postgres(pool) => {
                let mut guard = DetachOnCancel::new(pool.get().await?);
                let result = diesel_async::AsyncConnection::transaction(
                    guard.conn(),
                    async move |conn: &mut AsyncPgConnection| -> Result<R, StoreError> {
                        let mut c = Conn(Backing::Postgres(conn));
                        f(&mut c).await
                    },
                )
                .await;
                guard.finished();
                result
            }
            Pools::Sqlite { pool, write_lock } => {
                let _writer = write_lock.lock().await;
                let mut guard = DetachOnCancel::new(pool.get().await?);
                let result = guard
                    .conn()
                    .immediate_transaction(
                        async move |conn: &mut SqliteConn| -> Result<R, StoreError> {
                            let mut c = Conn(Backing::Sqlite(conn));
                            f(&mut c).await
                        },
                    )
                    .await;
                guard.finished();
                result
            }
        }
    }
}

/// What the repository modules use.
mod prelude {
    pub(crate) use chrono::{DateTime, Utc};
    pub(crate) use diesel::dsl::case_when;
    pub(crate) use diesel::prelude::*;
    pub(crate) use diesel::sql_types::Timestamp;
    pub(crate) use diesel_async::RunQueryDsl;
    pub(crate) use tidechat_domain::{
        ApiKey, ApiKeyId, FaqDraft, FaqEntry, FaqId, LimitsPair, Message, OrgId, Organization,
        Persona, PersonaDraft, PersonaId, Session, SessionId, SessionStatus, Workspace,
        WorkspaceId,
    };

    pub(crate) use super::{clamp_limit, not_in_org, on, scope, Conn};
    pub(crate) use crate::error::StoreError;
    pub(crate) use crate::models::*;
    pub(crate) use crate::schema::*;
    pub(crate) use crate::{MessagePage, NewMessage, PageRequest, SessionFilter, SortOrder, Store};
}

pub(crate) fn clamp_limit(limit: i64) -> i64 {
    limit.max(0)
}

pub(crate) fn not_in_org(what: &str) -> StoreError {
    StoreError::Conflict(format!("{what} does not exist in this organization"))
}
