//! The caps on `/events` streams: a stream holds a connection, a task and a
//! broadcast receiver for as long as the client likes, so there are at most
//! `model_service.max_event_streams` of them, and at most
//! `model_service.max_event_streams_per_client` per client. A stream's
//! [`StreamSlot`] lives inside the stream: when the client goes away (or
//! shutdown ends the stream) the body is dropped, the slot with it, and the
//! place is free again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Gauge: `/events` streams open.
pub const OPEN_STREAMS: &str = "model_service_event_streams";

/// Why a new stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefusal {
    #[error("{0} event streams are open, as many as the service allows; retry later")]
    Full(usize),
    #[error("this client has {0} event streams open, as many as one client may; close one or retry later")]
    ClientFull(usize),
}

/// Who a client is, for the per-client cap: an IPv4 address, or the /64
/// network of an IPv6 address (one host is usually given a whole /64, so
/// counting its addresses one by one would cap nothing). Unknown (a router
/// driven without a socket) is one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(Option<IpAddr>);

impl Client {
    pub fn of(address: Option<IpAddr>) -> Self {
        Self(address.map(|address| match address {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(network))
                }
            },
        }))
    }
}

/// The open streams, in all and per client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStreams {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total: Arc<Semaphore>,
    max: usize,
    max_per_client: usize,
    /// Open streams per client; a client with none has no entry, so the map
    /// holds at most `max` entries.
    per_client: Mutex<HashMap<Client, usize>>,
}

impl EventStreams {
    pub fn new(max: usize, max_per_client: usize) -> Self {
        metrics::gauge!(OPEN_STREAMS).set(0.0);
        Self {
            inner: Arc::new(Inner {
                total: Arc::new(Semaphore::new(max)),
                max,
                max_per_client,
                per_client: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A place for a new stream of `client`, held until the slot is dropped.
    pub fn open(&self, client: Client) -> Result<StreamSlot, StreamRefusal> {
        let mut per_client = self.inner.lock();
        let held = per_client.get(&client).copied().unwrap_or(0);
        if held >= self.inner.max_per_client {
            return Err(StreamRefusal::ClientFull(self.inner.max_per_client));
        }
        let permit = self
            .inner
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| StreamRefusal::Full(self.inner.max))?;
        per_client.insert(client, held + 1);
        drop(per_client);
        self.inner.report();
        Ok(StreamSlot {
            streams: self.inner.clone(),
            client,
            permit: Some(permit),
        })
    }

    /// How many streams are open.
    pub fn open_count(&self) -> usize {
        self.inner.open_count()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<Client, usize>> {
        // Every change is one insert or removal: consistent after a panic.
        self.per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn open_count(&self) -> usize {
        self.max - self.total.available_permits()
    }

    fn report(&self) {
        metrics::gauge!(OPEN_STREAMS).set(self.open_count() as f64);
    }
}

/// One open stream's place; dropping it frees the place.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Inner>,
    client: Client,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        {
            let mut per_client = self.streams.lock();
            match per_client.get_mut(&self.client) {
                Some(held) if *held > 1 => *held -= 1,
                _ => {
                    per_client.remove(&self.client);
                }
            }
        }
        // The permit goes back before the gauge is read.
        drop(self.permit.take());
        self.streams.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        Client::of(Some(address.parse().unwrap()))
    }

    #[test]
    fn streams_are_capped_in_all_and_per_client_and_freed_when_dropped() {
        let streams = EventStreams::new(3, 2);
        let a1 = streams.open(client("10.0.0.1")).unwrap();
        let _a2 = streams.open(client("10.0.0.1")).unwrap();
        assert_eq!(
            streams.open(client("10.0.0.1")).unwrap_err(),
            StreamRefusal::ClientFull(2)
        );
        let _b1 = streams.open(client("10.0.0.2")).unwrap();
        assert_eq!(
            streams.open(client("10.0.0.3")).unwrap_err(),
            StreamRefusal::Full(3)
        );
        assert_eq!(streams.open_count(), 3);
        drop(a1);
        assert_eq!(streams.open_count(), 2);
        let _a3 = streams.open(client("10.0.0.1")).unwrap();
        assert!(streams.inner.lock().len() <= 3);
    }

    #[test]
    fn an_ipv6_client_is_its_64_network_and_a_mapped_ipv4_is_the_ipv4() {
        assert_eq!(client("2001:db8:1:2::1"), client("2001:db8:1:2:ffff::9"));
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        assert_eq!(client("::ffff:10.0.0.1"), client("10.0.0.1"));
    }
}
