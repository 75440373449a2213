//! Changes between instances: every change's transaction sends `NOTIFY packr_changes` with the
//! package it touched (`*` for an org's members and grants, `~tokens` for a revoked token), delivered by PostgreSQL to every
//! listening instance when the transaction commits. Each instance keeps one connection outside
//! the pool listening, and forwards what arrives to its caches.
//!
//! A notification sent while the listener was disconnected is lost, so after every (re)connect
//! the listener reports [`Change::Everything`]: the caches start over rather than trust what they
//! hold.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::StreamExt;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_postgres::{AsyncMessage, NoTls};

use std::sync::Arc;

use super::PgPool;
use super::replicas::Replicas;
use crate::store::{Change, ChangeFeed, StoreError};

/// The channel every instance listens on.
const CHANNEL: &str = "packr_changes";
/// The payload of a change that concerns more than one package.
const EVERYTHING: &str = "*";
/// The payload of a token revocation (no package name starts with `~`).
const TOKENS: &str = "~tokens";
/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Announces `change` to every instance when `tx` commits.
pub async fn announce<C: GenericClient>(tx: &C, change: &Change) -> Result<(), StoreError> {
    let payload = match change {
        Change::Package(name) => name.as_str(),
        Change::Tokens => TOKENS,
        Change::Everything => EVERYTHING,
    };
    super::packages::exec(tx, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// Starts listening; the feed ends when the receiver is dropped. Each change is fenced on
/// `replicas` before it is forwarded, so that a cache that forgets it never reloads it from a
/// replica that has not replayed it.
pub fn listen(pool: PgPool, replicas: Option<Arc<Replicas>>) -> ChangeFeed {
    let (sender, feed) = unbounded_channel();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        while !sender.is_closed() {
            let result = listen_once(&pool, &sender, replicas.as_deref()).await;
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
/// until the connection ends (an error) or nobody receives them any more (`Ok`).
async fn listen_once(
    pool: &PgPool,
    sender: &UnboundedSender<Change>,
    replicas: Option<&Replicas>,
) -> Result<(), StoreError> {
    let (client, mut connection) = pool.config.connect(NoTls).await?;
    let (messages_in, mut messages) = unbounded_channel();
    // The connection only makes progress while polled; its messages come out of the poll.
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            if messages_in.send(message).is_err() {
                break;
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Whatever changed while nobody listened is unknown.
        if let Some(replicas) = replicas {
            replicas.changed(&Change::Everything);
            replicas.listening(true);
        }
        if sender.send(Change::Everything).is_err() {
            return Ok(());
        }
        loop {
            let message = tokio::select! {
                message = messages.recv() => message,
                // The instance stopped following changes: hang up now, not at the next one.
                () = sender.closed() => return Ok(()),
            };
            let Some(message) = message else { break };
            let AsyncMessage::Notification(note) = message? else {
                continue;
            };
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
        Err(StoreError::Task(
            "the change listener's connection closed".into(),
        ))
    }
    .await;
    driver.abort();
    drop(client);
    result
}
