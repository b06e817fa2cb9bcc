//! The queue between a session's [`super::Outbox`] and one HTTP response stream (a POST's
//! answer or the GET stream): messages wait here until the HTTP side takes them. Every
//! queued byte also counts in the session's shared total, so the outbox can bound what a
//! session holds; [`StreamSender::cut`] discards a queue (freeing its memory at once) and
//! ends its stream, which is what the outbox does to a client that stopped reading.
//!
//! Like an unbounded mpsc channel otherwise: the stream ends once every sender is gone and
//! the queue is empty; sending fails once the receiver is gone or the queue was cut.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::Notify;

/// Creates a stream queue whose bytes also count in `session_bytes`.
pub fn stream_queue(session_bytes: Arc<AtomicUsize>) -> (StreamSender, StreamReceiver) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            messages: VecDeque::new(),
            bytes: 0,
            senders: 1,
            receiver_gone: false,
            cut: false,
        }),
        wake: Notify::new(),
        session_bytes,
    });
    (
        StreamSender {
            queue: queue.clone(),
        },
        StreamReceiver { queue },
    )
}

struct Queue {
    state: Mutex<State>,
    /// Wakes the one receiver (a permit is kept when it is not waiting).
    wake: Notify,
    session_bytes: Arc<AtomicUsize>,
}

struct State {
    messages: VecDeque<(Value, usize)>,
    bytes: usize,
    senders: usize,
    receiver_gone: bool,
    cut: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every queued message and releases its bytes.
    fn discard(&self, state: &mut State) {
        state.messages.clear();
        self.session_bytes.fetch_sub(state.bytes, Ordering::Relaxed);
        state.bytes = 0;
    }
}

/// The outbox's end of a stream queue.
pub struct StreamSender {
    queue: Arc<Queue>,
}

impl Clone for StreamSender {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.queue.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.queue.wake.notify_one();
        }
    }
}

impl StreamSender {
    /// Queues `message` (`size` bytes); gives it back when the stream is gone or cut.
    pub fn send(&self, message: Value, size: usize) -> Result<(), Value> {
        {
            let mut state = self.queue.lock();
            if state.receiver_gone || state.cut {
                return Err(message);
            }
            state.messages.push_back((message, size));
            state.bytes += size;
            self.queue.session_bytes.fetch_add(size, Ordering::Relaxed);
        }
        self.queue.wake.notify_one();
        Ok(())
    }

    /// Whether the stream is gone (receiver dropped, or cut).
    pub fn is_closed(&self) -> bool {
        let state = self.queue.lock();
        state.receiver_gone || state.cut
    }

    /// Bytes queued and not yet taken by the stream.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes
    }

    /// Whether both senders are ends of the same queue.
    pub fn same_queue(&self, other: &StreamSender) -> bool {
        Arc::ptr_eq(&self.queue, &other.queue)
    }

    /// Discards everything queued and ends the stream (its receiver sees the end next).
    pub fn cut(&self) {
        {
            let mut state = self.queue.lock();
            state.cut = true;
            self.queue.discard(&mut state);
        }
        self.queue.wake.notify_one();
    }
}

/// The HTTP side's end of a stream queue.
pub struct StreamReceiver {
    queue: Arc<Queue>,
}

/// [`StreamReceiver::try_recv`] found nothing queued.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueEmpty;

impl StreamReceiver {
    /// The next message; `None` once the stream ended (every sender gone, or cut).
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            if let Some(next) = self.take() {
                return next;
            }
            self.queue.wake.notified().await;
        }
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Result<Value, QueueEmpty> {
        self.take().flatten().ok_or(QueueEmpty)
    }

    /// `Some(Some(m))` a message, `Some(None)` the end, `None` nothing yet.
    fn take(&mut self) -> Option<Option<Value>> {
        let mut state = self.queue.lock();
        if let Some((message, size)) = state.messages.pop_front() {
            state.bytes -= size;
            self.queue.session_bytes.fetch_sub(size, Ordering::Relaxed);
            return Some(Some(message));
        }
        (state.cut || state.senders == 0).then_some(None)
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.receiver_gone = true;
        self.queue.discard(&mut state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn messages_flow_in_order_and_the_stream_ends_with_the_last_sender() {
        let session = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = stream_queue(session.clone());
        let tx2 = tx.clone();
        tx.send(json!(1), 10).unwrap();
        tx2.send(json!(2), 20).unwrap();
        assert_eq!(
            (tx.queued_bytes(), session.load(Ordering::Relaxed)),
            (30, 30)
        );
        assert_eq!(rx.recv().await, Some(json!(1)));
        drop(tx);
        assert_eq!(rx.recv().await, Some(json!(2)));
        assert_eq!(session.load(Ordering::Relaxed), 0);
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        drop(tx2);
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[tokio::test]
    async fn cutting_frees_the_bytes_at_once_and_ends_the_stream() {
        let session = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = stream_queue(session.clone());
        for n in 0..100 {
            tx.send(json!(n), 1000).unwrap();
        }
        assert_eq!(session.load(Ordering::Relaxed), 100_000);
        tx.cut();
        assert_eq!(session.load(Ordering::Relaxed), 0);
        assert!(tx.is_closed());
        assert_eq!(tx.send(json!("late"), 1), Err(json!("late")));
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn a_dropped_receiver_releases_its_bytes_and_refuses_more() {
        let session = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = stream_queue(session.clone());
        tx.send(json!("a"), 5).unwrap();
        drop(rx);
        assert_eq!(session.load(Ordering::Relaxed), 0);
        assert!(tx.is_closed());
        assert!(tx.send(json!("b"), 5).is_err());
    }
}
