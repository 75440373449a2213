//! Keeps the stored renderings ([`crate::store::renderings`]) current, off every request's path.
//!
//! A change of a package, or a miss that found no current rendering, queues the package's name;
//! a background task renders the queued packages in batches and stores their documents, each
//! only if its package has not changed since it was loaded. It waits for writes to pause
//! ([`QUIET`]; at most [`MAX_DEFER`] under a steady stream of them), so that a burst of
//! publishes renders each package once, after the burst, and takes no CPU from it; and after
//! each batch it pauses a few times as long as the batch took, so that it never takes more than
//! a fifth of a core from requests. After a start it also sweeps the registry once for packages
//! without a current rendering (a crash, another instance's change it did not render, a
//! database moved from elsewhere).
//!
//! Nothing waits for a rendering: until one is stored, a miss renders from the rows, as it
//! always could.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::cache::Form;
use super::packument;
use super::registry::Registry;
use crate::store::renderings::NewRendering;

/// Packages rendered in one batch at most.
const BATCH: usize = 256;

/// Names queued at most; past it a change is left to the next start's sweep (names only, a few
/// MB at most).
const MAX_QUEUED: usize = 65_536;

/// Rendering starts once no package has been queued for this long...
const QUIET: Duration = Duration::from_millis(100);

/// ...or once the oldest queued package has waited this long.
const MAX_DEFER: Duration = Duration::from_secs(2);

/// After a batch, the renderer pauses this many times as long as the batch took.
const PAUSE_FACTOR: u32 = 4;

/// Stored documents' bytes a batch writes in one transaction at most.
const FLUSH_BYTES: usize = 8 * 1024 * 1024;

/// The packages waiting for a rendering.
#[derive(Default)]
pub struct RenderQueue {
    queued: Mutex<Queued>,
    wake: Notify,
    /// Whether a renderer takes from the queue (not in CLI commands).
    running: AtomicBool,
    /// Misses that found no current stored rendering and rendered from the rows.
    from_rows: AtomicU64,
}

/// The queued names, and when the last one came and the oldest has waited since.
#[derive(Default)]
struct Queued {
    names: HashSet<String>,
    last: Option<Instant>,
    oldest: Option<Instant>,
}

impl RenderQueue {
    /// A miss found no current stored rendering of `name`: it renders from the rows, and the
    /// package is queued.
    pub fn missed(&self, name: &str) {
        self.from_rows.fetch_add(1, Ordering::Relaxed);
        self.wanted(name);
    }

    /// Queues `name` for rendering (nothing when no renderer runs).
    pub fn wanted(&self, name: &str) {
        if !self.running.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut queued = self.lock();
        queued.last = Some(now);
        if queued.names.len() < MAX_QUEUED && !queued.names.contains(name) {
            queued.names.insert(name.to_owned());
            queued.oldest.get_or_insert(now);
            drop(queued);
            self.wake.notify_one();
        }
    }

    /// How long to wait before rendering what is queued (zero: now).
    fn wait_before_rendering(&self) -> Duration {
        let queued = self.lock();
        let (Some(last), Some(oldest)) = (queued.last, queued.oldest) else {
            return Duration::ZERO;
        };
        let quiet = QUIET.saturating_sub(last.elapsed());
        let deferred = MAX_DEFER.saturating_sub(oldest.elapsed());
        quiet.min(deferred)
    }

    /// Up to `limit` queued names.
    fn take(&self, limit: usize) -> Vec<String> {
        let mut queued = self.lock();
        let taken: Vec<String> = queued.names.iter().take(limit).cloned().collect();
        for name in &taken {
            queued.names.remove(name);
        }
        if queued.names.is_empty() {
            queued.oldest = None;
        }
        taken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        // Each update is one step: the queue stays whole whatever panicked holding it.
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Registry {
    /// Packument misses so far that rendered from the rows (no current stored rendering).
    pub fn misses_from_rows(&self) -> u64 {
        self.render_queue.from_rows.load(Ordering::Relaxed)
    }

    /// Up to `limit` packages without a current stored rendering of both forms, in name order
    /// (a package whose documents cannot be stored, see [`packument::stored_document`], stays
    /// listed).
    pub async fn unrendered(&self, limit: usize) -> Result<Vec<String>, super::RegistryError> {
        Ok(self.store.unrendered("", limit).await?)
    }

    /// Renders queued packages until `stop`, after sweeping the registry once for packages
    /// without a current rendering.
    pub async fn keep_renderings(&self, stop: CancellationToken) {
        let queue = &self.render_queue;
        queue.running.store(true, Ordering::Relaxed);
        let mut sweep = Some(String::new());
        loop {
            let wait = queue.wait_before_rendering();
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = stop.cancelled() => return,
                }
            }
            let mut names = queue.take(BATCH);
            if names.is_empty()
                && let Some(after) = sweep.take()
            {
                match self.store.unrendered(&after, BATCH).await {
                    Ok(page) => {
                        sweep = page.last().cloned();
                        names = page;
                    }
                    Err(err) => tracing::warn!(error = %err, "could not list unrendered packages"),
                }
            }
            if names.is_empty() {
                tokio::select! {
                    () = queue.wake.notified() => continue,
                    () = stop.cancelled() => return,
                }
            }
            let started = Instant::now();
            self.render_batch(names).await;
            let pause = started.elapsed() * PAUSE_FACTOR;
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Loads, renders and stores each package's documents (a failure only leaves a miss
    /// rendering from rows, so it is logged).
    async fn render_batch(&self, names: Vec<String>) {
        let mut pending: Vec<NewRendering> = Vec::new();
        let mut bytes = 0;
        for name in names {
            let record = match self.store.load_package(&name).await {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, package = %name, "could not load a package to render");
                    continue;
                }
            };
            let rendered = tokio::task::spawn_blocking(move || {
                let mut out = Vec::with_capacity(2);
                for form in [Form::Abbreviated, Form::Full] {
                    if let Some(document) = packument::stored_document(&record, form)? {
                        out.push(NewRendering {
                            package: record.name.clone(),
                            form,
                            rev: record.rev,
                            document,
                        });
                    }
                }
                Ok::<_, super::RegistryError>(out)
            })
            .await;
            match rendered {
                Ok(Ok(documents)) => {
                    bytes += documents
                        .iter()
                        .map(|d| d.document.plain.len())
                        .sum::<usize>();
                    pending.extend(documents);
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, package = %name, "could not render a package")
                }
                Err(err) => tracing::warn!(error = %err, "a rendering task failed"),
            }
            if bytes >= FLUSH_BYTES {
                self.store_batch(std::mem::take(&mut pending)).await;
                bytes = 0;
            }
        }
        self.store_batch(pending).await;
    }

    async fn store_batch(&self, renderings: Vec<NewRendering>) {
        if renderings.is_empty() {
            return;
        }
        if let Err(err) = self.store.store_renderings(renderings).await {
            tracing::warn!(error = %err, "could not store packument renderings");
        }
    }
}
