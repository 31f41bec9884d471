//! One stop signal for every task of the service, as mini-redis's `shutdown.rs` does it: the consume loop, the
//! workers' producer tasks, the committer, the refresher, the MISP push consumer, the sightings reporter and the
//! `/metrics` endpoint each hold a clone and stop when it fires. `iocmatch run` fires it on SIGTERM or SIGINT; the
//! service then drains in-flight work and commits before it returns.

use std::sync::Arc;
use tokio::sync::watch;

/// A cloneable stop signal: [`Shutdown::trigger`] once, and every [`Shutdown::wait`] returns.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Shutdown { tx: Arc::new(tx), rx }
    }

    /// Tells every holder to stop. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the signal has fired (at once if it already has). Cancel-safe, so it can sit in a `select!`.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[tokio::test]
    async fn every_clone_sees_the_signal_even_after_it_fired() {
        let s = Shutdown::new();
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait().await })
        };
        assert!(!s.is_triggered());
        s.trigger();
        waiter.await.unwrap();
        s.clone().wait().await;
        assert!(s.is_triggered());
    }
}
