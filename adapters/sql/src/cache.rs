//! The conversations an SQLite process committed lately, so a turn can start without a read.
//!
//! On SQLite every call into the database costs a hop to the connection's thread (tens of
//! microseconds, several times the work of a small query). A process that commits a turn knows
//! the state it stored; the next turn of the conversation can start from that copy and skip
//! the read. The copy is never trusted for correctness:
//!
//! - a stale state (another process wrote the conversation since) is refused at commit by the
//!   version check, the entry is dropped, and the engine runs the turn again from the database;
//! - a message id not in the remembered ones may still have been processed (by another
//!   process, or long ago): the processed-messages key refuses it at commit, so it is still
//!   answered only once. The remembered ids only spare a duplicate delivery the work of a turn.
//!
//! The cache is bounded: two generations of at most `capacity / 2` conversations each; when
//! the young one is full the old one is dropped, so what stays is what was used lately.

use kefu_core::{Conversation, ConversationKey, TurnStart};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many message ids are remembered per conversation.
const RECENT_IDS: usize = 32;

#[derive(Clone)]
struct Entry {
    conversation: Conversation,
    recent_ids: VecDeque<String>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<ConversationKey, Entry>,
    old: HashMap<ConversationKey, Entry>,
}

pub(crate) struct TurnCache {
    generations: Mutex<Generations>,
    half: usize,
}

impl TurnCache {
    /// A cache of at most `capacity` conversations (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        TurnCache {
            generations: Mutex::new(Generations::default()),
            half: (capacity / 2).max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Every update is a single insert or remove: a poisoned lock holds consistent maps.
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How a turn of `message_id` starts, if the cache knows; `None`: read the database.
    pub(crate) fn get(&self, key: &ConversationKey, message_id: &str) -> Option<TurnStart> {
        let mut g = self.lock();
        if !g.young.contains_key(key) {
            let entry = g.old.remove(key)?;
            Self::insert_young(&mut g, self.half, key.clone(), entry);
        }
        let entry = g.young.get(key)?;
        Some(if entry.recent_ids.iter().any(|id| id == message_id) {
            TurnStart::Processed
        } else {
            TurnStart::Ready(Some(entry.conversation.clone()))
        })
    }

    /// Records a committed turn: `conversation` as stored (with its new version).
    pub(crate) fn stored(
        &self,
        key: &ConversationKey,
        conversation: Conversation,
        message_id: Option<&str>,
    ) {
        let mut g = self.lock();
        let mut recent_ids = g
            .young
            .remove(key)
            .or_else(|| g.old.remove(key))
            .map(|e| e.recent_ids)
            .unwrap_or_default();
        if let Some(id) = message_id {
            if recent_ids.len() == RECENT_IDS {
                recent_ids.pop_front();
            }
            recent_ids.push_back(id.to_string());
        }
        let entry = Entry {
            conversation,
            recent_ids,
        };
        Self::insert_young(&mut g, self.half, key.clone(), entry);
    }

    /// Forgets a conversation (its stored state is not what this process last wrote).
    pub(crate) fn forget(&self, key: &ConversationKey) {
        let mut g = self.lock();
        g.young.remove(key);
        g.old.remove(key);
    }

    fn insert_young(g: &mut Generations, half: usize, key: ConversationKey, entry: Entry) {
        if g.young.len() >= half {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_core::Locale;

    fn conversation(id: &str, version: u64) -> Conversation {
        let mut c = Conversation::new(ConversationKey::new("t", id), "u", Locale::Zh);
        c.version = version;
        // Fixed times: two calls a millisecond apart must still make equal conversations.
        (c.started_at, c.updated_at) = (1_795_400_000_000, 1_795_400_000_000);
        c
    }

    #[test]
    fn a_stored_turn_is_found_with_its_message_id() {
        let cache = TurnCache::new(100);
        let key = ConversationKey::new("t", "a");
        assert_eq!(cache.get(&key, "m1"), None);
        cache.stored(&key, conversation("a", 1), Some("m1"));
        assert_eq!(cache.get(&key, "m1"), Some(TurnStart::Processed));
        assert_eq!(
            cache.get(&key, "m2"),
            Some(TurnStart::Ready(Some(conversation("a", 1))))
        );
        cache.stored(&key, conversation("a", 2), Some("m2"));
        assert_eq!(cache.get(&key, "m1"), Some(TurnStart::Processed));
        assert_eq!(
            cache.get(&key, "m3"),
            Some(TurnStart::Ready(Some(conversation("a", 2))))
        );
        cache.forget(&key);
        assert_eq!(cache.get(&key, "m1"), None);
    }

    #[test]
    fn only_the_latest_message_ids_are_remembered() {
        let cache = TurnCache::new(100);
        let key = ConversationKey::new("t", "a");
        for i in 0..=RECENT_IDS {
            cache.stored(
                &key,
                conversation("a", i as u64 + 1),
                Some(&format!("m{i}")),
            );
        }
        assert!(matches!(
            cache.get(&key, "m0"),
            Some(TurnStart::Ready(Some(_)))
        ));
        assert_eq!(cache.get(&key, "m1"), Some(TurnStart::Processed));
    }

    #[test]
    fn the_cache_keeps_what_was_used_lately_within_its_bound() {
        let cache = TurnCache::new(10);
        let hot = ConversationKey::new("t", "hot");
        cache.stored(&hot, conversation("hot", 1), None);
        for i in 0..100 {
            let key = ConversationKey::new("t", format!("c{i}"));
            cache.stored(&key, conversation(&key.id, 1), None);
            // The hot conversation is used all the time and stays.
            assert!(
                matches!(cache.get(&hot, "x"), Some(TurnStart::Ready(Some(_)))),
                "{i}"
            );
            assert!(cache.len() <= 10, "{}", cache.len());
        }
        assert_eq!(cache.get(&ConversationKey::new("t", "c0"), "x"), None);
    }
}
