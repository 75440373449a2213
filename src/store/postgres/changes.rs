//! Changes between instances: every change's transaction sends `NOTIFY packr_changes` with the
//! package it touched (`*` for an org's members and grants, `~tokens` for a revoked token), delivered by PostgreSQL to every
//! listening instance when the transaction commits. Each instance keeps one connection outside
//! the pool listening, and forwards what arrives to its caches.
//!
//! A notification sent while the listener was disconnected is lost, so after every (re)connect
//! the listener reports [`Change::Everything`]: the caches start over rather than trust what they
//! hold.
//!
//! Read your writes on another instance: after a package or org write commits, the writer sends
//! an echo (`~echo <origin>:<n>`, a notification of its own) and waits, at most [`ECHO_WAIT`],
//! before answering ([`Echoes::settle`]). Every other listening instance answers an echo it hears
//! with `~ack <origin>:<n>` once it has forwarded every notification before it to its caches; the
//! writer answers once its own listener heard the echo and each other listener acknowledged it.
//! Notifications reach each listener in commit order, so by then every instance has had the
//! write's notification. Listeners connect as `application_name` [`LISTENER_NAME`]; the writer
//! counts them in `pg_stat_activity` when it sends the echo. Echoes and acknowledgements go
//! through the [`PgPool::relaxed`] pool: they need no disk flush of their own. PostgreSQL alone only promises to
//! send one commit's notification to every listener, not that each listening backend and
//! instance gets the processor time to pass it on promptly: on a loaded machine one can lag by
//! tens of milliseconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::StreamExt;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio_postgres::{AsyncMessage, NoTls};

use std::sync::Arc;

use super::PgPool;
use super::replicas::Replicas;
use crate::store::{Change, ChangeFeed, StoreError};

/// The channel every instance listens on.
pub(super) const CHANNEL: &str = "packr_changes";
/// The payload of a change that concerns more than one package.
const EVERYTHING: &str = "*";
/// The payload of a token revocation (no package name starts with `~`).
const TOKENS: &str = "~tokens";
/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The payload prefix of an echo (no package name starts with `~`).
const ECHO: &str = "~echo ";
/// The payload prefix of an instance's acknowledgement of another's echo.
const ACK: &str = "~ack ";
/// The `application_name` of listener connections, by which writers count them.
pub const LISTENER_NAME: &str = "packr-listener";
/// The longest a write waits for its echo before answering anyway: notifications take a few
/// milliseconds; a slower echo is logged, and the other instances catch up on their own.
pub const ECHO_WAIT: Duration = Duration::from_millis(100);

/// A write waiting for its echo: how many listeners must confirm it, and how many have.
#[derive(Debug)]
struct Waiting {
    needed: Option<i64>,
    heard: i64,
    done: Option<oneshot::Sender<()>>,
}

impl Waiting {
    fn check(&mut self) {
        if self.needed.is_some_and(|needed| self.heard >= needed)
            && let Some(done) = self.done.take()
        {
            let _ = done.send(());
        }
    }
}

/// One instance's echoes: the writes waiting to hear theirs, and whether anyone listens.
#[derive(Debug)]
pub struct Echoes {
    /// Tells this instance's echoes from other instances'.
    origin: String,
    next: AtomicU64,
    /// Whether the listener is connected; without it nothing waits.
    listening: AtomicBool,
    /// Whether other instances may exist to wait for (not when this one is the only one).
    needed: AtomicBool,
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// Where echoes and acknowledgements are sent from ([`PgPool::relaxed`]).
    signals: PgPool,
}

impl Echoes {
    pub fn new(signals: PgPool) -> Self {
        Self {
            origin: uuid::Uuid::new_v4().simple().to_string(),
            next: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            needed: AtomicBool::new(true),
            waiting: Mutex::default(),
            signals,
        }
    }

    /// The instance's [`PgPool::relaxed`] pool.
    pub fn relaxed(&self) -> &PgPool {
        &self.signals
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        // Each update is one step, so the map stays whole whatever panicked holding it.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called after a write committed, holding no pool connection: waits until every listening
    /// instance has had every notification committed before now (see the module's notes), at
    /// most [`ECHO_WAIT`]. Returns at once when this instance does not listen, or is the only one.
    pub async fn settle(&self) {
        if !self.needed.load(Ordering::Relaxed) || !self.listening.load(Ordering::SeqCst) {
            return;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, heard) = oneshot::channel();
        let waiting = Waiting {
            needed: None,
            heard: 0,
            done: Some(done),
        };
        self.waiting().insert(n, waiting);
        let payload = format!("{ECHO}{}:{n}", self.origin);
        let echo = async {
            let client = self.signals.get().await?;
            let statement = client
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM pg_stat_activity
                             WHERE datname = current_database() AND application_name = $3),
                            pg_notify($1, $2)",
                )
                .await?;
            let listeners: i64 = client
                .query_one(&statement, &[&CHANNEL, &payload, &LISTENER_NAME])
                .await?
                .get(0);
            drop(client);
            if let Some(waiting) = self.waiting().get_mut(&n) {
                waiting.needed = Some(listeners.max(1));
                waiting.check();
            }
            heard
                .await
                .map_err(|_| StoreError::Task("the change listener reconnected".into()))
        };
        let outcome = tokio::time::timeout(ECHO_WAIT, echo).await;
        let left = self.waiting().remove(&n);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "a write's echo was not heard; answering anyway")
            }
            Err(_) => tracing::warn!(
                heard = left.as_ref().map(|w| w.heard),
                listeners = left.and_then(|w| w.needed),
                "not every instance confirmed a write within {ECHO_WAIT:?}; answering anyway (the others may serve the change a little later)"
            ),
        }
    }

    /// An echo or acknowledgement of this instance's write `n` arrived.
    fn confirmed(&self, n: u64) {
        if let Some(waiting) = self.waiting().get_mut(&n) {
            waiting.heard += 1;
            waiting.check();
        }
    }

    /// `<origin>:<n>` of an echo or acknowledgement, when the write is this instance's.
    fn own(&self, tag: &str) -> Option<u64> {
        let (origin, n) = tag.split_once(':')?;
        (origin == self.origin).then(|| n.parse().ok())?
    }

    /// Whether writes wait for their echo at all ([`crate::store::Postgres::one_instance`]).
    pub fn set_needed(&self, needed: bool) {
        self.needed.store(needed, Ordering::Relaxed);
    }

    fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::SeqCst);
        if !listening {
            // Their echoes may be lost with the connection: nobody waits for them any longer.
            self.waiting().clear();
        }
    }
}

/// Acknowledges another instance's echo `tag`, in the background.
fn acknowledge(echoes: &Echoes, tag: &str) {
    let (pool, payload) = (echoes.signals.clone(), format!("{ACK}{tag}"));
    tokio::spawn(async move {
        let sent = async {
            let client = pool.get().await?;
            let statement = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
            client.execute(&statement, &[&CHANNEL, &payload]).await?;
            Ok::<_, StoreError>(())
        };
        if let Err(err) = sent.await {
            tracing::debug!(error = %err, "could not acknowledge another instance's write");
        }
    });
}

/// Announces `change` to every instance when `tx` commits.
pub async fn announce<C: GenericClient>(tx: &C, change: &Change) -> Result<(), StoreError> {
    let payload = payload(change);
    super::packages::exec(tx, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// The notification that announces `change` on [`CHANNEL`].
pub(super) fn payload(change: &Change) -> &str {
    match change {
        Change::Package(name) => name.as_str(),
        Change::Tokens => TOKENS,
        Change::Everything => EVERYTHING,
    }
}

/// Starts listening; the feed ends when the receiver is dropped. Each change is fenced on
/// `replicas` before it is forwarded, so that a cache that forgets it never reloads it from a
/// replica that has not replayed it.
pub fn listen(pool: PgPool, replicas: Option<Arc<Replicas>>, echoes: Arc<Echoes>) -> ChangeFeed {
    let (sender, feed) = unbounded_channel();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        while !sender.is_closed() {
            let result = listen_once(&pool, &sender, replicas.as_deref(), &echoes).await;
            echoes.set_listening(false);
            if let Some(replicas) = &replicas {
                replicas.listening(false);
            }
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!(error = %err, target = pool.target(), "change listener lost its connection; caches start over once it reconnects");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
    feed
}

/// One connection's life: LISTEN, report [`Change::Everything`], then forward notifications
/// until the connection ends (an error) or nobody receives them any more (`Ok`). The connection
/// is polled in this task, which forwards each notification as it is read: no hop between the
/// socket and the feed.
async fn listen_once(
    pool: &PgPool,
    sender: &UnboundedSender<Change>,
    replicas: Option<&Replicas>,
    echoes: &Echoes,
) -> Result<(), StoreError> {
    let mut config = pool.config.clone();
    config.application_name(LISTENER_NAME);
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let closed = || StoreError::Task("the change listener's connection closed".into());
    // The connection only makes progress while polled, LISTEN included.
    {
        let statement = format!("LISTEN {CHANNEL}");
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                done = &mut listen => {
                    done?;
                    break;
                }
                message = messages.next() => match message {
                    Some(message) => drop(message?),
                    None => return Err(closed()),
                },
            }
        }
    }
    // Whatever changed while nobody listened is unknown.
    if let Some(replicas) = replicas {
        replicas.changed(&Change::Everything);
        replicas.listening(true);
    }
    echoes.set_listening(true);
    if sender.send(Change::Everything).is_err() {
        return Ok(());
    }
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            // The instance stopped following changes: hang up now, not at the next one.
            () = sender.closed() => return Ok(()),
        };
        let Some(message) = message else {
            return Err(closed());
        };
        let AsyncMessage::Notification(note) = message? else {
            continue;
        };
        if let Some(tag) = note.payload().strip_prefix(ECHO) {
            // Every notification before it has been forwarded above.
            match echoes.own(tag) {
                Some(n) => echoes.confirmed(n),
                None => acknowledge(echoes, tag),
            }
            continue;
        }
        if let Some(tag) = note.payload().strip_prefix(ACK) {
            if let Some(n) = echoes.own(tag) {
                echoes.confirmed(n);
            }
            continue;
        }
        let change = match note.payload() {
            EVERYTHING => Change::Everything,
            TOKENS => Change::Tokens,
            package => Change::Package(package.to_owned()),
        };
        if let Some(replicas) = replicas {
            replicas.changed(&change);
        }
        if sender.send(change).is_err() {
            return Ok(());
        }
    }
}
