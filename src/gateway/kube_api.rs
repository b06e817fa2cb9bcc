//! The gateway's optional Kubernetes API access (Events about its server, TokenReview for
//! ServiceAccount tokens). Used when a configuration can be found: `--kubeconfig` (or
//! `KUBECONFIG`), else the in-cluster one (the projected token at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, re-read as kubelet rotates it).
//! A developer's `~/.kube/config` is deliberately not picked up implicitly: a gateway on a
//! laptop should not start writing Events to whatever cluster is current. Without a
//! configuration the gateway logs it once and runs as before (denials only in metrics,
//! ServiceAccount tokens refused like any unknown token).

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Whether to use the Kubernetes API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeApiMode {
    /// When a kubeconfig is given or the gateway runs in a pod.
    #[default]
    #[value(name = "auto")]
    Auto,
    /// Never (no Events, no ServiceAccount tokens).
    #[value(name = "off")]
    Off,
}

/// The client, or None (logged once, with the reason).
pub async fn connect(mode: KubeApiMode, kubeconfig: Option<&PathBuf>) -> Option<kube::Client> {
    if mode == KubeApiMode::Off {
        tracing::info!(
            "Kubernetes API disabled (--kube-api off): denials are counted in metrics only and ServiceAccount tokens are not accepted"
        );
        return None;
    }
    let config = match kubeconfig {
        Some(path) => match Kubeconfig::read_from(path) {
            Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            kube::Config::incluster().map_err(|e| e.to_string())
        }
        None => {
            tracing::info!(
                "no Kubernetes API configuration (not in a pod, no --kubeconfig): denials are counted in metrics only and ServiceAccount tokens are not accepted"
            );
            return None;
        }
    };
    match config.and_then(|c| kube::Client::try_from(c).map_err(|e| e.to_string())) {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::warn!(%error, "cannot configure the Kubernetes API client: denials are counted in metrics only and ServiceAccount tokens are not accepted");
            None
        }
    }
}
