//! The outbox worker: works the `deliveries` queue, one task per channel.
//!
//! Per channel, so a dead channel delays only its own notices. Per alert in
//! order: the queue query yields only the oldest unfinished delivery of each
//! alert, so a notice never overtakes an earlier one that is being retried.
//! Each attempt claims its rows (`sending`, with a lease) before the send
//! and records the outcome after it (claim → send → record); a crash in
//! between leaves a claimed row that is retried with the same Message-ID /
//! Idempotency-Key: at start-up on SQLite, once the lease runs out on
//! PostgreSQL (where another replica may be the one to retry it).
//! Transient failures back off exponentially with jitter (honouring
//! Retry-After); permanent ones are recorded with the reason, never retried,
//! and never block the next notice.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::DeliveryConfig;
use crate::evaluate::{Notice, RuleSet};
use crate::model::Timestamp;
use crate::notify::context::NoticeContext;
use crate::notify::gather;
use crate::notify::{Channels, DeliveryError};
use crate::store::deliveries;
use crate::store::{Store, StoreError};

/// Most notices put in one grouped message.
const MAX_GROUP: i64 = 100;
/// Most due deliveries taken from the queue in one read.
const CLAIM: i64 = 64;
/// Longest idle sleep: new work normally wakes the worker at once through
/// the writer's signal; this only bounds the damage of a missed wake-up.
const IDLE: Duration = Duration::from_secs(5);

/// What every channel task shares.
#[derive(Clone)]
pub struct Outbox {
    pub store: Store,
    pub channels: Arc<Channels>,
    pub rules: watch::Receiver<Arc<RuleSet>>,
    pub public_url: String,
    pub retry: DeliveryConfig,
}

/// Starts one task per channel: the configured ones, plus any channel that
/// still has queued work (a channel since removed from the config: its
/// deliveries fail with a clear reason instead of waiting forever).
pub async fn spawn(
    outbox: Outbox,
    signal: watch::Receiver<u64>,
) -> Result<Vec<JoinHandle<()>>, StoreError> {
    let mut names: BTreeSet<String> = outbox.channels.names().map(str::to_string).collect();
    names.extend(deliveries::channels_with_work(outbox.store.reader()).await?);
    Ok(names
        .into_iter()
        .map(|channel| {
            let outbox = outbox.clone();
            let signal = signal.clone();
            tokio::spawn(async move { channel_loop(outbox, channel, signal).await })
        })
        .collect())
}

async fn channel_loop(outbox: Outbox, channel: String, mut signal: watch::Receiver<u64>) {
    loop {
        match step(&outbox, &channel).await {
            Ok(Step::Worked) => continue,
            Ok(Step::RateLimited(wait)) => tokio::time::sleep(wait).await,
            Ok(Step::Idle) => {
                let wait = match deliveries::next_wakeup(outbox.store.reader(), &channel).await {
                    Ok(Some(at)) => {
                        let ms = (at - Timestamp::now().0).max(0) as u64;
                        Duration::from_millis(ms).min(IDLE)
                    }
                    _ => IDLE,
                };
                tokio::select! {
                    changed = signal.changed() => {
                        if changed.is_err() {
                            // The writer is gone: finish what is due, then stop.
                            tokio::time::sleep(wait).await;
                        }
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                tracing::warn!(%channel, error = %e, "outbox: store unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

enum Step {
    Worked,
    Idle,
    RateLimited(Duration),
}

/// One round: up to [`CLAIM`] due deliveries of the channel (the oldest
/// unfinished one of each alert, in notice order), each sent with the rest
/// of its group. One queue read serves the whole round: in this process
/// only this task changes the channel's rows, and the writer only adds
/// newer ones, which never come before a delivery already read, so each
/// row read is still the oldest unfinished of its alert when its turn
/// comes; a row that went out with an earlier group of the round is
/// skipped, and one another replica claimed meanwhile is left out by the
/// claim.
async fn step(outbox: &Outbox, channel: &str) -> Result<Step, StoreError> {
    let due = deliveries::due(outbox.store.reader(), channel, Timestamp::now(), CLAIM).await?;
    if due.is_empty() {
        return Ok(Step::Idle);
    }
    let mut done: HashSet<i64> = HashSet::new();
    for first in due {
        if done.contains(&first.id) {
            continue;
        }
        if let Err(wait) = outbox.channels.check_rate(channel) {
            tracing::debug!(%channel, ?wait, "outbox: channel rate limit reached; notices queue");
            return Ok(Step::RateLimited(wait.max(Duration::from_millis(10))));
        }
        attempt(outbox, channel, first, &mut done).await?;
    }
    Ok(Step::Worked)
}

/// One attempt: `first` with the rest of its group; every delivery it
/// settles goes into `done`.
async fn attempt(
    outbox: &Outbox,
    channel: &str,
    first: deliveries::Due,
    done: &mut HashSet<i64>,
) -> Result<(), StoreError> {
    let reader = outbox.store.reader();
    // A notice of a rule without `group_by` is a group of its own (its
    // group key is its notice key, unique in the outbox): nothing to look up.
    let alone = first.group_key == first.notice_key;
    let mut batch = vec![first.clone()];
    if first.attempts == 0 && !alone {
        for d in deliveries::group_pending(reader, channel, &first.group_key, MAX_GROUP).await? {
            if d.id != first.id && !done.contains(&d.id) {
                batch.push(d);
            }
        }
    }
    done.extend(batch.iter().map(|d| d.id));

    // Claim before anything is sent: another replica may have taken some
    // of these rows since the queue was read; only what this call claims
    // goes out from here.
    let writer = outbox.store.writer();
    let now = Timestamp::now();
    let lease_until = now.plus_millis(outbox.retry.claim_lease.as_millis() as i64);
    let wanted: Vec<i64> = batch.iter().map(|d| d.id).collect();
    let keys_of =
        |b: &[deliveries::Due]| b.iter().map(|d| d.notice_key.clone()).collect::<Vec<_>>();
    let message_id = crate::notify::email::message_id(&keys_of(&batch));
    let claimed = deliveries::claim(writer, &wanted, &message_id, now, lease_until).await?;
    if claimed.len() != wanted.len() {
        batch.retain(|d| claimed.contains(&d.id));
        if batch.is_empty() {
            tracing::debug!(%channel, "outbox: deliveries claimed by another replica");
            return Ok(());
        }
        let id = crate::notify::email::message_id(&keys_of(&batch));
        deliveries::set_message_id(writer, &claimed, &id).await?;
    }

    let rules = outbox.rules.borrow().clone();
    let mut ctxs: Vec<NoticeContext> = Vec::with_capacity(batch.len());
    let mut undecodable = Vec::new();
    for d in &batch {
        match serde_json::from_str::<Notice>(&d.body) {
            Ok(n) => {
                ctxs.push(gather::context(&outbox.store, &rules, &outbox.public_url, &n).await?)
            }
            Err(e) => undecodable.push((d.id, e.to_string())),
        }
    }
    for (id, err) in &undecodable {
        tracing::error!(%channel, delivery = id, error = %err, "outbox: stored notice unreadable");
        crate::telemetry::notice_delivered(channel, "unknown", "failed", "unreadable");
        deliveries::mark_failed(writer, &[*id], &format!("stored notice unreadable: {err}"))
            .await?;
    }
    let ids: Vec<i64> = batch
        .iter()
        .map(|d| d.id)
        .filter(|id| !undecodable.iter().any(|(u, _)| u == id))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = ctxs.iter().map(|c| c.key.clone()).collect();

    let span =
        tracing::info_span!("deliver", %channel, notices = ids.len(), attempt = first.attempts + 1);
    let result =
        tracing::Instrument::instrument(outbox.channels.deliver(channel, &ctxs), span).await;
    match result {
        Ok(()) => {
            deliveries::mark_sent(writer, &ids, Timestamp::now()).await?;
            ctxs.iter()
                .for_each(|c| crate::telemetry::notice_delivered(channel, &c.kind, "sent", ""));
            tracing::info!(%channel, notices = ?keys, "notice delivered");
        }
        Err(DeliveryError::Transient {
            reason,
            retry_after,
        }) => {
            let delay = retry_after.unwrap_or_else(|| backoff(&outbox.retry, first.attempts));
            let next = Timestamp::now().plus_millis(delay.as_millis() as i64);
            tracing::warn!(%channel, notices = ?keys, %reason, retry_in = ?delay, "delivery failed; will retry");
            deliveries::mark_retry(writer, &ids, next, &reason).await?;
            crate::telemetry::delivery_retried(channel);
        }
        Err(DeliveryError::Permanent { reason }) => {
            tracing::error!(%channel, notices = ?keys, %reason, "delivery failed permanently");
            deliveries::mark_failed(writer, &ids, &reason).await?;
            ctxs.iter().for_each(|c| {
                crate::telemetry::notice_delivered(channel, &c.kind, "failed", "permanent")
            });
        }
    }
    Ok(())
}

/// Exponential backoff with full jitter on the upper half:
/// `initial × 2^attempts`, capped at `max`, then a random point in
/// `[d/2, d]` so many senders retrying one endpoint spread out.
pub fn backoff(cfg: &DeliveryConfig, attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 20) as u32;
    let d = cfg
        .retry_initial
        .saturating_mul(2u32.saturating_pow(exp))
        .min(cfg.retry_max);
    let half = d / 2;
    half + Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64))
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let cfg = DeliveryConfig {
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            ..DeliveryConfig::default()
        };
        for (attempts, full) in [(0, 2_000u128), (1, 4_000), (3, 16_000), (10, 60_000)] {
            for _ in 0..50 {
                let d = backoff(&cfg, attempts).as_millis();
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempts}: {d} not in [{}, {full}]",
                    full / 2
                );
            }
        }
    }
}
