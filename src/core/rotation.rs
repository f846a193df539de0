//! A secret that can change under a warm process: a key rotation. The copy in hand is re-read
//! when the other side refuses it (a webhook's signature matches no key, Nango answers 401) and
//! the copy is older than `min_age`, and before use once it is older than `ttl`. Reads are at
//! most one per `min_age` whatever arrives, so a flood of forged webhooks costs one secret read
//! per bound; a failed read keeps the copy in hand and is tried again a bound later.
//!
//! The reader is a boxed closure rather than a port type parameter: it runs once per bound at
//! most, and the apps that hold a secret stay generic only over the ports they call per request.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

/// A read of the secret that takes longer is abandoned (the copy in hand serves), so a stalled
/// Secrets Manager cannot hold up the requests waiting on a refused copy's read.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the secret anew (from Secrets Manager, when deployed). The error is a sentence for the
/// log, naming the secret, never its value.
pub type Reread<T> = Box<dyn Fn() -> BoxFuture<'static, Result<T, String>> + Send + Sync>;

/// When a copy is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RereadPolicy {
    /// After a refusal, re-read only a copy at least this old (and at most one read per bound).
    pub min_age: Duration,
    /// Re-read a copy this old before using it, refused or not.
    pub ttl: Duration,
}

impl Default for RereadPolicy {
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(30),
            ttl: Duration::from_secs(300),
        }
    }
}

/// The copy of a secret a process holds, and how it is renewed.
pub struct RotatingSecret<T> {
    what: &'static str,
    copy: RwLock<Arc<T>>,
    /// When the copy was read, or a read last tried. The lock also makes reads one at a time.
    tried_at: tokio::sync::Mutex<Instant>,
    reread: Option<Reread<T>>,
    policy: RereadPolicy,
}

impl<T> std::fmt::Debug for RotatingSecret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingSecret")
            .field("what", &self.what)
            .field("rereads", &self.reread.is_some())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T> From<T> for RotatingSecret<T> {
    fn from(value: T) -> Self {
        Self::fixed(value)
    }
}

impl<T> RotatingSecret<T> {
    /// A secret that never changes while the process runs (it came from the environment).
    pub fn fixed(value: T) -> Self {
        Self {
            what: "secret",
            copy: RwLock::new(Arc::new(value)),
            tried_at: tokio::sync::Mutex::new(Instant::now()),
            reread: None,
            policy: RereadPolicy::default(),
        }
    }

    /// A secret read just now, re-read by `reread` as `policy` says; `what` names it in the logs.
    pub fn reread(value: T, what: &'static str, policy: RereadPolicy, reread: Reread<T>) -> Self {
        Self {
            what,
            reread: Some(reread),
            policy,
            ..Self::fixed(value)
        }
    }

    /// The copy in hand, as it is.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.copy.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The copy to use now: read again first when it is older than the TTL. While another
    /// caller is reading it, the copy in hand serves (nobody waits on a TTL read but its reader).
    pub async fn fresh(&self) -> Arc<T> {
        if self.reread.is_some() {
            if let Ok(mut tried_at) = self.tried_at.try_lock() {
                if tried_at.elapsed() >= self.policy.ttl {
                    self.read_again(&mut tried_at, "its copy is older than the TTL")
                        .await;
                }
            }
        }
        self.current()
    }

    /// `refused` was refused: a newer copy to try, if one was read since `refused` was handed
    /// out or can be read now (the copy is at least `min_age` old); `None` when there is none.
    pub async fn after_refusal(&self, refused: &Arc<T>) -> Option<Arc<T>> {
        self.reread.as_ref()?;
        let mut tried_at = self.tried_at.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, refused) {
            return Some(current);
        }
        if tried_at.elapsed() < self.policy.min_age {
            return None;
        }
        self.read_again(&mut tried_at, "the copy in hand was refused")
            .await
            .then(|| self.current())
    }

    /// Reads the secret and keeps it; true if it was read.
    async fn read_again(&self, tried_at: &mut Instant, why: &'static str) -> bool {
        let Some(reread) = &self.reread else {
            return false;
        };
        *tried_at = Instant::now();
        let read = match tokio::time::timeout(READ_TIMEOUT, reread()).await {
            Ok(read) => read,
            Err(_) => Err(format!("no answer within {READ_TIMEOUT:?}")),
        };
        match read {
            Ok(value) => {
                *self.copy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
                tracing::info!(secret = self.what, why, "secret read again");
                true
            }
            Err(error) => {
                tracing::warn!(secret = self.what, why, %error, "could not read the secret again; keeping the copy in hand");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A secret whose source holds `value` (changeable) and counts its reads.
    fn counted(
        source: Arc<RwLock<Result<String, String>>>,
        reads: Arc<AtomicU32>,
    ) -> RotatingSecret<String> {
        let first = source.read().unwrap().clone().unwrap();
        RotatingSecret::reread(
            first,
            "test key",
            RereadPolicy::default(),
            Box::new(move || {
                let (source, reads) = (Arc::clone(&source), Arc::clone(&reads));
                Box::pin(async move {
                    reads.fetch_add(1, Ordering::SeqCst);
                    source.read().unwrap().clone()
                })
            }),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_reads_a_rotated_secret_once_the_copy_is_old_enough() {
        let source = Arc::new(RwLock::new(Ok("A".to_owned())));
        let reads = Arc::new(AtomicU32::new(0));
        let secret = counted(Arc::clone(&source), Arc::clone(&reads));
        *source.write().unwrap() = Ok("B".to_owned());

        let a = secret.fresh().await;
        assert_eq!(*a, "A");
        // Younger than the bound: no read, however many refusals.
        for _ in 0..100 {
            assert!(secret.after_refusal(&a).await.is_none());
        }
        assert_eq!(reads.load(Ordering::SeqCst), 0);

        tokio::time::advance(Duration::from_secs(30)).await;
        let b = secret.after_refusal(&a).await.expect("a newer copy");
        assert_eq!(*b, "B");
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // A refusal of the old copy, handed out before the read, gets the new one without a read.
        assert_eq!(*secret.after_refusal(&a).await.unwrap(), "B");
        // A flood refusing the new copy: nothing until the bound has passed again, then one read.
        for _ in 0..100 {
            assert!(secret.after_refusal(&b).await.is_none());
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        for _ in 0..100 {
            let _ = secret.after_refusal(&secret.current()).await;
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttl_renews_a_copy_nobody_refused() {
        let source = Arc::new(RwLock::new(Ok("A".to_owned())));
        let reads = Arc::new(AtomicU32::new(0));
        let secret = counted(Arc::clone(&source), Arc::clone(&reads));
        *source.write().unwrap() = Ok("B".to_owned());
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(*secret.fresh().await, "A");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(*secret.fresh().await, "B");
        assert_eq!(*secret.fresh().await, "B");
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_keeps_the_copy_and_waits_a_bound() {
        let source = Arc::new(RwLock::new(Ok("A".to_owned())));
        let reads = Arc::new(AtomicU32::new(0));
        let secret = counted(Arc::clone(&source), Arc::clone(&reads));
        *source.write().unwrap() = Err("Secrets Manager unreachable".to_owned());
        tokio::time::advance(Duration::from_secs(30)).await;
        let a = secret.current();
        assert!(secret.after_refusal(&a).await.is_none());
        assert!(secret.after_refusal(&a).await.is_none());
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(*secret.current(), "A");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_never_answers_is_abandoned_and_the_copy_kept() {
        let secret = RotatingSecret::reread(
            "A".to_owned(),
            "test key",
            RereadPolicy::default(),
            Box::new(|| Box::pin(futures_util::future::pending())),
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        let a = secret.current();
        assert!(secret.after_refusal(&a).await.is_none());
        assert_eq!(*secret.current(), "A");
    }

    #[tokio::test]
    async fn a_fixed_secret_is_never_read_again() {
        let secret = RotatingSecret::fixed("A".to_owned());
        let a = secret.fresh().await;
        assert!(secret.after_refusal(&a).await.is_none());
        assert_eq!(*secret.current(), "A");
    }
}
