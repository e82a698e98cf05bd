//! Group commit: concurrent writes share one backend commit (with the embedded store,
//! one redb transaction and its fsyncs) instead of queueing for a commit each.
//!
//! Each write is still decided alone and in order, under one lock, on the state the
//! writes decided before it lead to (the *head*), so revisions and their order are those
//! of one writer committing after another. It then joins a queue and waits. Whichever
//! waiting writer finds no commit in progress becomes the leader: it takes everything
//! queued, commits it to the backend as one group, publishes the last snapshot of the
//! group, and tells every writer in it. Writes that queue while a group is being
//! committed go into the next one, so the more writers wait, the larger the groups.
//!
//! Nothing is answered before it is durable: a write is answered once its group is
//! committed. An answer that changes nothing (a refusal, or the earlier answer to a
//! repeated client token) but was decided on writes not yet durable waits for them as a
//! *barrier* in the queue, so that no one is told of a state that might never be. If a
//! group fails, every write in it fails, and so does every write decided on top of it
//! (they are dropped from the queue); the head goes back to the last durable snapshot.
//!
//! Only backends that record several commits atomically ([`Backend::groups_commits`])
//! use this; with etcd each write is checked against the shared revision and committed
//! alone ([`super::Store`]'s retrying path).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;

use super::backend::{Backend, Commit};
use super::shared::Shared;
use super::{Snapshot, StoreError};

/// What a write decided on the snapshot it was checked against.
pub(super) enum Decision<T, E> {
    /// Refused: nothing changes, and the caller gets this error.
    Refused(E),
    /// Nothing to commit; the caller gets this answer.
    Unchanged(T),
    /// A change: the snapshot it leads to, what the backend must record, the answer.
    Changed {
        /// The snapshot after the write.
        next: Arc<Snapshot>,
        /// What the backend records.
        commit: Commit,
        /// The answer once the write is durable.
        answer: T,
    },
}

/// How a queued write ended: committed, or the store's error.
type Outcome = Arc<OnceLock<Result<(), StoreError>>>;

/// A write waiting for its group's commit.
struct Queued {
    /// What it commits and the snapshot it leads to; `None` for a barrier.
    change: Option<(Commit, Arc<Snapshot>)>,
    outcome: Outcome,
    started: Instant,
}

#[derive(Default)]
struct Pending {
    /// The snapshot the last decided write leads to, while any is not yet durable.
    head: Option<Arc<Snapshot>>,
    /// Decided writes (and barriers) in the order they were decided.
    queue: Vec<Queued>,
}

/// The group committer of one store.
#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Pending>,
    /// Held by the leader while it commits a group.
    committing: Mutex<()>,
}

impl GroupCommit {
    /// Decides a write on the head with `decide`, then waits until it (or, for an answer
    /// that changes nothing, what it was decided on) is durable, and answers.
    pub(super) fn write<T, E>(
        &self,
        shared: &Shared,
        backend: &dyn Backend,
        decide: impl FnOnce(&Snapshot) -> Decision<T, E>,
        store_error: impl Fn(StoreError) -> E,
    ) -> Result<T, E> {
        let started = Instant::now();
        let (outcome, answer) = {
            let mut pending = self.pending.lock();
            let undurable = pending.head.is_some();
            let base = pending.head.clone().unwrap_or_else(|| shared.snapshot());
            let (change, answer) = match decide(&base) {
                Decision::Refused(err) if !undurable => return Err(err),
                Decision::Unchanged(answer) if !undurable => return Ok(answer),
                Decision::Refused(err) => (None, Err(err)),
                Decision::Unchanged(answer) => (None, Ok(answer)),
                Decision::Changed {
                    next,
                    commit,
                    answer,
                } => {
                    pending.head = Some(next.clone());
                    (Some((commit, next)), Ok(answer))
                }
            };
            let outcome = Outcome::default();
            pending.queue.push(Queued {
                change,
                outcome: outcome.clone(),
                started,
            });
            (outcome, answer)
        };
        self.wait(&outcome, shared, backend).map_err(store_error)?;
        answer
    }

    /// Waits for `outcome`, leading the commit of the next group whenever none is in
    /// progress and this write is still queued.
    fn wait(
        &self,
        outcome: &Outcome,
        shared: &Shared,
        backend: &dyn Backend,
    ) -> Result<(), StoreError> {
        loop {
            if let Some(done) = outcome.get() {
                return done.clone();
            }
            let _leading = self.committing.lock();
            if let Some(done) = outcome.get() {
                return done.clone();
            }
            // Nobody took this write while this thread waited for the lock, so it is
            // still queued: commit it, with everything queued beside it.
            self.commit_queued(shared, backend);
        }
    }

    /// Commits everything queued as one group and tells each writer. The caller holds
    /// `committing`.
    fn commit_queued(&self, shared: &Shared, backend: &dyn Backend) {
        let group = std::mem::take(&mut self.pending.lock().queue);
        let commits: Vec<&Commit> = group
            .iter()
            .filter_map(|queued| queued.change.as_ref().map(|(commit, _)| commit))
            .collect();
        let committed = match commits.as_slice() {
            [] => Ok(()),
            [one] => backend.commit(one),
            several => backend.commit_group(several),
        };
        match committed {
            Ok(()) => {
                let last = group
                    .iter()
                    .rev()
                    .find_map(|queued| queued.change.as_ref().map(|(_, next)| next.clone()));
                if let Some(last) = last {
                    let _writing = shared.writer.lock();
                    shared.publish(last);
                }
                let mut pending = self.pending.lock();
                if pending.queue.is_empty() {
                    // The published snapshot is the head: nothing is undurable any more.
                    pending.head = None;
                }
                drop(pending);
                for queued in group {
                    if queued.change.is_some() {
                        crate::metrics::store_write(queued.started.elapsed());
                    }
                    let _ = queued.outcome.set(Ok(()));
                }
            }
            Err(err) => {
                let err = StoreError::Unavailable(err.to_string());
                // Every write decided since was decided on top of this group's.
                let built_on_it = {
                    let mut pending = self.pending.lock();
                    pending.head = None;
                    std::mem::take(&mut pending.queue)
                };
                for queued in group.into_iter().chain(built_on_it) {
                    let _ = queued.outcome.set(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use parking_lot::Condvar;

    use crate::model::spec::MeshSpec;
    use crate::model::{ResourceKey, Spec};
    use crate::store::{BackendError, Limits, Store, Write};

    use super::*;

    /// A backend whose commits wait until the test opens its gate, and then succeed or
    /// fail as the test says; it records the revisions of each commit it was given.
    #[derive(Default)]
    struct Gate {
        state: Mutex<GateState>,
        changed: Condvar,
    }

    #[derive(Default)]
    struct GateState {
        open: bool,
        /// The call (counted from 0) that fails.
        failing: Option<usize>,
        /// The revisions of each commit, one list per call.
        calls: Vec<Vec<u64>>,
    }

    impl Gate {
        fn set(&self, open: bool) {
            self.state.lock().open = open;
            self.changed.notify_all();
        }

        fn fail_call(&self, call: usize) {
            self.state.lock().failing = Some(call);
        }

        /// Waits until the backend has been called `count` times.
        fn wait_for_calls(&self, count: usize) {
            let mut state = self.state.lock();
            while state.calls.len() < count {
                self.changed.wait(&mut state);
            }
        }

        fn calls(&self) -> Vec<Vec<u64>> {
            self.state.lock().calls.clone()
        }
    }

    impl Backend for Arc<Gate> {
        fn commit(&self, commit: &Commit) -> Result<(), BackendError> {
            self.commit_group(&[commit])
        }

        fn groups_commits(&self) -> bool {
            true
        }

        fn commit_group(&self, commits: &[&Commit]) -> Result<(), BackendError> {
            let mut state = self.state.lock();
            let call = state.calls.len();
            state
                .calls
                .push(commits.iter().map(|commit| commit.revision).collect());
            self.changed.notify_all();
            while !state.open {
                self.changed.wait(&mut state);
            }
            if state.failing == Some(call) {
                Err(BackendError::Unavailable("the disk is full".into()))
            } else {
                Ok(())
            }
        }
    }

    fn gated_store() -> (Arc<Store>, Arc<Gate>) {
        let gate = Arc::new(Gate::default());
        let store = Store::with_backend(
            Box::new(gate.clone()),
            Snapshot::default(),
            Limits::default(),
        );
        (Arc::new(store), gate)
    }

    fn create(name: &str) -> Write {
        Write::Create {
            key: ResourceKey::mesh(name),
            spec: Spec::Mesh(MeshSpec::default()),
            tags: Vec::new(),
        }
    }

    /// Starts a thread that applies `write` and sends its answer.
    fn apply_in_thread(
        store: &Arc<Store>,
        write: Write,
    ) -> mpsc::Receiver<Result<Arc<crate::model::Resource>, StoreError>> {
        let (answer, answered) = mpsc::channel();
        let store = store.clone();
        std::thread::spawn(move || answer.send(store.apply(write, None)).unwrap());
        answered
    }

    fn queued(store: &Store) -> usize {
        store.group.pending.lock().queue.len()
    }

    /// Waits until `count` writes are queued behind the commit in progress.
    fn wait_until_queued(store: &Store, count: usize) {
        while queued(store) < count {
            std::thread::yield_now();
        }
    }

    #[test]
    fn writes_queued_behind_a_commit_share_the_next_one_in_order() {
        let (store, gate) = gated_store();
        let first = apply_in_thread(&store, create("first"));
        gate.wait_for_calls(1);
        let others: Vec<_> = (0..8)
            .map(|index| {
                let answered = apply_in_thread(&store, create(&format!("mesh-{index}")));
                wait_until_queued(&store, index + 1);
                answered
            })
            .collect();
        assert!(
            others.iter().all(|answered| answered.try_recv().is_err()),
            "nothing is answered before it is durable"
        );
        assert_eq!(store.snapshot().revision(), 0, "nor visible to readers");
        gate.set(true);

        assert!(first.recv().unwrap().is_ok());
        for (index, answered) in others.into_iter().enumerate() {
            let resource = answered.recv().unwrap().unwrap();
            assert_eq!(resource.key, ResourceKey::mesh(format!("mesh-{index}")));
        }
        assert_eq!(gate.calls(), [vec![1], (2..=9).collect::<Vec<_>>()]);
        let snapshot = store.snapshot();
        assert_eq!(snapshot.revision(), 9);
        assert_eq!(snapshot.meshes().count(), 9);
    }

    #[test]
    fn a_failed_group_fails_every_write_in_it_and_those_decided_on_top_of_it() {
        let (store, gate) = gated_store();
        let first = apply_in_thread(&store, create("first"));
        gate.wait_for_calls(1);
        let second = apply_in_thread(&store, create("second"));
        wait_until_queued(&store, 1);
        // Refused on a state that is not yet durable: a barrier, answered with the
        // outcome of what it was decided on.
        let repeat = apply_in_thread(&store, create("second"));
        wait_until_queued(&store, 2);
        // The second group (`second` and the barrier) fails.
        gate.fail_call(1);
        gate.set(true);
        assert!(first.recv().unwrap().is_ok());
        let unavailable = |answer: Result<_, StoreError>| matches!(answer, Err(StoreError::Unavailable(detail)) if detail.contains("the disk is full"));
        assert!(unavailable(second.recv().unwrap()));
        assert!(
            unavailable(repeat.recv().unwrap()),
            "AlreadyExists was decided on a write that never became durable"
        );
        assert_eq!(store.snapshot().revision(), 1);
        assert!(store.snapshot().get(&ResourceKey::mesh("second")).is_none());

        // The head went back to the durable state: the same write now succeeds.
        gate.set(true);
        let again = store.apply(create("second"), None).unwrap();
        assert_eq!(again.key, ResourceKey::mesh("second"));
        assert_eq!(store.snapshot().revision(), 2);
        assert_eq!(gate.calls().last().unwrap(), &vec![2]);
    }

    #[test]
    fn a_refusal_on_a_durable_state_is_answered_at_once() {
        let (store, gate) = gated_store();
        gate.set(true);
        store.apply(create("taken"), None).unwrap();
        gate.set(false);
        assert_eq!(
            store.apply(create("taken"), None),
            Err(StoreError::AlreadyExists(ResourceKey::mesh("taken")))
        );
        assert_eq!(gate.calls().len(), 1, "no commit, so no wait for the gate");
    }
}
