//! Password hashing with Argon2id, run off the async threads (it is deliberately slow) and at
//! most a few at a time: each hash or check holds about 19 MiB, so unbounded concurrent logins
//! would take as much memory as they are many.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use super::AuthError;

/// Argon2id hashing and checking under a semaphore.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Passwords {
    /// At most `concurrency` hashes or checks at once (at least one).
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| AuthError::Internal(format!("password hashing failed: {e}")))
        })
        .await?
    }

    /// Checks a password against a PHC string.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, AuthError> {
        self.run(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| {
                AuthError::Internal(format!("stored password hash is corrupt: {e}"))
            })?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await?
    }

    /// Does the work of a check that cannot succeed (a hash with the default parameters, which
    /// stored hashes use), so that an unknown name costs as much as a wrong password.
    pub async fn verify_nothing(&self, password: String) -> Result<(), AuthError> {
        self.hash(password).await.map(drop)
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit moves into the task:
    /// a client that hangs up must not free it while the hash still runs.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let value = work();
            drop(permit);
            value
        })
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn no_more_than_the_permits_run_at_once() {
        let passwords = Passwords::new(2);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = (0..8).map(|_| {
            let (passwords, running, most) = (passwords.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                passwords
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::new(1);
        let phc = passwords.hash("s3cret".into()).await.unwrap();
        assert!(
            passwords
                .verify("s3cret".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(!passwords.verify("other".into(), phc).await.unwrap());
    }
}
