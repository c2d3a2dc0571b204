//! Per-channel rate limits (`rate = "30/min"`, `burst = 10`).
//!
//! A channel's quota protects its receiver (an SMTP relay with a sending
//! limit, Slack's one message per second per webhook). Beyond the quota,
//! notices are not dropped: [`ChannelLimiter::check`] tells the outbox worker
//! how long to wait, and the notice stays queued until then.
//!
//! The limiter is generic over governor's clock so tests drive it with
//! `FakeRelativeClock` instead of sleeping; governor's default clock does not
//! follow `tokio::time::pause` (see STACK.md).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use thiserror::Error;

/// Why a `rate` / `burst` setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error("{0:?} is not of the form COUNT/PERIOD, e.g. \"30/min\", \"5/s\", \"100/h\"")]
    Syntax(String),
    #[error("{0:?}: the count before '/' must be a whole number ≥ 1")]
    Count(String),
    #[error("{0:?}: the period after '/' must be a duration such as s, min, h, 10s or 1day")]
    Period(String),
    #[error("burst must be ≥ 1")]
    Burst,
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A channel's quota; unlimited when no `rate` is configured.
pub struct ChannelLimiter<C: Clock = DefaultClock> {
    inner: Option<Limiter<C>>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for ChannelLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelLimiter")
            .field("limited", &self.inner.is_some())
            .finish()
    }
}

impl<C: Clock + Clone> ChannelLimiter<C> {
    /// `rate` is `COUNT/PERIOD`; `burst` defaults to `COUNT` (a quiet channel
    /// may send a whole period's worth at once, as governor's `per_minute`
    /// does).
    pub fn new(rate: Option<&str>, burst: Option<u32>, clock: C) -> Result<Self, LimitError> {
        let Some(rate) = rate else {
            if burst == Some(0) {
                return Err(LimitError::Burst);
            }
            return Ok(ChannelLimiter { inner: None, clock });
        };
        let (count, period) = parse_rate(rate)?;
        let burst = match burst {
            None => count,
            Some(b) => NonZeroU32::new(b).ok_or(LimitError::Burst)?,
        };
        // One cell every period/count; `with_period` rejects a zero interval,
        // which only a sub-nanosecond period could produce.
        let quota = Quota::with_period(period / count.get())
            .ok_or_else(|| LimitError::Period(rate.to_owned()))?
            .allow_burst(burst);
        Ok(ChannelLimiter {
            inner: Some(RateLimiter::direct_with_clock(quota, clock.clone())),
            clock,
        })
    }

    /// Takes one cell: `Ok` means send now, `Err(wait)` means the quota is
    /// spent and the next cell is free after `wait`.
    pub fn check(&self) -> Result<(), Duration> {
        match &self.inner {
            None => Ok(()),
            Some(limiter) => limiter
                .check()
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }
}

impl ChannelLimiter<DefaultClock> {
    /// A limiter on the real clock.
    pub fn real(rate: Option<&str>, burst: Option<u32>) -> Result<Self, LimitError> {
        ChannelLimiter::new(rate, burst, DefaultClock::default())
    }
}

/// `30/min` → (30, 60 s). The period is a unit (`s`, `sec`, `m`, `min`, `h`,
/// `hour`, `d`, `day`) or any humantime duration (`10s`, `5min`).
pub fn parse_rate(rate: &str) -> Result<(NonZeroU32, Duration), LimitError> {
    let (count, period) = rate
        .split_once('/')
        .ok_or_else(|| LimitError::Syntax(rate.to_owned()))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| LimitError::Count(rate.to_owned()))?;
    let count = NonZeroU32::new(count).ok_or_else(|| LimitError::Count(rate.to_owned()))?;
    let period = period.trim();
    let text = if period.starts_with(|c: char| c.is_ascii_digit()) {
        period.to_owned()
    } else {
        format!("1{period}")
    };
    let period = humantime::parse_duration(&text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| LimitError::Period(rate.to_owned()))?;
    Ok((count, period))
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn rates_parse_with_units_and_durations() {
        let secs = |r: &str| parse_rate(r).map(|(n, p)| (n.get(), p.as_secs()));
        assert_eq!(secs("30/min"), Ok((30, 60)));
        assert_eq!(secs("5/s"), Ok((5, 1)));
        assert_eq!(secs("100/h"), Ok((100, 3600)));
        assert_eq!(secs("100/hour"), Ok((100, 3600)));
        assert_eq!(secs(" 2 / 10s "), Ok((2, 10)));
        assert_eq!(secs("1000/day"), Ok((1000, 86_400)));
    }

    #[test]
    fn bad_rates_name_what_is_wrong() {
        assert_eq!(parse_rate("30"), Err(LimitError::Syntax("30".into())));
        assert_eq!(parse_rate("0/min"), Err(LimitError::Count("0/min".into())));
        assert_eq!(parse_rate("x/min"), Err(LimitError::Count("x/min".into())));
        assert_eq!(
            parse_rate("5/fortnightly"),
            Err(LimitError::Period("5/fortnightly".into()))
        );
        assert_eq!(parse_rate("5/0s"), Err(LimitError::Period("5/0s".into())));
        let msg = LimitError::Period("5/x".into()).to_string();
        assert!(msg.contains("duration"), "{msg}");
        assert!(matches!(
            ChannelLimiter::new(Some("5/s"), Some(0), FakeRelativeClock::default()),
            Err(LimitError::Burst)
        ));
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limiter = ChannelLimiter::new(None, None, FakeRelativeClock::default()).expect("ok");
        assert!(!limiter.is_limited());
        for _ in 0..10_000 {
            assert_eq!(limiter.check(), Ok(()));
        }
    }

    #[test]
    fn a_spent_quota_says_how_long_to_wait_and_refills_on_the_clock() {
        let clock = FakeRelativeClock::default();
        let limiter = ChannelLimiter::new(Some("30/min"), None, clock.clone()).expect("ok");
        // The whole minute's quota may go at once…
        for i in 0..30 {
            assert_eq!(limiter.check(), Ok(()), "cell {i}");
        }
        // …then one cell every 2 s.
        assert_eq!(limiter.check(), Err(Duration::from_secs(2)));
        clock.advance(Duration::from_millis(500));
        assert_eq!(limiter.check(), Err(Duration::from_millis(1500)));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(limiter.check(), Ok(()));
        assert_eq!(limiter.check(), Err(Duration::from_secs(2)));
    }

    #[test]
    fn burst_caps_what_a_quiet_channel_may_send_at_once() {
        let clock = FakeRelativeClock::default();
        let limiter = ChannelLimiter::new(Some("5/s"), Some(2), clock.clone()).expect("ok");
        assert_eq!(limiter.check(), Ok(()));
        assert_eq!(limiter.check(), Ok(()));
        assert_eq!(limiter.check(), Err(Duration::from_millis(200)));
        // A long quiet spell refills the burst, never more.
        clock.advance(Duration::from_secs(60));
        assert_eq!(limiter.check(), Ok(()));
        assert_eq!(limiter.check(), Ok(()));
        assert!(limiter.check().is_err());
    }
}
