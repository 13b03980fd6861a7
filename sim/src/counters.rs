//! Request counters: per (verb, resource), per response code, and in-flight gauges.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::verb::Verb;

/// A snapshot of the server's request counters (see [`ApiServer::counters`]).
///
/// - A request to a registered resource counts under its [`Verb`] and plural from the
///   moment it arrives, whether or not a fault then fails it.
/// - [`Counters::in_flight`] / [`Counters::peak_in_flight`] count non-watch requests to
///   registered resources, from arrival until their response (whole body included) has
///   been produced, injected latency included.
/// - Watches are counted separately: [`Counters::watches_open`] /
///   [`Counters::peak_watches_open`] from arrival until the stream ends.
/// - Response codes count every HTTP response (a watch counts its initial 200).
///
/// [`ApiServer::counters`]: super::ApiServer::counters
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    requests: BTreeMap<(Verb, String), u64>,
    responses: BTreeMap<u16, u64>,
    total_requests: u64,
    in_flight: u64,
    peak_in_flight: u64,
    watches_open: u64,
    peak_watches_open: u64,
}

impl Counters {
    /// Requests of `verb` on the resource with this plural name (`"configmaps"`).
    pub fn requests(&self, verb: Verb, plural: &str) -> u64 {
        self.requests
            .get(&(verb, plural.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Requests of `verb` on any resource.
    pub fn total(&self, verb: Verb) -> u64 {
        self.requests
            .iter()
            .filter(|((v, _), _)| *v == verb)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every HTTP request, including discovery, `/version` and unknown paths.
    pub fn total_requests(&self) -> u64 {
        self.total_requests
    }

    /// Responses with this HTTP status code.
    pub fn responses(&self, code: u16) -> u64 {
        self.responses.get(&code).copied().unwrap_or(0)
    }

    /// All per-(verb, plural) request counts.
    pub fn by_route(&self) -> impl Iterator<Item = (Verb, &str, u64)> + '_ {
        self.requests
            .iter()
            .map(|((verb, plural), n)| (*verb, plural.as_str(), *n))
    }

    /// Non-watch requests in flight when the snapshot was taken.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The most non-watch requests in flight at once since start or the last reset.
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight
    }

    /// Watches open when the snapshot was taken.
    pub fn watches_open(&self) -> u64 {
        self.watches_open
    }

    /// The most watches open at once since start or the last reset.
    pub fn peak_watches_open(&self) -> u64 {
        self.peak_watches_open
    }
}

/// The live counters, shared by the request handlers.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    state: Mutex<Counters>,
}

impl LiveCounters {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn snapshot(&self) -> Counters {
        self.lock().clone()
    }

    /// Zeroes every count; the peaks restart from what is in flight now.
    pub(crate) fn reset(&self) {
        let mut c = self.lock();
        c.requests.clear();
        c.responses.clear();
        c.total_requests = 0;
        c.peak_in_flight = c.in_flight;
        c.peak_watches_open = c.watches_open;
    }

    pub(crate) fn arrived(&self) {
        self.lock().total_requests += 1;
    }

    pub(crate) fn request(&self, verb: Verb, plural: &str) {
        *self
            .lock()
            .requests
            .entry((verb, plural.to_string()))
            .or_insert(0) += 1;
    }

    pub(crate) fn response(&self, code: u16) {
        *self.lock().responses.entry(code).or_insert(0) += 1;
    }

    /// Starts counting a request (or watch) as in flight until the guard drops.
    pub(crate) fn in_flight(self: &Arc<Self>, watch: bool) -> InFlight {
        let mut c = self.lock();
        if watch {
            c.watches_open += 1;
            c.peak_watches_open = c.peak_watches_open.max(c.watches_open);
        } else {
            c.in_flight += 1;
            c.peak_in_flight = c.peak_in_flight.max(c.in_flight);
        }
        InFlight {
            counters: self.clone(),
            watch,
        }
    }
}

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    counters: Arc<LiveCounters>,
    watch: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut c = self.counters.lock();
        if self.watch {
            c.watches_open = c.watches_open.saturating_sub(1);
        } else {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }
}
