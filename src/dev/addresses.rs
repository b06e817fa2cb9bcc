//! Loopback addresses for Services and pods. Every Service gets its own `127.0.x.y`, so
//! the gateways and bridges of different servers can all use their usual ports on one
//! machine. The address is derived from `namespace/name` (SHA-256, then the next free
//! one on a collision) and kept for the rest of the session: the URL is known before the
//! pod runs and never moves while the server exists.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    sync::Mutex,
};

use sha2::{Digest, Sha256};

use crate::controller::shared::ServiceResolver;

/// Addresses 127.0.1.1 ..= 127.0.254.254 (x and y in 1..=254): 64,516 of them.
const SPAN: u32 = 254 * 254;

/// The session's address book: Service (or pod) key → address.
#[derive(Default)]
pub struct LoopbackAddresses {
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    by_key: BTreeMap<String, Ipv4Addr>,
    taken: BTreeSet<Ipv4Addr>,
}

impl LoopbackAddresses {
    /// The address of Service `namespace/name`, allocated on first use.
    pub fn service(&self, namespace: &str, name: &str) -> Ipv4Addr {
        self.get(&format!("svc/{namespace}/{name}"))
    }

    /// The address of a pod that no Service selects, or of a replica after the first
    /// (the Service's address belongs to replica 0).
    pub fn pod(&self, namespace: &str, deployment: &str, replica: usize) -> Ipv4Addr {
        self.get(&format!("pod/{namespace}/{deployment}/{replica}"))
    }

    fn get(&self, key: &str) -> Ipv4Addr {
        let mut book = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ip) = book.by_key.get(key) {
            return *ip;
        }
        let start = preferred(key);
        let ip = (0..SPAN)
            .map(|i| nth((start + i) % SPAN))
            .find(|ip| !book.taken.contains(ip))
            .expect("fewer Services than loopback addresses");
        book.taken.insert(ip);
        book.by_key.insert(key.to_owned(), ip);
        ip
    }
}

impl ServiceResolver for LoopbackAddresses {
    fn resolve(&self, namespace: &str, name: &str) -> Option<IpAddr> {
        Some(IpAddr::V4(self.service(namespace, name)))
    }
}

/// Index of the address `key` gets unless it is taken.
fn preferred(key: &str) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SPAN
}

/// The `i`-th address of the range.
fn nth(i: u32) -> Ipv4Addr {
    // Both values are below 255 by construction.
    let x = u8::try_from(1 + i / 254).unwrap_or(254);
    let y = u8::try_from(1 + i % 254).unwrap_or(254);
    Ipv4Addr::new(127, 0, x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_stable_distinct_and_in_range() {
        let book = LoopbackAddresses::default();
        let a = book.service("agents", "memory");
        assert_eq!(book.service("agents", "memory"), a, "stable");
        let again = LoopbackAddresses::default();
        assert_eq!(again.service("agents", "memory"), a, "deterministic");
        let mut seen = BTreeSet::new();
        for i in 0..2000 {
            let ip = book.service("ns", &format!("s{i}"));
            let [a, b, x, y] = ip.octets();
            assert_eq!((a, b), (127, 0));
            assert!((1..=254).contains(&x) && (1..=254).contains(&y), "{ip}");
            assert!(seen.insert(ip), "{ip} given twice");
        }
        assert_ne!(book.pod("agents", "memory", 1), a);
    }

    #[test]
    fn collisions_take_the_next_free_address() {
        let book = LoopbackAddresses::default();
        let first = book.get("k");
        // A key whose preferred slot is taken still gets a distinct address.
        book.inner.lock().unwrap().by_key.remove("k");
        let second = book.get("k");
        assert_ne!(first, second);
        assert_eq!(nth(0), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(nth(SPAN - 1), Ipv4Addr::new(127, 0, 254, 254));
    }
}
