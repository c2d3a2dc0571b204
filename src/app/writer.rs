//! The writer: the one task that changes the database and the engine.
//!
//! Every change — an ingest batch, a timer, a silence, a rules reload — goes
//! through this task, in one SQLite transaction that stores the runs, the
//! new alert states and the notices they caused. Two reasons:
//!
//! * **Group commit.** Requests queue on a channel; the writer drains what is
//!   waiting into one transaction and acknowledges each request only after
//!   that transaction commits. Many small POSTs then cost one fsync-free WAL
//!   commit, not one each.
//! * **One truth.** The engine lives in memory (evaluation is microseconds,
//!   history is never re-read), and the database is its durable copy. If a
//!   commit fails, the engine rolls back to its state before the batch, so
//!   memory never runs ahead of the disk.
//! * **Several replicas** (PostgreSQL). Each replica has its own writer; the
//!   store's advisory lock lets one of them evaluate and commit at a time.
//!   Under the lock the writer compares the database's generation with the
//!   one its own last commit left: if another replica committed since, it
//!   reloads the engine from the database before evaluating, exactly as at
//!   start-up. So the replicas act as one writer, and a timer fires once:
//!   the replica that gets the lock second finds it already handled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::evaluate::{Engine, Notice, NoticeKind, RuleSet, Silence};
use crate::model::{Run, RunStatus, Timestamp};
use crate::store::alerts::AlertRow;
use crate::store::deliveries::NewDelivery;
use crate::store::notices::{IncidentRow, NoticeRow};
use crate::store::runs::{Derived, Evaluation, NewRun};
use crate::store::silences::SilenceRow;
use crate::store::syncs::SyncUpdate;
use crate::store::{self, Store, StoreError, WriteTx};

/// How many runs were stored and how many were copies of stored runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestAck {
    pub accepted: usize,
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the writer has stopped")]
    Closed,
}

type IngestReply = oneshot::Sender<Result<IngestAck, WriteError>>;

/// One ingest request: its runs, and what was derived from each of them
/// (same order) before it reached the writer.
struct Request {
    runs: Vec<Run>,
    derived: Vec<Derived>,
}

enum Command {
    Ingest {
        request: Request,
        reply: IngestReply,
        /// The caller's span (`ingest`): parent of the `store` span.
        span: tracing::Span,
    },
    AddSilence {
        silence: SilenceRow,
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
    ExpireSilence {
        id: String,
        reply: oneshot::Sender<Result<bool, WriteError>>,
    },
    ReloadRules {
        rules: Box<RuleSet>,
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
}

/// Incident rows opened or closed by one transaction, and whether it gave
/// the outbox new work.
#[derive(Default)]
struct IncidentChanges {
    opened: Vec<((String, String), String)>,
    closed: Vec<(String, (String, String))>,
    outbox_changed: bool,
    /// Alerts were removed: other replicas must reload all alert state.
    reset: bool,
}

/// The grouping key of a notice (SPEC §3.6): its rule's `group_by` values;
/// with no `group_by`, the notice is a group of its own.
fn group_key(n: &Notice, group_by: &[String], notice_key: &str) -> String {
    if group_by.is_empty() {
        return notice_key.to_string();
    }
    let mut parts = vec![format!("rule={}", n.rule)];
    for g in group_by {
        let v = match g.as_str() {
            "sync_id" => Some(n.sync_id.as_str()),
            "rule" => Some(n.rule.as_str()),
            "source" => n.source.as_deref(),
            other => other
                .strip_prefix("labels.")
                .and_then(|k| n.labels.get(k).map(String::as_str)),
        };
        parts.push(format!("{g}={}", v.unwrap_or("")));
    }
    parts.join("|")
}

enum SilenceChange {
    Add(SilenceRow),
    Expire(String),
}

/// The handle API handlers and background tasks use to reach the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

impl WriterHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, WriteError>>) -> Command,
    ) -> Result<T, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| WriteError::Closed)?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// True once the writer task has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Stores and evaluates validated runs; returns once they are durable.
    ///
    /// Error classes and JSON columns are computed here, on the caller's
    /// task, so concurrent requests do that work in parallel, not in turn
    /// on the writer.
    pub async fn ingest(&self, runs: Vec<Run>) -> Result<IngestAck, WriteError> {
        let derived = runs.iter().map(Derived::of).collect::<Result<_, _>>()?;
        self.call(|reply| Command::Ingest {
            request: Request { runs, derived },
            reply,
            span: tracing::Span::current(),
        })
        .await
    }

    pub async fn add_silence(&self, silence: SilenceRow) -> Result<(), WriteError> {
        self.call(|reply| Command::AddSilence { silence, reply })
            .await
    }

    /// Ends a silence now; `false` when no silence has that id.
    pub async fn expire_silence(&self, id: String) -> Result<bool, WriteError> {
        self.call(|reply| Command::ExpireSilence { id, reply })
            .await
    }

    pub async fn reload_rules(&self, rules: RuleSet) -> Result<(), WriteError> {
        self.call(|reply| Command::ReloadRules {
            rules: Box::new(rules),
            reply,
        })
        .await
    }
}

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub record_errors_per_run: usize,
    pub max_batch_runs: usize,
}

/// The writer task's state.
pub struct Writer {
    store: Store,
    engine: Engine,
    config: WriterConfig,
    /// Newest evaluated `finished_at` per sync: a run older than this is late.
    last_evaluated: HashMap<String, Timestamp>,
    /// Silences not yet ended, mirrored from the database for the engine.
    silences: Vec<SilenceRow>,
    /// The open incident of each alert, mirrored from the database. The
    /// engine closes a held incident that clears without any notice, so
    /// the writer notices the incident id going away and closes the row.
    open_incidents: HashMap<(String, String), String>,
    /// Bumped after a commit that queued deliveries: wakes the outbox worker.
    outbox_signal: tokio::sync::watch::Sender<u64>,
    /// The rules in force, published for the outbox worker and the API.
    rules_tx: tokio::sync::watch::Sender<Arc<RuleSet>>,
    clock: fn() -> Timestamp,
    /// The shared database's generation that the engine reflects (`None` on
    /// SQLite).
    generation: Option<i64>,
}

/// How often a replica on a shared database looks for other replicas'
/// commits while it has nothing to do, so timers of alerts another replica
/// changed still fire on time.
const SHARED_POLL: Duration = Duration::from_secs(1);

/// What the engine is restored from.
struct Loaded {
    states: Vec<crate::evaluate::AlertState>,
    silences: Vec<SilenceRow>,
    last_evaluated: HashMap<String, Timestamp>,
    open_incidents: HashMap<(String, String), String>,
}

/// Reads alert state, silences, late-run marks and open incidents.
async fn load_state(store: &Store, now: Timestamp) -> Result<Loaded, StoreError> {
    let pool = store.writer();
    Ok(Loaded {
        states: parse_states(store::alerts::load_all(pool).await?)?,
        silences: store::silences::current(pool, now.0).await?,
        last_evaluated: store::syncs::last_evaluated_all(pool)
            .await?
            .into_iter()
            .map(|(s, t)| (s, Timestamp(t)))
            .collect(),
        open_incidents: open_incidents(pool).await?,
    })
}

fn parse_states(
    rows: Vec<crate::store::alerts::AlertRow>,
) -> Result<Vec<crate::evaluate::AlertState>, StoreError> {
    rows.iter()
        .map(|row| serde_json::from_str(&row.state).map_err(|e| store::corrupt("alerts.state", e)))
        .collect()
}

/// The open incident of each alert.
async fn open_incidents(
    pool: &store::Pool,
) -> Result<HashMap<(String, String), String>, StoreError> {
    Ok(store::notices::open_incidents(pool)
        .await?
        .into_iter()
        .map(|(rule, sync_id, id)| ((rule, sync_id), id))
        .collect())
}

impl Writer {
    /// Loads alert state, silences and late-run marks from the database.
    /// Nothing is replayed: start-up cost does not grow with history.
    pub async fn load(
        store: Store,
        rules: RuleSet,
        config: WriterConfig,
        clock: fn() -> Timestamp,
    ) -> Result<Writer, StoreError> {
        // The generation is read before the state: a commit landing in
        // between is merged again at the first transaction, which replaces
        // states with themselves, instead of everything being loaded twice.
        let generation = store.generation().await?;
        let loaded = load_state(&store, clock()).await?;
        let rules_tx = tokio::sync::watch::Sender::new(Arc::new(rules.clone()));
        let mut writer = Writer {
            store,
            engine: Engine::new(rules),
            config,
            last_evaluated: HashMap::new(),
            silences: Vec::new(),
            open_incidents: HashMap::new(),
            outbox_signal: tokio::sync::watch::Sender::new(0),
            rules_tx,
            clock,
            generation,
        };
        writer.restore(loaded);
        Ok(writer)
    }

    /// Rebuilds the engine and the mirrors from what was loaded, under the
    /// rules in force.
    fn restore(&mut self, loaded: Loaded) {
        let silences = loaded
            .silences
            .iter()
            .filter_map(to_engine_silence)
            .collect();
        self.engine = Engine::restore(self.engine.rules().clone(), loaded.states, silences);
        self.silences = loaded.silences;
        self.last_evaluated = loaded.last_evaluated;
        self.open_incidents = loaded.open_incidents;
    }

    /// Starts a write transaction. On a shared database, first takes in
    /// what other replicas committed since this one last did: the alert and
    /// sync rows stamped with a newer generation, merged into the engine;
    /// or, after a reset (alerts removed, silences or rules changed),
    /// everything, as at start-up.
    async fn begin(&mut self) -> Result<WriteTx, StoreError> {
        let mut tx = self.store.begin().await?;
        if let Some((current, reset)) = tx.generation().await? {
            match self.generation {
                Some(mine) if mine == current => {}
                Some(mine) if reset <= mine => {
                    tracing::debug!(
                        from = mine,
                        to = current,
                        "another replica committed; taking its changes in"
                    );
                    let pool = self.store.writer();
                    let states = parse_states(store::alerts::changed_since(pool, mine).await?)?;
                    self.engine.merge(states);
                    for (sync, t) in store::syncs::last_evaluated_since(pool, mine).await? {
                        self.last_evaluated.insert(sync, Timestamp(t));
                    }
                    self.open_incidents = open_incidents(pool).await?;
                }
                _ => {
                    if self.generation.is_some() {
                        tracing::debug!(from = ?self.generation, to = current, "another replica reset shared state; reloading it");
                    }
                    let loaded = load_state(&self.store, (self.clock)()).await?;
                    self.restore(loaded);
                }
            }
            self.generation = Some(current);
        }
        Ok(tx)
    }

    /// The generation this transaction's rows are stamped with: the one its
    /// commit will have (0 on SQLite).
    fn next_generation(&self) -> i64 {
        self.generation.map_or(0, |g| g + 1)
    }

    /// Commits; a transaction that `changed` shared state bumps the
    /// generation, so the other replicas take it in before their next
    /// change (all of it after a `reset`).
    async fn commit(
        &mut self,
        mut tx: WriteTx,
        changed: bool,
        reset: bool,
    ) -> Result<(), StoreError> {
        let next = if changed {
            tx.bump_generation(reset).await?
        } else {
            None
        };
        tx.commit().await?;
        if next.is_some() {
            self.generation = next;
        }
        Ok(())
    }

    /// The rules in force; changes on every successful reload.
    pub fn rules(&self) -> tokio::sync::watch::Receiver<Arc<RuleSet>> {
        self.rules_tx.subscribe()
    }

    /// A receiver that changes whenever new deliveries were committed.
    pub fn outbox_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.outbox_signal.subscribe()
    }

    /// Starts the task. It ends when every handle is dropped, after the
    /// commands already queued are done.
    pub fn spawn(self) -> (WriterHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let join = tokio::spawn(self.run(rx));
        (WriterHandle { tx }, join)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Deadlines missed while the process was down fire first.
        self.tick().await;
        loop {
            let wait = self.until_next_deadline();
            let cmd = tokio::select! {
                cmd = rx.recv() => cmd,
                _ = tokio::time::sleep(wait) => {
                    self.tick().await;
                    continue;
                }
            };
            let Some(cmd) = cmd else { break };
            match cmd {
                Command::Ingest {
                    request,
                    reply,
                    span,
                } => {
                    let store_span = tracing::info_span!(parent: &span, "store");
                    let mut size: usize = request.runs.len();
                    let mut group = vec![(request, reply)];
                    let mut deferred = None;
                    // Group commit: take whatever else is already waiting.
                    while size < self.config.max_batch_runs {
                        match rx.try_recv() {
                            Ok(Command::Ingest {
                                request,
                                reply,
                                span,
                            }) => {
                                store_span.follows_from(&span);
                                size += request.runs.len();
                                group.push((request, reply));
                            }
                            Ok(other) => {
                                deferred = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.ingest_group(group).instrument(store_span).await;
                    if let Some(cmd) = deferred {
                        self.other(cmd).await;
                    }
                }
                other => self.other(other).await,
            }
        }
        tracing::debug!("writer stopped");
    }

    fn until_next_deadline(&self) -> Duration {
        // Wake at least every 30 s: cheap, and robust to wall-clock jumps.
        // On a shared database, often enough to see other replicas' work.
        let max = if self.store.is_shared() {
            SHARED_POLL
        } else {
            Duration::from_secs(30)
        };
        match self.engine.next_deadline() {
            None => max,
            Some(d) => {
                let ms = d.0 - (self.clock)().0;
                if ms <= 0 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(ms as u64).min(max)
                }
            }
        }
    }

    async fn other(&mut self, cmd: Command) {
        match cmd {
            Command::Ingest {
                request,
                reply,
                span,
            } => {
                let store_span = tracing::info_span!(parent: &span, "store");
                self.ingest_group(vec![(request, reply)])
                    .instrument(store_span)
                    .await
            }
            Command::AddSilence { silence, reply } => {
                let _ = reply.send(self.add_silence(silence).await);
            }
            Command::ExpireSilence { id, reply } => {
                let _ = reply.send(self.expire_silence(&id).await);
            }
            Command::ReloadRules { rules, reply } => {
                let _ = reply.send(self.reload(*rules).await);
            }
        }
    }

    /// Fires the timers that are due. On a shared database, also takes
    /// another replica's commits in (the reload happens in `begin`), so the
    /// deadlines of alerts it changed are known here too.
    async fn tick(&mut self) {
        let now = (self.clock)();
        let due = self.engine.next_deadline().is_some_and(|d| d <= now);
        let behind = self.store.is_shared()
            && match self.store.generation().await {
                Ok(g) => g != self.generation,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the shared generation failed; will retry");
                    false
                }
            };
        if !due && !behind {
            return;
        }
        let result = async {
            let mut tx = self.begin().await?;
            let notices = self.engine.advance_to(now);
            let changed = !notices.is_empty() || !self.engine.dirty().is_empty();
            let changes = self.persist(&mut tx, &notices, now).await?;
            let reset = changes.reset;
            self.commit(tx, changed, reset).await?;
            Ok::<_, StoreError>(((), changes))
        }
        .await;
        if let Err(e) = self.settle(result) {
            tracing::error!(error = %e, "timer evaluation not stored; will retry");
        }
    }

    /// Ends a transaction's story in memory: on commit the engine forgets
    /// its undo journal and the mirrors are updated; on failure the engine
    /// rolls back to where the database still is.
    fn settle<T>(
        &mut self,
        result: Result<(T, IncidentChanges), StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Ok((value, changes)) => {
                self.engine.commit();
                self.apply_incident_changes(changes);
                Ok(value)
            }
            Err(e) => {
                self.engine.rollback();
                Err(e)
            }
        }
    }

    async fn ingest_group(&mut self, group: Vec<(Request, IngestReply)>) {
        let mut staged_last = HashMap::new();
        let (requests, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let result = self.ingest_tx(&requests, &mut staged_last).await;
        match self.settle(result) {
            Ok(acks) => {
                self.last_evaluated.extend(staged_last);
                for (reply, ack) in replies.into_iter().zip(acks) {
                    let _ = reply.send(Ok(ack));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, runs = requests.iter().map(|r| r.runs.len()).sum::<usize>(), "ingest batch not stored");
                let transient = e.unavailable();
                let msg = e.to_string();
                for reply in replies {
                    // Each client gets an equivalent error (busy, full, …);
                    // the store error itself is not cloneable.
                    let err = match transient {
                        Some(why) => StoreError::Unavailable(why),
                        None => store::corrupt("ingest", &msg),
                    };
                    let _ = reply.send(Err(WriteError::Store(err)));
                }
            }
        }
    }

    async fn ingest_tx(
        &mut self,
        requests: &[Request],
        staged_last: &mut HashMap<String, Timestamp>,
    ) -> Result<(Vec<IngestAck>, IncidentChanges), StoreError> {
        let now = (self.clock)();
        let started = std::time::Instant::now();
        let mut tx = self.begin().await?;

        let keys: Vec<(&str, &str)> = requests
            .iter()
            .flat_map(|r| &r.runs)
            .map(|r| (r.sync_id.as_str(), r.run_id.as_str()))
            .collect();
        let stored = store::runs::existing(&mut tx, &keys).await?;

        // Decide, in arrival order, which copy of each run is kept.
        let mut acks = vec![IngestAck::default(); requests.len()];
        let mut chosen: HashMap<(&str, &str), (&Run, &Derived)> = HashMap::new();
        let mut order: Vec<(&str, &str)> = Vec::new();
        let mut replace_stored: Vec<(&str, &str)> = Vec::new();
        for (i, req) in requests.iter().enumerate() {
            for (run, derived) in req.runs.iter().zip(&req.derived) {
                let key = (run.sync_id.as_str(), run.run_id.as_str());
                let prior = chosen.get(&key).map(|(r, _)| r.status).or_else(|| {
                    stored
                        .get(&(run.sync_id.clone(), run.run_id.clone()))
                        .copied()
                });
                match prior {
                    // Only copies of finished runs are duplicates.
                    Some(st) if st != RunStatus::Running => acks[i].duplicates += 1,
                    Some(_) => {
                        if !chosen.contains_key(&key) {
                            replace_stored.push(key);
                            order.push(key);
                        }
                        chosen.insert(key, (run, derived));
                        acks[i].accepted += 1;
                    }
                    None => {
                        chosen.insert(key, (run, derived));
                        order.push(key);
                        acks[i].accepted += 1;
                    }
                }
            }
        }
        if !replace_stored.is_empty() {
            store::runs::delete(&mut tx, &replace_stored).await?;
        }

        // Evaluate finished runs in event order; older than the newest
        // evaluated run of their sync means late.
        let mut finished: Vec<&Run> = order
            .iter()
            .filter_map(|k| chosen.get(k).map(|(r, _)| *r))
            .filter(|r| r.is_finished())
            .collect();
        finished.sort_by(|a, b| {
            (a.finished_at, &a.sync_id, &a.run_id).cmp(&(b.finished_at, &b.sync_id, &b.run_id))
        });
        let mut evaluation: HashMap<(&str, &str), Evaluation> = HashMap::new();
        let mut to_evaluate: Vec<&Run> = Vec::new();
        for run in &finished {
            let Some(fin) = run.finished_at else { continue };
            let last = staged_last
                .get(&run.sync_id)
                .or_else(|| self.last_evaluated.get(&run.sync_id))
                .copied();
            let ev = if last.is_some_and(|l| fin < l) {
                Evaluation::Late
            } else {
                staged_last.insert(run.sync_id.clone(), fin);
                to_evaluate.push(run);
                Evaluation::Evaluated
            };
            evaluation.insert((run.sync_id.as_str(), run.run_id.as_str()), ev);
        }

        let rows: Vec<NewRun> = order
            .iter()
            .filter_map(|k| chosen.get(k).copied())
            .map(|(run, derived)| NewRun {
                run,
                evaluation: evaluation
                    .get(&(run.sync_id.as_str(), run.run_id.as_str()))
                    .copied()
                    .unwrap_or(Evaluation::Running),
                derived,
                received: now,
            })
            .collect();
        store::runs::insert(&mut tx, &rows, self.config.record_errors_per_run).await?;
        store::runs::add_to_rollups(&mut tx, &finished).await?;

        // One sync row update per sync touched.
        let mut per_sync: BTreeMap<&str, (&Run, i64)> = BTreeMap::new();
        for row in &rows {
            let r = row.run;
            let e = per_sync.entry(r.sync_id.as_str()).or_insert((r, 0));
            e.1 += 1;
            let newer = match (r.finished_at, e.0.finished_at) {
                (Some(a), Some(b)) => a >= b,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if newer {
                e.0 = r;
            }
        }
        let updates: Vec<SyncUpdate> = per_sync
            .iter()
            .map(|(sync_id, (newest, n))| SyncUpdate {
                sync_id,
                source: newest.source.as_deref(),
                newest,
                last_evaluated: staged_last.get(*sync_id).copied(),
                runs: *n,
            })
            .collect();
        store::syncs::upsert(&mut tx, &updates, now, self.next_generation()).await?;

        let mut notices = Vec::new();
        {
            let _evaluate = tracing::info_span!("evaluate", runs = to_evaluate.len()).entered();
            for run in to_evaluate {
                notices.extend(self.engine.on_run(run));
            }
        }
        let changes = self.persist(&mut tx, &notices, now).await?;
        let reset = changes.reset;
        self.commit(tx, true, reset).await?;
        crate::telemetry::store_written(started.elapsed());
        rows.iter()
            .for_each(|r| crate::telemetry::run_ingested(r.run));
        Ok((acks, changes))
    }

    /// Writes the alerts the engine changed and the notices it decided.
    /// Returns the open-incident changes to apply once the transaction has
    /// committed.
    async fn persist(
        &self,
        tx: &mut WriteTx,
        notices: &[Notice],
        now: Timestamp,
    ) -> Result<IncidentChanges, StoreError> {
        let mut rows = Vec::new();
        let mut removed = Vec::new();
        let mut changes = IncidentChanges::default();
        for key in self.engine.dirty() {
            let map_key = (key.rule.clone(), key.sync_id.clone());
            let open = self.open_incidents.get(&map_key);
            let current = self.engine.alert(&key).and_then(|a| a.incident_id());
            if let Some(old) = open
                && current != Some(old.as_str())
            {
                // Closed without a resolved notice (a held incident that
                // cleared, or its alert dropped): close the row at `now`.
                changes.closed.push((old.clone(), map_key.clone()));
            }
            if let Some(cur) = current
                && open.map(String::as_str) != Some(cur)
            {
                changes.opened.push((map_key.clone(), cur.to_string()));
            }
            match self.engine.alert(&key) {
                Some(state) => rows.push(AlertRow {
                    rule: key.rule.clone(),
                    sync_id: key.sync_id.clone(),
                    state_name: state.state_name().to_string(),
                    state: serde_json::to_string(state)
                        .map_err(|e| store::corrupt("alerts.state (encoding)", e))?,
                }),
                None => removed.push(map_key),
            }
        }
        store::alerts::save(tx, &rows, now, self.next_generation()).await?;
        store::alerts::delete(tx, &removed).await?;
        // Other replicas cannot see a removed row: they reload everything.
        changes.reset = !removed.is_empty();

        let mut notice_rows = Vec::with_capacity(notices.len());
        for n in notices {
            notice_rows.push(notice_row(n)?);
            match n.kind {
                NoticeKind::Firing => {
                    store::notices::open_incident(
                        tx,
                        &IncidentRow {
                            incident_id: n.incident_id.clone(),
                            rule: n.rule.clone(),
                            sync_id: n.sync_id.clone(),
                            cause: n.cause.map(|c| c.as_str().to_string()),
                            state: "firing".into(),
                            held: n.held.map(|h| h.as_str().to_string()),
                            opened_ms: n.at.0,
                            since_ms: n.since.0,
                            resolved_ms: None,
                            condition: n.condition.clone(),
                        },
                    )
                    .await?;
                }
                NoticeKind::Resolved => {
                    store::notices::resolve_incident(tx, &n.incident_id, n.at.0).await?;
                }
                NoticeKind::Reminder => {}
            }
        }
        for (id, _) in &changes.closed {
            store::notices::resolve_incident(tx, id, now.0).await?;
        }
        store::notices::insert(tx, &notice_rows, now).await?;
        self.create_deliveries(tx, notices, now).await?;
        changes.outbox_changed = notices.iter().any(|n| n.held.is_none());
        Ok(changes)
    }

    /// One delivery per channel of each notice to send. A notice whose rule
    /// is gone (the resolved notice of a removed rule) goes where its
    /// incident's earlier notices went.
    async fn create_deliveries(
        &self,
        tx: &mut WriteTx,
        notices: &[Notice],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let keys: Vec<String> = notices.iter().map(Notice::key).collect();
        let mut fallback: HashMap<&str, Vec<String>> = HashMap::new();
        for n in notices {
            if n.held.is_none()
                && self.engine.rules().rule(&n.rule).is_none()
                && !fallback.contains_key(n.incident_id.as_str())
            {
                let ch = store::deliveries::channels_of_incident(tx, &n.incident_id).await?;
                fallback.insert(&n.incident_id, ch);
            }
        }
        let mut rows = Vec::new();
        for (n, key) in notices.iter().zip(&keys) {
            if let Some(h) = n.held {
                crate::telemetry::notice_held(n.kind.as_str(), h.as_str());
                continue;
            }
            let (channels, group_by, wait): (Vec<&str>, &[String], i64) =
                match self.engine.rules().rule(&n.rule) {
                    Some(r) => (
                        r.notify.iter().map(String::as_str).collect(),
                        &r.group_by,
                        r.group_wait.as_millis() as i64,
                    ),
                    None => (
                        fallback
                            .get(n.incident_id.as_str())
                            .map(|v| v.iter().map(String::as_str).collect())
                            .unwrap_or_default(),
                        &[],
                        0,
                    ),
                };
            let group_key = group_key(n, group_by, key);
            for channel in channels {
                rows.push(NewDelivery {
                    notice_key: key,
                    channel,
                    rule: &n.rule,
                    sync_id: &n.sync_id,
                    group_key: group_key.clone(),
                    due: now.plus_millis(wait),
                });
            }
        }
        store::deliveries::insert(tx, &rows).await
    }

    fn apply_incident_changes(&mut self, changes: IncidentChanges) {
        if changes.outbox_changed {
            self.outbox_signal.send_modify(|n| *n = n.wrapping_add(1));
        }
        for (id, key) in changes.closed {
            if self.open_incidents.get(&key) == Some(&id) {
                self.open_incidents.remove(&key);
            }
        }
        for (key, id) in changes.opened {
            self.open_incidents.insert(key, id);
        }
    }

    async fn add_silence(&mut self, silence: SilenceRow) -> Result<(), WriteError> {
        self.change_silences(SilenceChange::Add(silence))
            .await
            .map(|_| ())
    }

    async fn expire_silence(&mut self, id: &str) -> Result<bool, WriteError> {
        self.change_silences(SilenceChange::Expire(id.to_string()))
            .await
    }

    /// Stores a silence change and lets the engine re-evaluate holds, in one
    /// transaction. Returns whether the silence existed (for expiry). The
    /// new list is made after `begin`, which may have reloaded the
    /// silences another replica added.
    async fn change_silences(&mut self, change: SilenceChange) -> Result<bool, WriteError> {
        let now = (self.clock)();
        let result = async {
            let mut tx = self.begin().await?;
            let list: Vec<SilenceRow> = match &change {
                SilenceChange::Add(s) => {
                    let mut list = self.silences.clone();
                    list.push(s.clone());
                    list
                }
                SilenceChange::Expire(id) => self
                    .silences
                    .iter()
                    .filter(|s| s.id != *id)
                    .cloned()
                    .collect(),
            };
            let found = match &change {
                SilenceChange::Add(s) => {
                    store::silences::insert(&mut tx, s).await?;
                    true
                }
                SilenceChange::Expire(id) => store::silences::expire(&mut tx, id, now.0).await?,
            };
            let engine_list = list.iter().filter_map(to_engine_silence).collect();
            let notices = self.engine.set_silences(engine_list, now);
            let changes = self.persist(&mut tx, &notices, now).await?;
            self.commit(tx, true, true).await?;
            Ok::<_, StoreError>(((found, list), changes))
        }
        .await;
        let (found, list) = self.settle(result)?;
        self.silences = list;
        Ok(found)
    }

    async fn reload(&mut self, rules: RuleSet) -> Result<(), WriteError> {
        let now = (self.clock)();
        let published = Arc::new(rules.clone());
        let result = async {
            let mut tx = self.begin().await?;
            let notices = self.engine.replace_rules(rules, now);
            let changes = self.persist(&mut tx, &notices, now).await?;
            self.commit(tx, true, true).await?;
            Ok::<_, StoreError>(((), changes))
        }
        .await;
        self.settle(result)?;
        self.rules_tx.send_replace(published);
        Ok(())
    }
}

fn notice_row(n: &Notice) -> Result<NoticeRow, StoreError> {
    Ok(NoticeRow {
        notice_key: n.key(),
        incident_id: n.incident_id.clone(),
        kind: n.kind.as_str().to_string(),
        seq: i64::from(n.seq),
        cause: n.cause.map(|c| c.as_str().to_string()),
        rule: n.rule.clone(),
        sync_id: n.sync_id.clone(),
        at_ms: n.at.0,
        status: if n.held.is_some() { "held" } else { "pending" }.into(),
        held: n.held.map(|h| h.as_str().to_string()),
        reason: n.reason.clone(),
        body: serde_json::to_string(n).map_err(|e| store::corrupt("notices.body (encoding)", e))?,
    })
}

/// Converts a stored silence for the engine; a row with unreadable labels
/// is skipped with a log line rather than blocking every other silence.
fn to_engine_silence(s: &SilenceRow) -> Option<Silence> {
    match serde_json::from_str(&s.labels) {
        Ok(labels) => Some(Silence {
            id: s.id.clone(),
            rule: s.rule.clone(),
            sync: s.sync.clone(),
            labels,
            starts_at: Timestamp(s.starts_ms),
            ends_at: Timestamp(s.ends_ms),
        }),
        Err(e) => {
            tracing::error!(silence = %s.id, error = %e, "stored silence has unreadable labels; ignored");
            None
        }
    }
}
