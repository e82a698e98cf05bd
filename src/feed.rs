//! The seam between the hub and a source outside the store (Cloud Map's instances,
//! certificates): the hub says which queries its proxies need ([`Feed::want`]); the
//! source follows exactly those and reports each answer ([`Feed::report`]) or failure
//! ([`Feed::report_failure`]); the hub waits for the queries whose answer changed
//! ([`Feed::changed`]) and republishes only what depends on them.
//!
//! A failed read keeps the last answer in force, marked stale, until the source can be
//! read again. [`crate::discovery::Endpoints`] and [`crate::certificates::Certificates`]
//! are the two feeds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

/// What is known of one query.
#[derive(Debug)]
struct Entry<V> {
    /// The answer of the last successful read; `None` before the first.
    answer: Option<Arc<V>>,
    /// When the source was last read successfully (seconds since the epoch).
    last_success: Option<u64>,
    /// Why the last read failed, while the source cannot be read.
    failure: Option<String>,
}

impl<V> Default for Entry<V> {
    fn default() -> Self {
        Self {
            answer: None,
            last_success: None,
            failure: None,
        }
    }
}

/// One followed query's state, for status views.
#[derive(Debug, Clone)]
pub struct EntryState<V> {
    /// The last answer read, if any.
    pub answer: Option<Arc<V>>,
    /// When the source was last read successfully (seconds since the epoch).
    pub last_success: Option<u64>,
    /// Why the source cannot be read now, while it cannot.
    pub failure: Option<String>,
}

impl<V> EntryState<V> {
    fn of(entry: &Entry<V>) -> Self {
        Self {
            answer: entry.answer.clone(),
            last_success: entry.last_success,
            failure: entry.failure.clone(),
        }
    }
}

/// What a report changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The answer differs from the last one (a first answer always does).
    pub changed: bool,
    /// The source had been failing for this query until now.
    pub recovered: bool,
}

/// The answers of the queries the hub follows, shared by the hub and one source.
pub struct Feed<Q, V> {
    followed: Mutex<BTreeMap<Q, Entry<V>>>,
    wanted: watch::Sender<BTreeSet<Q>>,
    changes: Mutex<BTreeSet<Q>>,
    notify: Notify,
}

/// Seconds since the epoch, now.
pub fn now_epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl<Q: Ord + Clone, V: PartialEq> Default for Feed<Q, V> {
    fn default() -> Self {
        Self {
            followed: Mutex::new(BTreeMap::new()),
            wanted: watch::channel(BTreeSet::new()).0,
            changes: Mutex::new(BTreeSet::new()),
            notify: Notify::new(),
        }
    }
}

impl<Q: Ord + Clone, V: PartialEq> Feed<Q, V> {
    /// The last answer for `query`, if the source has been read for it.
    pub fn answer(&self, query: &Q) -> Option<Arc<V>> {
        self.followed
            .lock()
            .get(query)
            .and_then(|entry| entry.answer.clone())
    }

    /// What is known of `query`, if it is followed.
    pub fn state(&self, query: &Q) -> Option<EntryState<V>> {
        self.followed.lock().get(query).map(EntryState::of)
    }

    /// The hub's needs: exactly `queries` are followed from now on (what is known of
    /// the others is forgotten).
    pub fn want(&self, queries: BTreeSet<Q>) {
        {
            let mut followed = self.followed.lock();
            followed.retain(|query, _| queries.contains(query));
            for query in &queries {
                followed.entry(query.clone()).or_default();
            }
        }
        self.wanted.send_if_modified(|wanted| {
            if *wanted == queries {
                false
            } else {
                *wanted = queries;
                true
            }
        });
    }

    /// What the hub needs, for a source to follow: the receiver is told of each change.
    pub fn wanted(&self) -> watch::Receiver<BTreeSet<Q>> {
        self.wanted.subscribe()
    }

    /// A successful read of `query`: its answer now. The hub is told if it differs
    /// from the last one. A query no longer wanted is ignored (`None`).
    pub fn report(&self, query: &Q, answer: V) -> Option<Reported> {
        let reported = {
            let mut followed = self.followed.lock();
            let entry = followed.get_mut(query)?;
            let recovered = entry.failure.take().is_some();
            entry.last_success = Some(now_epoch_seconds());
            let changed = entry.answer.as_deref() != Some(&answer);
            if changed {
                entry.answer = Some(Arc::new(answer));
            }
            Reported { changed, recovered }
        };
        if reported.changed {
            self.changes.lock().insert(query.clone());
            self.notify.notify_one();
        }
        Some(reported)
    }

    /// A failed read of `query`: the last answer stays in force, marked stale. Says
    /// whether this is the first failure since the last success (`None`: not wanted).
    pub fn report_failure(&self, query: &Q, error: String) -> Option<bool> {
        let mut followed = self.followed.lock();
        let entry = followed.get_mut(query)?;
        let first = entry.failure.is_none();
        entry.failure = Some(error);
        Some(first)
    }

    /// Waits until some query's answer changed; returns those queries.
    pub async fn changed(&self) -> BTreeSet<Q> {
        loop {
            let changes = std::mem::take(&mut *self.changes.lock());
            if !changes.is_empty() {
                return changes;
            }
            self.notify.notified().await;
        }
    }

    /// Every followed query with its state, in query order.
    pub fn entries(&self) -> Vec<(Q, EntryState<V>)> {
        self.followed
            .lock()
            .iter()
            .map(|(query, entry)| (query.clone(), EntryState::of(entry)))
            .collect()
    }
}

/// Which held proxies follow each query, so that a changed answer reaches exactly them.
#[derive(Debug)]
pub struct Followers<Q, P> {
    by_query: BTreeMap<Q, BTreeSet<P>>,
}

impl<Q, P> Default for Followers<Q, P> {
    fn default() -> Self {
        Self {
            by_query: BTreeMap::new(),
        }
    }
}

impl<Q: Ord + Clone, P: Ord + Clone> Followers<Q, P> {
    /// Records that `proxy`, which followed `before`, now follows `after`. Returns every
    /// query followed when the set of followed queries changed (to tell the source),
    /// `None` when it did not.
    pub fn update(
        &mut self,
        proxy: &P,
        before: &BTreeSet<Q>,
        after: &BTreeSet<Q>,
    ) -> Option<BTreeSet<Q>> {
        let mut queries_changed = false;
        for query in before.difference(after) {
            if let Some(proxies) = self.by_query.get_mut(query) {
                proxies.remove(proxy);
                if proxies.is_empty() {
                    self.by_query.remove(query);
                    queries_changed = true;
                }
            }
        }
        for query in after.difference(before) {
            let proxies = self.by_query.entry(query.clone()).or_default();
            queries_changed |= proxies.is_empty();
            proxies.insert(proxy.clone());
        }
        queries_changed.then(|| self.by_query.keys().cloned().collect())
    }

    /// The proxies that follow any of `queries`.
    pub fn of<'a>(&self, queries: impl IntoIterator<Item = &'a Q>) -> BTreeSet<P>
    where
        Q: 'a,
    {
        queries
            .into_iter()
            .filter_map(|query| self.by_query.get(query))
            .flatten()
            .cloned()
            .collect()
    }
}

/// The longest wait before a failing query is read again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When each query is read next, and how long its current backoff is.
#[derive(Debug)]
pub struct Schedule<Q> {
    next: BTreeMap<Q, (Instant, Option<Duration>)>,
}

impl<Q: Ord + Clone> Schedule<Q> {
    /// Follows exactly `wanted`; a new query is due at once.
    pub fn follow(&mut self, wanted: &BTreeSet<Q>, now: Instant) {
        self.next.retain(|query, _| wanted.contains(query));
        for query in wanted {
            self.next.entry(query.clone()).or_insert((now, None));
        }
    }

    pub fn due(&self, now: Instant) -> Vec<Q> {
        self.next
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(query, _)| query.clone())
            .collect()
    }

    pub fn earliest(&self) -> Option<Instant> {
        self.next.values().map(|(at, _)| *at).min()
    }

    pub fn succeeded(&mut self, query: &Q, now: Instant, interval: Duration) {
        if let Some(entry) = self.next.get_mut(query) {
            *entry = (now + interval, None);
        }
    }

    pub fn failed(&mut self, query: &Q, now: Instant, interval: Duration) {
        if let Some(entry) = self.next.get_mut(query) {
            let backoff = entry
                .1
                .map_or(interval.min(Duration::from_secs(1)), |last| {
                    (last * 2).min(MAX_BACKOFF)
                })
                .max(Duration::from_millis(100));
            *entry = (now + backoff, Some(backoff));
        }
    }
}

impl<Q> Default for Schedule<Q> {
    fn default() -> Self {
        Self {
            next: BTreeMap::new(),
        }
    }
}

/// `err` and each of its causes, joined by `: ` (the SDK's errors say little at the top).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_is_reported_once_and_a_failure_keeps_the_last_answer() {
        let feed: Feed<&str, u32> = Feed::default();
        feed.want(["a", "b"].into());
        assert_eq!(feed.wanted().borrow().len(), 2);
        assert!(feed.report(&"a", 1).unwrap().changed);
        assert!(feed.report(&"b", 2).unwrap().changed);
        assert_eq!(feed.changed().await, ["a", "b"].into());
        assert!(!feed.report(&"a", 1).unwrap().changed, "the same answer");
        assert_eq!(feed.report_failure(&"a", "down".into()), Some(true));
        assert_eq!(feed.report_failure(&"a", "down".into()), Some(false));
        assert_eq!(feed.answer(&"a").as_deref(), Some(&1), "kept while failing");
        let recovered = feed.report(&"a", 1).unwrap();
        assert!(recovered.recovered && !recovered.changed);
        // A query not wanted any more is forgotten and its reports ignored.
        feed.want(["b"].into());
        assert_eq!(feed.report(&"a", 3), None);
        assert_eq!(feed.answer(&"a"), None);
        feed.report(&"b", 9);
        assert_eq!(feed.changed().await, ["b"].into());
    }

    #[test]
    fn followers_say_when_the_followed_queries_change() {
        let mut followers: Followers<&str, u8> = Followers::default();
        let none = BTreeSet::new();
        assert_eq!(
            followers.update(&1, &none, &["a"].into()),
            Some(["a"].into())
        );
        assert_eq!(followers.update(&2, &none, &["a"].into()), None);
        assert_eq!(followers.of(&["a"]), [1, 2].into());
        assert_eq!(followers.update(&1, &["a"].into(), &none), None);
        assert_eq!(
            followers.update(&2, &["a"].into(), &["b"].into()),
            Some(["b"].into())
        );
        assert!(followers.of(&["a"]).is_empty());
    }

    fn query(name: &str) -> String {
        name.to_string()
    }

    #[test]
    fn failures_back_off_doubling_and_a_success_returns_to_the_interval() {
        let interval = Duration::from_secs(5);
        let start = Instant::now();
        let mut schedule: Schedule<String> = Schedule::default();
        schedule.follow(&[query("a")].into(), start);
        assert_eq!(schedule.due(start), [query("a")]);
        let mut waits = Vec::new();
        let mut now = start;
        for _ in 0..9 {
            schedule.failed(&query("a"), now, interval);
            let next = schedule.earliest().unwrap();
            waits.push((next - now).as_secs_f64());
            now = next;
        }
        assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
        schedule.succeeded(&query("a"), now, interval);
        assert_eq!(schedule.earliest().unwrap() - now, interval);
        schedule.follow(&[query("b")].into(), now);
        assert_eq!(
            schedule.due(now),
            [query("b")],
            "a dropped query is no longer read"
        );
    }
}
