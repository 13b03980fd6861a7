//! Fault injection: latency, error statuses, dropped watches and forced 410s, per route.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::error::{ApiError, SimError};
use super::verb::Verb;

/// Which requests a [`Fault`] applies to: a verb (or any) on a resource plural (or any).
///
/// Routes only match requests for registered resources; discovery, `/version` and unknown
/// paths are never faulted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    verb: Option<Verb>,
    plural: Option<String>,
}

impl Route {
    /// Every request to every resource.
    pub fn any() -> Self {
        Self {
            verb: None,
            plural: None,
        }
    }

    /// `verb` on the resource with this plural name.
    pub fn new(verb: Verb, plural: impl Into<String>) -> Self {
        Self {
            verb: Some(verb),
            plural: Some(plural.into()),
        }
    }

    /// `verb` on any resource.
    pub fn verb(verb: Verb) -> Self {
        Self {
            verb: Some(verb),
            plural: None,
        }
    }

    /// Any verb on the resource with this plural name.
    pub fn resource(plural: impl Into<String>) -> Self {
        Self {
            verb: None,
            plural: Some(plural.into()),
        }
    }

    /// `get` on `plural`.
    pub fn get(plural: impl Into<String>) -> Self {
        Self::new(Verb::Get, plural)
    }

    /// `list` on `plural`.
    pub fn list(plural: impl Into<String>) -> Self {
        Self::new(Verb::List, plural)
    }

    /// `watch` on `plural`.
    pub fn watch(plural: impl Into<String>) -> Self {
        Self::new(Verb::Watch, plural)
    }

    /// `create` on `plural`.
    pub fn create(plural: impl Into<String>) -> Self {
        Self::new(Verb::Create, plural)
    }

    /// `update` (replace) on `plural`.
    pub fn update(plural: impl Into<String>) -> Self {
        Self::new(Verb::Update, plural)
    }

    /// `delete` on `plural`.
    pub fn delete(plural: impl Into<String>) -> Self {
        Self::new(Verb::Delete, plural)
    }

    fn matches(&self, verb: Verb, plural: &str) -> bool {
        self.verb.is_none_or(|v| v == verb) && self.plural.as_deref().is_none_or(|p| p == plural)
    }
}

/// What goes wrong on a [`Route`].
///
/// Start from one constructor and chain the rest:
/// `Fault::status(503).fraction(0.5).retry_after(2).with_latency(ms(50)).times(10)`.
///
/// - The fault *fires* on a deterministic `fraction` of the requests it applies to (default
///   1.0): request `n` (from 0) fires iff `floor((n+1)·f) > floor(n·f)`, so 0.5 fires on
///   every second request and any window of `k` requests fires `k·f` times, rounded.
/// - When it fires, all its effects apply: the latency is slept before anything else, then
///   the status (if any) is answered as a `Status` body instead of doing the request.
/// - [`Fault::gone`] applies only to watches and to lists carrying a `continue` token;
///   [`Fault::drop_watch_after`] and [`Fault::delay_watch_events`] only to watches; [`Fault::substitute`] only to gets; the
///   others to every matching request.
/// - [`Fault::times`] limits how many times it fires; then it is removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    latency: Option<Duration>,
    status: Option<u16>,
    retry_after: Option<u32>,
    fraction: f64,
    times: Option<u64>,
    drop_watch_after: Option<u64>,
    delay_watch_events: Option<Duration>,
    gone: bool,
    substitute: Option<(Option<String>, String)>,
}

impl Fault {
    fn empty() -> Self {
        Self {
            latency: None,
            status: None,
            retry_after: None,
            fraction: 1.0,
            times: None,
            drop_watch_after: None,
            delay_watch_events: None,
            gone: false,
            substitute: None,
        }
    }

    /// Adds `latency` before the response (of a watch: before its headers).
    pub fn latency(latency: Duration) -> Self {
        Self::empty().with_latency(latency)
    }

    /// Answers with this HTTP status (400..=599) and a matching `Status` body. A 429 carries
    /// `Retry-After: 1` unless [`Fault::retry_after`] says otherwise.
    pub fn status(code: u16) -> Self {
        Self::empty().with_status(code)
    }

    /// Ends watches abruptly (no final chunk: the connection is reset) after they have sent
    /// `events` ADDED/MODIFIED/DELETED events.
    pub fn drop_watch_after(events: u64) -> Self {
        Self {
            drop_watch_after: Some(events),
            ..Self::empty()
        }
    }

    /// Holds back every ADDED/MODIFIED/DELETED event of watches started from now on for
    /// `delay` before sending it (the initial state's synthetic events are not
    /// delayed): a watch cache that lags behind the writes, as a loaded API server's
    /// does. Applies to watches only.
    pub fn delay_watch_events(delay: Duration) -> Self {
        Self {
            delay_watch_events: Some(delay),
            ..Self::empty()
        }
    }

    /// The next watch gets an `ERROR` event with a 410 Expired `Status` (then a clean end);
    /// the next list with a `continue` token gets an HTTP 410 Expired. Fires once unless
    /// [`Fault::times`] says otherwise.
    pub fn gone() -> Self {
        Self {
            gone: true,
            times: Some(1),
            ..Self::empty()
        }
    }

    /// Answers gets with another object of the same resource, `name` in `namespace`
    /// (`None` for cluster-scoped resources), whatever was asked for: what a misrouting
    /// proxy or a faulty aggregated API server does, for testing that a client checks
    /// the body it gets. Applies to gets only.
    pub fn substitute(namespace: Option<&str>, name: &str) -> Self {
        Self {
            substitute: Some((namespace.map(str::to_owned), name.to_owned())),
            ..Self::empty()
        }
    }

    /// Also adds `latency`.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Also answers with this status.
    pub fn with_status(mut self, code: u16) -> Self {
        self.status = Some(code);
        self
    }

    /// Fires on this fraction (0.0..=1.0) of the requests it applies to.
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = fraction;
        self
    }

    /// Sends `Retry-After: seconds` (and `details.retryAfterSeconds`) with the status.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Fires at most `n` more times, then disappears ("fail only the next n requests").
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if let Some(code) = self.status
            && !(400..=599).contains(&code)
        {
            return Err(SimError::InvalidFault(format!(
                "status {code} is not an error status (400..=599)"
            )));
        }
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(SimError::InvalidFault(format!(
                "fraction {} is not within 0.0..=1.0",
                self.fraction
            )));
        }
        Ok(())
    }
}

/// What the faults decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub(crate) latency: Duration,
    pub(crate) fail: Option<ApiError>,
    pub(crate) gone: bool,
    pub(crate) drop_watch_after: Option<u64>,
    pub(crate) delay_watch_events: Option<Duration>,
    /// The namespace and name to answer a get with instead of the one asked for.
    pub(crate) substitute: Option<(Option<String>, String)>,
}

#[derive(Debug)]
struct Installed {
    route: Route,
    fault: Fault,
    seen: u64,
}

/// The installed faults, in installation order.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    entries: Mutex<Vec<Installed>>,
}

impl FaultTable {
    fn lock(&self) -> MutexGuard<'_, Vec<Installed>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs `fault` on `route`, replacing any fault on exactly that route.
    pub(crate) fn set(&self, route: Route, fault: Fault) {
        let mut entries = self.lock();
        entries.retain(|e| e.route != route);
        entries.push(Installed {
            route,
            fault,
            seen: 0,
        });
    }

    pub(crate) fn clear(&self, route: &Route) {
        self.lock().retain(|e| e.route != *route);
    }

    pub(crate) fn clear_all(&self) {
        self.lock().clear();
    }

    /// Decides the faults for a request; `gone_eligible` for watches and continued lists.
    pub(crate) fn decide(&self, verb: Verb, plural: &str, gone_eligible: bool) -> Decision {
        let mut decision = Decision::default();
        let mut entries = self.lock();
        for entry in entries.iter_mut() {
            if !entry.route.matches(verb, plural) {
                continue;
            }
            let f = &entry.fault;
            let applies = f.latency.is_some()
                || f.status.is_some()
                || (f.gone && gone_eligible)
                || ((f.drop_watch_after.is_some() || f.delay_watch_events.is_some())
                    && verb == Verb::Watch)
                || (f.substitute.is_some() && verb == Verb::Get);
            if !applies || f.times == Some(0) {
                continue;
            }
            let n = entry.seen as f64;
            entry.seen += 1;
            if ((n + 1.0) * f.fraction).floor() <= (n * f.fraction).floor() {
                continue;
            }
            if let Some(times) = &mut entry.fault.times {
                *times = times.saturating_sub(1);
            }
            let f = &entry.fault;
            if let Some(latency) = f.latency {
                decision.latency += latency;
            }
            if decision.fail.is_none()
                && let Some(code) = f.status
            {
                let retry_after = f.retry_after.or((code == 429).then_some(1));
                decision.fail = Some(ApiError::injected(code, retry_after));
            }
            if f.gone && gone_eligible {
                decision.gone = true;
            }
            if verb == Verb::Get && decision.substitute.is_none() {
                decision.substitute.clone_from(&f.substitute);
            }
            if verb == Verb::Watch
                && let Some(n) = f.drop_watch_after
            {
                decision.drop_watch_after = Some(decision.drop_watch_after.map_or(n, |d| d.min(n)));
            }
            if verb == Verb::Watch
                && let Some(d) = f.delay_watch_events
            {
                decision.delay_watch_events =
                    Some(decision.delay_watch_events.map_or(d, |e| e.max(d)));
            }
        }
        entries.retain(|e| e.fault.times != Some(0));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_is_deterministic_and_exact() {
        let table = FaultTable::default();
        table.set(Route::get("secrets"), Fault::status(500).fraction(0.25));
        let fired: Vec<bool> = (0..8)
            .map(|_| table.decide(Verb::Get, "secrets", false).fail.is_some())
            .collect();
        assert_eq!(fired.iter().filter(|f| **f).count(), 2);
        assert!(table.decide(Verb::List, "secrets", false).fail.is_none());
    }

    #[test]
    fn times_consumes_and_removes() {
        let table = FaultTable::default();
        table.set(Route::any(), Fault::status(503).times(2));
        assert!(table.decide(Verb::Get, "a", false).fail.is_some());
        assert!(table.decide(Verb::Get, "b", false).fail.is_some());
        assert!(table.decide(Verb::Get, "c", false).fail.is_none());
        assert!(table.lock().is_empty());
    }

    #[test]
    fn gone_only_on_eligible_requests() {
        let table = FaultTable::default();
        table.set(Route::any(), Fault::gone());
        assert!(!table.decide(Verb::List, "a", false).gone);
        assert!(table.decide(Verb::Watch, "a", true).gone);
        assert!(!table.decide(Verb::Watch, "a", true).gone);
    }
}
