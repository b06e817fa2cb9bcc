//! Leader election with a Lease (kube-lease-manager). Only the holder reconciles and
//! writes; the moment the Lease is lost the shared write flag drops, so in-flight
//! reconciles fail their next write instead of racing the new leader.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};

use super::error::Error;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Namespace of the Lease (POD_NAMESPACE).
    pub namespace: String,
    /// Holder identity (POD_NAME).
    pub identity: String,
    /// Seconds the Lease is valid after its last renewal.
    pub duration_secs: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_secs: u64,
}

impl LeaseSettings {
    /// Defaults: Lease `mcp-operator-leader`, 15 s, renewed 5 s before expiry.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: "mcp-operator-leader".to_owned(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration_secs: 15,
            grace_secs: 5,
        }
    }
}

/// A running election: `is_leader` follows the Lease; dropping `changes` releases it.
pub struct Election {
    /// Leadership changes (true = holds the Lease).
    pub changes: watch::Receiver<bool>,
    /// The lease manager's task (ends after the receiver is dropped, having released).
    pub task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Starts competing for the Lease.
pub async fn start(client: Client, settings: &LeaseSettings) -> Result<Election, Error> {
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration_secs)
        .with_grace(settings.grace_secs)
        .build()
        .await?;
    let (changes, task) = manager.watch().await;
    Ok(Election { changes, task })
}

/// Keeps `flag` equal to the leadership state as soon as a change arrives; returns when
/// the election ends.
pub fn mirror(mut changes: watch::Receiver<bool>, flag: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            flag.store(*changes.borrow_and_update(), Ordering::Release);
            if changes.changed().await.is_err() {
                flag.store(false, Ordering::Release);
                return;
            }
        }
    })
}
