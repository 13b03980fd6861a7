//! Whether a store has been filled by a complete list, and whether its writer is still
//! there: what readers wait on before they trust an empty answer.

use std::fmt;

/// The writer of a store (or the feed of a watch) was dropped: nothing will change the
/// store again. Readers keep answering from the last state it published.
///
/// Returned by the readers' `ready()` (and [`WatchStatus::ready`](crate::feed::watch::WatchStatus::ready))
/// once the writer is gone, whether or not the store was ready before. Fix: keep the
/// writer (or the watch task that owns it) alive for as long as the store is read, or
/// treat the store as frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", if *.was_ready {
    "the store's writer was dropped: the store answers from its last state and will not change"
} else {
    "the store's writer was dropped before a complete list was applied: the store will never be ready"
})]
#[non_exhaustive]
pub struct WriterDropped {
    /// Whether a complete list had been applied before the writer went.
    pub was_ready: bool,
}

/// The state of one store's readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No complete list yet, the writer alive.
    Pending,
    /// A complete list was applied, the writer alive.
    Ready,
    /// The writer is gone.
    Dropped { was_ready: bool },
}

/// One store's readiness, shared by its writer and readers (a tokio `watch` channel:
/// waiters subscribe before they check, so a change sent after the check wakes them).
pub(crate) struct Readiness {
    tx: tokio::sync::watch::Sender<State>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.tx.borrow(), f)
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            tx: tokio::sync::watch::Sender::new(State::Pending),
        }
    }
}

impl Readiness {
    /// A complete list was applied (no effect once the writer is gone).
    pub(crate) fn set_ready(&self) {
        self.tx.send_if_modified(|s| match s {
            State::Pending => {
                *s = State::Ready;
                true
            }
            _ => false,
        });
    }

    /// The writer is gone.
    pub(crate) fn writer_dropped(&self) {
        self.tx.send_if_modified(|s| match *s {
            State::Dropped { .. } => false,
            other => {
                *s = State::Dropped {
                    was_ready: other == State::Ready,
                };
                true
            }
        });
    }

    /// Whether a complete list was applied and the writer is alive.
    pub(crate) fn is_ready(&self) -> bool {
        *self.tx.borrow() == State::Ready
    }

    /// Resolves once ready (`Ok`) or once the writer is gone ([`WriterDropped`]).
    pub(crate) async fn wait(&self) -> Result<(), WriterDropped> {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let state = rx
            .wait_for(|s| *s != State::Pending)
            .await
            .map(|s| *s)
            .unwrap_or(State::Dropped { was_ready: false });
        match state {
            State::Dropped { was_ready } => Err(WriterDropped { was_ready }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_then_dropped() {
        let r = Readiness::default();
        assert!(!r.is_ready());
        r.set_ready();
        assert_eq!(r.wait().await, Ok(()));
        r.writer_dropped();
        assert_eq!(r.wait().await, Err(WriterDropped { was_ready: true }));
        r.set_ready();
        assert!(!r.is_ready(), "a dropped writer stays dropped");
        assert_eq!(r.wait().await, Err(WriterDropped { was_ready: true }));
    }

    #[tokio::test]
    async fn dropped_before_ready_wakes_a_waiter() {
        let r = std::sync::Arc::new(Readiness::default());
        let waiter = tokio::spawn({
            let r = std::sync::Arc::clone(&r);
            async move { r.wait().await }
        });
        tokio::task::yield_now().await;
        r.writer_dropped();
        assert_eq!(
            waiter.await.unwrap(),
            Err(WriterDropped { was_ready: false })
        );
    }
}
