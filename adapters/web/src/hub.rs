//! Who is watching which conversation: each open page's event stream waits on its
//! conversation's counter here, and anything that changes a conversation bumps it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The conversations open pages are watching, in this process.
#[derive(Default)]
pub struct Hub {
    watched: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// One page's watch on a conversation; dropping it stops the watching.
pub struct Watch {
    hub: Arc<Hub>,
    id: String,
    /// Changes arrive here.
    pub changes: watch::Receiver<u64>,
}

impl Hub {
    /// Starts watching conversation `id`.
    pub fn watch(self: &Arc<Self>, id: &str) -> Watch {
        let mut watched = self.lock();
        let changes = watched
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Watch {
            hub: self.clone(),
            id: id.to_string(),
            changes,
        }
    }

    /// Conversation `id` changed: its watchers look again.
    pub fn changed(&self, id: &str) {
        if let Some(sender) = self.lock().get(id) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Anything may have changed (signals from other processes were missed): every watcher
    /// looks again.
    pub fn everything_changed(&self) {
        for sender in self.lock().values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How many conversations are watched.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.hub.lock();
        // This watch's receiver is still alive here, so "only us" is a count of one.
        if watched
            .get(&self.id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            watched.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_the_watchers_of_its_conversation_and_watches_clean_up() {
        let hub = Arc::new(Hub::default());
        let mut a1 = hub.watch("a");
        let a2 = hub.watch("a");
        let b = hub.watch("b");
        hub.changed("a");
        assert!(a1.changes.has_changed().unwrap());
        assert!(a2.changes.has_changed().unwrap());
        assert!(!b.changes.has_changed().unwrap());
        a1.changes.mark_unchanged();
        hub.everything_changed();
        assert!(a1.changes.has_changed().unwrap() && b.changes.has_changed().unwrap());
        drop(a1);
        assert_eq!(hub.watched(), 2, "a is still watched by a2");
        drop(a2);
        drop(b);
        assert_eq!(hub.watched(), 0);
        hub.changed("a"); // nobody watching: nothing to do
    }
}
