//! Remembered misses: which lookups of an attachment id the database answered with nothing, so
//! that a true miss is answered from memory exactly like a denial of a cached row (a prober
//! must not tell the two apart by latency). Bounded, with the same TTL as the row cache; it
//! does not know about rows, only about absences.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

/// Distinct ids remembered at once; a scan of random ids evicts older absences, never grows.
const MAX_IDS: u64 = 100_000;
/// Dialogs remembered per id: a prober trying one id in many dialogs keeps only the last few.
const MAX_DIALOGS_PER_ID: usize = 4;
/// Write epochs are striped by id so that one busy writer does not stop every miss from
/// being remembered, while staying a fixed-size array.
const STRIPES: usize = 64;

/// One lookup that found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    Linked { dialog_id: &'a str },
    Staged,
}

/// The absences known for one id.
#[derive(Debug, Clone, Default)]
struct Absences {
    staged: bool,
    dialogs: Arc<[String]>,
}

impl Absences {
    fn covers(&self, lookup: Lookup<'_>) -> bool {
        match lookup {
            Lookup::Staged => self.staged,
            Lookup::Linked { dialog_id } => self.dialogs.iter().any(|d| d == dialog_id),
        }
    }

    fn with(&self, lookup: Lookup<'_>) -> Absences {
        match lookup {
            Lookup::Staged => Absences {
                staged: true,
                dialogs: self.dialogs.clone(),
            },
            Lookup::Linked { dialog_id } => {
                let keep = self.dialogs.len().min(MAX_DIALOGS_PER_ID - 1);
                let start = self.dialogs.len() - keep;
                let mut dialogs: Vec<String> = self.dialogs[start..].to_vec();
                dialogs.push(dialog_id.to_string());
                Absences {
                    staged: self.staged,
                    dialogs: dialogs.into(),
                }
            }
        }
    }
}

/// A ticket taken before asking the database; a miss is remembered only if no writer touched
/// the id in between (else a row created meanwhile would stay hidden for a TTL).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    epoch: u64,
}

pub struct AbsentCache {
    ids: Cache<String, Absences>,
    epochs: [AtomicU64; STRIPES],
    hasher: std::collections::hash_map::RandomState,
}

impl AbsentCache {
    pub fn new(ttl: Duration) -> Self {
        AbsentCache {
            ids: Cache::builder()
                .max_capacity(MAX_IDS)
                .time_to_live(ttl)
                .build(),
            epochs: std::array::from_fn(|_| AtomicU64::new(0)),
            hasher: Default::default(),
        }
    }

    fn stripe(&self, attachment_id: &str) -> usize {
        (self.hasher.hash_one(attachment_id) % STRIPES as u64) as usize
    }

    /// Whether `lookup` of `attachment_id` is known to find nothing.
    pub fn knows_absent(&self, attachment_id: &str, lookup: Lookup<'_>) -> bool {
        self.ids
            .get(attachment_id)
            .is_some_and(|a| a.covers(lookup))
    }

    /// Take before the database is asked about `attachment_id`.
    pub fn ticket(&self, attachment_id: &str) -> Ticket {
        let stripe = self.stripe(attachment_id);
        Ticket {
            stripe,
            epoch: self.epochs[stripe].load(Ordering::Acquire),
        }
    }

    /// Whether no writer touched the ticket's stripe since it was taken.
    pub fn still_valid(&self, ticket: Ticket) -> bool {
        self.epochs[ticket.stripe].load(Ordering::Acquire) == ticket.epoch
    }

    /// Remember that `lookup` found nothing, unless a writer came in between. Checked again
    /// after the insert: a writer that bumps the epoch between the check and the insert has
    /// already run its `forget`, so the entry it would have dropped is dropped here.
    pub fn remember(&self, attachment_id: &str, lookup: Lookup<'_>, ticket: Ticket) {
        if !self.still_valid(ticket) {
            return;
        }
        let known = self.ids.get(attachment_id).unwrap_or_default();
        self.ids
            .insert(attachment_id.to_string(), known.with(lookup));
        if !self.still_valid(ticket) {
            self.ids.invalidate(attachment_id);
        }
    }

    /// A writer changed `attachment_id`: forget its absences and void tickets taken before.
    /// Call after the write is durable.
    pub fn forget(&self, attachment_id: &str) {
        self.epochs[self.stripe(attachment_id)].fetch_add(1, Ordering::AcqRel);
        self.ids.invalidate(attachment_id);
    }

    pub fn forget_all(&self) {
        for epoch in &self.epochs {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.ids.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_remembered_miss_answers_its_own_lookup_only() {
        let cache = AbsentCache::new(TTL);
        let t = cache.ticket("a1");
        cache.remember("a1", Lookup::Linked { dialog_id: "d1" }, t);
        assert!(cache.knows_absent("a1", Lookup::Linked { dialog_id: "d1" }));
        assert!(!cache.knows_absent("a1", Lookup::Linked { dialog_id: "d2" }));
        assert!(!cache.knows_absent("a1", Lookup::Staged));
        assert!(!cache.knows_absent("a2", Lookup::Staged));
        let t = cache.ticket("a1");
        cache.remember("a1", Lookup::Staged, t);
        assert!(cache.knows_absent("a1", Lookup::Staged));
        assert!(cache.knows_absent("a1", Lookup::Linked { dialog_id: "d1" }));
    }

    #[test]
    fn a_write_between_ticket_and_answer_keeps_the_miss_out() {
        let cache = AbsentCache::new(TTL);
        let t = cache.ticket("a1");
        cache.forget("a1");
        cache.remember("a1", Lookup::Staged, t);
        assert!(!cache.knows_absent("a1", Lookup::Staged));
    }

    #[test]
    fn forget_drops_every_absence_of_the_id() {
        let cache = AbsentCache::new(TTL);
        for lookup in [Lookup::Staged, Lookup::Linked { dialog_id: "d1" }] {
            let t = cache.ticket("a1");
            cache.remember("a1", lookup, t);
        }
        cache.forget("a1");
        assert!(!cache.knows_absent("a1", Lookup::Staged));
        assert!(!cache.knows_absent("a1", Lookup::Linked { dialog_id: "d1" }));
        let t = cache.ticket("a2");
        cache.remember("a2", Lookup::Staged, t);
        cache.forget_all();
        assert!(!cache.knows_absent("a2", Lookup::Staged));
    }

    #[test]
    fn dialogs_per_id_are_bounded_keeping_the_latest() {
        let cache = AbsentCache::new(TTL);
        let names: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
        for d in &names {
            let t = cache.ticket("a1");
            cache.remember("a1", Lookup::Linked { dialog_id: d }, t);
        }
        let known = cache.ids.get("a1").unwrap();
        assert_eq!(known.dialogs.len(), MAX_DIALOGS_PER_ID);
        assert!(cache.knows_absent("a1", Lookup::Linked { dialog_id: "d9" }));
        assert!(!cache.knows_absent("a1", Lookup::Linked { dialog_id: "d0" }));
    }
}
