//! One render per package at a time: concurrent misses of a package whose stored rendering is
//! stale wait for the first one's, instead of each assembling the same documents.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The packages being rendered, each with the gate its later misses wait at.
#[derive(Default)]
pub struct Flights {
    gates: Mutex<HashMap<Box<str>, Arc<tokio::sync::Mutex<()>>>>,
}

/// Drops a package's gate once nobody else holds or waits at it (also when a request is
/// cancelled while it waits or renders).
struct Leave<'a> {
    flights: &'a Flights,
    key: &'a str,
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut gates = self.flights.gates.lock().unwrap_or_else(|e| e.into_inner());
        let gate = self.gate.take();
        // Clones are only made under this lock: the map's and ours means nobody else.
        if gate.is_some_and(|g| Arc::strong_count(&g) == 2) {
            gates.remove(self.key);
        }
    }
}

impl Flights {
    /// Runs `work` for `key` once every earlier `run` for the same key has finished.
    pub async fn run<T>(&self, key: &str, work: impl Future<Output = T>) -> T {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(gates.entry(key.into()).or_default())
        };
        let leave = Leave {
            flights: self,
            key,
            gate: Some(Arc::clone(&gate)),
        };
        let out = {
            let _turn = gate.lock().await;
            work.await
        };
        drop(gate);
        drop(leave);
        out
    }

    /// How many packages have a render in flight (for tests).
    pub fn len(&self) -> usize {
        self.gates.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no render is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_run_per_key_at_a_time_and_no_gate_left_behind() {
        let flights = Arc::new(Flights::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (flights, inside, most) = (flights.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("p", async {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }
}
