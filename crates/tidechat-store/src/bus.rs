//! Publish/subscribe between the processes that share one database.
//!
//! A [`Bus`] delivers short text messages on named topics to every current
//! subscriber of the topic:
//!
//! * on **PostgreSQL**, through `NOTIFY` on one channel (`tidechat_bus`) and
//!   one `LISTEN`ing connection per process, so every process on the same
//!   database sees every message — including the publishing process, which
//!   hears its own notices the same way as the others (one delivery path);
//! * on **SQLite** (the embedded, single-process case), in process.
//!
//! Delivery is at most once and only to subscribers that exist when the
//! message arrives: a bus carries *notices* ("conversation X changed",
//! "events up to 17 are stored"), never the only copy of data. Whoever needs
//! every event reads it from its table; a subscriber that may have missed
//! messages — it fell behind, or the listening connection was lost and
//! re-established — receives [`BusEvent::Lagged`] and re-reads.
//!
//! Topics are routed in process: every process receives every notice on the
//! database and hands it to the topic's subscribers, if any. That keeps one
//! connection per process regardless of how many topics are watched; the
//! price is that each process parses every notice (a few hundred bytes each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch, OnceCell};

use crate::error::StoreError;
use crate::pool::Pools;

/// The one PostgreSQL notification channel the bus uses.
const CHANNEL: &str = "tidechat_bus";

/// Largest payload accepted by [`Bus::publish`], in bytes. PostgreSQL's
/// `NOTIFY` takes at most 8,000 bytes, and the topic travels with it.
pub const MAX_PAYLOAD_BYTES: usize = 7_000;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 200;

/// Messages buffered per topic for a slow subscriber before it gets
/// [`BusEvent::Lagged`].
const TOPIC_CAPACITY: usize = 256;

/// Separates the topic from the payload in a notification.
const SEPARATOR: char = '\n';

/// What a [`Subscription`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A message published on the topic.
    Message(String),
    /// Messages may have been missed (this subscriber fell behind, or the
    /// process's listening connection was re-established): re-read the
    /// state the messages are about.
    Lagged,
}

#[derive(Debug, Clone)]
enum Envelope {
    Message(Arc<str>),
    Resync,
}

/// Handle on the bus of one [`Store`](crate::Store). Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("postgres", &self.inner.postgres_url.is_some())
            .finish()
    }
}

struct Inner {
    topics: Mutex<HashMap<String, broadcast::Sender<Envelope>>>,
    pools: Pools,
    /// `Some` on PostgreSQL: the database the listener connects to.
    postgres_url: Option<String>,
    /// Set once the process's listener is running (PostgreSQL only).
    listener: OnceCell<()>,
    /// Dropped with the last handle, which ends the listener task.
    alive: watch::Sender<()>,
}

/// The messages of one topic published after [`Bus::subscribe`] returned.
pub struct Subscription {
    topic: String,
    rx: broadcast::Receiver<Envelope>,
    bus: Weak<Inner>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Subscription {
    /// The next message, or `None` when the bus is gone (its store dropped).
    pub async fn recv(&mut self) -> Option<BusEvent> {
        match self.rx.recv().await {
            Ok(Envelope::Message(text)) => Some(BusEvent::Message(text.to_string())),
            Ok(Envelope::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                Some(BusEvent::Lagged)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(bus) = self.bus.upgrade() else {
            return;
        };
        let mut topics = bus.lock_topics();
        // This receiver still counts until it is dropped, after this body.
        if topics
            .get(&self.topic)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            topics.remove(&self.topic);
        }
    }
}

impl Bus {
    /// The bus of a store: `NOTIFY`/`LISTEN` on the PostgreSQL database at
    /// `postgres_url`, or in process (SQLite) when it is `None`.
    pub(crate) fn new(pools: Pools, postgres_url: Option<String>) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                pools,
                postgres_url,
                listener: OnceCell::new(),
                alive: watch::channel(()).0,
            }),
        }
    }

    /// Delivers `payload` to the current subscribers of `topic` in every
    /// process on this database (PostgreSQL) or in this process (SQLite).
    /// Fails with [`StoreError::Config`] for an empty or over-long topic, a
    /// topic containing a line break, or a payload over
    /// [`MAX_PAYLOAD_BYTES`].
    pub async fn publish(&self, topic: &str, payload: &str) -> Result<(), StoreError> {
        check_topic(topic)?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StoreError::Config(format!(
                "bus payload of {} bytes is over the limit of {MAX_PAYLOAD_BYTES}",
                payload.len()
            )));
        }
        match &self.inner.pools {
            Pools::Postgres(pool) => {
                let mut conn = pool.get().await?;
                let notice = format!("{topic}{SEPARATOR}{payload}");
                diesel::sql_query("SELECT pg_notify($1, $2)")
                    .bind::<Text, _>(CHANNEL)
                    .bind::<Text, _>(notice)
                    .execute(&mut *conn)
                    .await?;
            }
            Pools::Sqlite { .. } => self.inner.dispatch(topic, payload.into()),
        }
        Ok(())
    }

    /// Starts receiving the messages published on `topic` from now on. On
    /// PostgreSQL the first call in a process opens the listening connection
    /// (an error here means it could not).
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, StoreError> {
        check_topic(topic)?;
        if let Some(url) = &self.inner.postgres_url {
            self.inner
                .listener
                .get_or_try_init(|| {
                    start_listener(
                        Arc::downgrade(&self.inner),
                        self.inner.alive.subscribe(),
                        url.clone(),
                    )
                })
                .await?;
        }
        let rx = {
            let mut topics = self.inner.lock_topics();
            topics
                .entry(topic.to_owned())
                .or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0)
                .subscribe()
        };
        Ok(Subscription {
            topic: topic.to_owned(),
            rx,
            bus: Arc::downgrade(&self.inner),
        })
    }

    /// Number of topics with at least one subscriber in this process.
    pub fn watched_topics(&self) -> usize {
        self.inner.lock_topics().len()
    }
}

impl Inner {
    fn lock_topics(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Envelope>>> {
        // A panic while holding the lock leaves the map consistent (every
        // operation on it is a single insert, get or remove).
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dispatch(&self, topic: &str, payload: Arc<str>) {
        if let Some(tx) = self.lock_topics().get(topic) {
            // No receivers left: the topic is being removed; nothing to do.
            let _ = tx.send(Envelope::Message(payload));
        }
    }

    fn resync_all(&self) {
        for tx in self.lock_topics().values() {
            let _ = tx.send(Envelope::Resync);
        }
    }
}

fn check_topic(topic: &str) -> Result<(), StoreError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES || topic.contains(SEPARATOR) {
        return Err(StoreError::Config(format!(
            "bus topics are 1 to {MAX_TOPIC_BYTES} bytes without line breaks"
        )));
    }
    Ok(())
}

async fn listen(url: &str) -> Result<AsyncPgConnection, StoreError> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| StoreError::Pool(format!("bus listener cannot connect: {e}")))?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Opens the listening connection (so a subscription made after this
/// returns hears every later notice) and spawns the task that dispatches
/// notices to topics, reconnecting when the connection is lost. The task
/// ends when the bus is dropped (`alive` closes).
async fn start_listener(
    bus: Weak<Inner>,
    mut alive: watch::Receiver<()>,
    url: String,
) -> Result<(), StoreError> {
    let mut conn = listen(&url).await?;
    tokio::spawn(async move {
        loop {
            let lost = {
                let mut notices = std::pin::pin!(conn.notifications_stream());
                loop {
                    tokio::select! {
                        _ = alive.changed() => return,
                        next = notices.next() => match next {
                            Some(Ok(notice)) => {
                                let Some(inner) = bus.upgrade() else { return };
                                if let Some((topic, payload)) = notice.payload.split_once(SEPARATOR) {
                                    inner.dispatch(topic, payload.into());
                                }
                            }
                            Some(Err(e)) => break e.to_string(),
                            None => break "notification stream ended".to_owned(),
                        }
                    }
                }
            };
            tracing::warn!(error = %lost, "bus listener lost its connection");
            let mut backoff = Duration::from_millis(100);
            conn = loop {
                tokio::select! {
                    _ = alive.changed() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                match listen(&url).await {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!(error = %e, "bus listener cannot reconnect");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            };
            tracing::info!("bus listener reconnected");
            // Notices sent while it was away are gone: subscribers re-read.
            match bus.upgrade() {
                Some(inner) => inner.resync_all(),
                None => return,
            }
        }
    });
    Ok(())
}
