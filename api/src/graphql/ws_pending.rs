//! The sockets that have not sent `connection_init` yet, counted per client network (an IPv6
//! /64) and in total, so unauthenticated peers cannot hold the server's memory (see `ws.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Sockets one client address may hold open without having sent `connection_init`. A client
/// sends it right after the upgrade, so even a page with many tabs needs few; 64 leaves room for
/// clients behind one NAT reconnecting together.
pub const PENDING_PER_CLIENT: usize = 64;
/// The same, over all addresses. A socket stalled in the middle of a message of
/// `GRAPHQL_MAX_BODY_BYTES` holds about 1.4 times that (tungstenite's read buffer grows to the
/// announced length); at the default 256 KiB that bounds what unauthenticated peers can pin to
/// about 175 MiB, for at most `GRAPHQL_WS_INIT_TIMEOUT_SECONDS`.
pub const PENDING_TOTAL: usize = 512;
/// Counts the sockets that have not sent `connection_init` yet, per client address and in total.
pub struct PendingSockets {
    per_client: usize,
    total: usize,
    counts: Mutex<PendingCounts>,
}

#[derive(Default)]
struct PendingCounts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Why an upgrade was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PendingFull {
    /// This client address holds too many.
    Client,
    /// The server as a whole does.
    Server,
}

/// A socket's place among the pending ones; dropping it (on init or close) frees the place.
pub struct PendingSlot {
    owner: Arc<PendingSockets>,
    client: IpAddr,
}

impl Default for PendingSockets {
    fn default() -> Self {
        Self::new(PENDING_PER_CLIENT, PENDING_TOTAL)
    }
}

impl PendingSockets {
    fn new(per_client: usize, total: usize) -> Self {
        Self {
            per_client,
            total,
            counts: Mutex::new(PendingCounts::default()),
        }
    }

    /// A place for a new socket from `client`, unless the limits are reached. Addresses count
    /// by their network, as the rate limits do (an IPv6 host has a whole /64 to pick from).
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<PendingSlot, PendingFull> {
        let client = crate::ratelimit::client_network(client);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.total {
            return Err(PendingFull::Server);
        }
        let mine = counts.by_client.entry(client).or_insert(0);
        if *mine >= self.per_client {
            return Err(PendingFull::Client);
        }
        *mine += 1;
        counts.total += 1;
        Ok(PendingSlot {
            owner: self.clone(),
            client,
        })
    }

    fn release(&self, client: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_client.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                counts.by_client.remove(&client);
            }
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.owner.release(self.client);
    }
}

impl PendingFull {
    pub fn into_response(self, retry_after: Duration) -> Response {
        let (status, body) = match self {
            PendingFull::Client => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many WebSocket connections from this address have not sent connection_init; send it on those, or close them",
            ),
            PendingFull::Server => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many WebSocket connections are waiting for connection_init; try again later",
            ),
        };
        let retry = HeaderValue::from(retry_after.as_secs().max(1));
        (status, [(header::RETRY_AFTER, retry)], body).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pending_sockets_are_bounded_per_client_and_in_total() {
        let pending = Arc::new(PendingSockets::new(2, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = pending.admit(a).unwrap();
        let _a2 = pending.admit(a).unwrap();
        assert_eq!(pending.admit(a).err(), Some(PendingFull::Client));
        let _b1 = pending.admit(b).unwrap();
        assert_eq!(pending.admit(c).err(), Some(PendingFull::Server));
        // A place freed (init or close) is available again, to anyone.
        drop(a1);
        let _c1 = pending.admit(c).unwrap();
        assert_eq!(pending.admit(a).err(), Some(PendingFull::Server));
    }

    #[test]
    fn an_ipv6_network_shares_one_allowance() {
        let pending = Arc::new(PendingSockets::new(2, 10));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = pending.admit(one).unwrap();
        let _b = pending.admit(two).unwrap();
        assert_eq!(
            pending.admit("2001:db8:1:2:abcd::7".parse().unwrap()).err(),
            Some(PendingFull::Client)
        );
        assert!(pending.admit(elsewhere).is_ok());
    }

    #[test]
    fn released_addresses_are_forgotten() {
        let pending = Arc::new(PendingSockets::new(2, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        drop(pending.admit(a).unwrap());
        let counts = pending.counts.lock().unwrap();
        assert_eq!(counts.total, 0);
        assert!(counts.by_client.is_empty());
    }
}
