//! Start-up checks and set-up: the three CRDs must be installed and Established (else a
//! message naming the install command), and the operator's probe token Secret
//! (`mcp-operator-probe-token` in POD_NAMESPACE, random 32 bytes hex) exists.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use sha2::{Digest, Sha256};

use super::{
    error::{Error, is_not_found},
    shared::ProbeToken,
};

/// Name of the Secret holding the probe token.
pub const PROBE_TOKEN_SECRET: &str = "mcp-operator-probe-token";
/// Key of the token in that Secret.
pub const PROBE_TOKEN_KEY: &str = "token";

/// Fails unless every CRD of [`crate::api::crd::all`] is installed and Established.
pub async fn check_crds(client: &Client) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::api::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        let found = match api.get(&name).await {
            Ok(found) => found,
            Err(e) if is_not_found(&e) => {
                return Err(Error::CrdMissing {
                    name,
                    state: "not installed",
                });
            }
            Err(e) => return Err(e.into()),
        };
        let established = found
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if !established {
            return Err(Error::CrdMissing {
                name,
                state: "not Established",
            });
        }
    }
    Ok(())
}

/// Reads the probe token, creating the Secret with a random token when it is missing.
pub async fn ensure_probe_token(client: &Client, namespace: &str) -> Result<ProbeToken, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    loop {
        match api.get(PROBE_TOKEN_SECRET).await {
            Ok(secret) => {
                if let Some(token) = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(PROBE_TOKEN_KEY))
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .filter(|t| !t.is_empty())
                {
                    return Ok(probe_token(token));
                }
                return Err(Error::Controller(format!(
                    "Secret {namespace}/{PROBE_TOKEN_SECRET} has no key {PROBE_TOKEN_KEY}; delete it and the operator creates a new one"
                )));
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let token = random_token();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(PROBE_TOKEN_SECRET.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "mcp-operator".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                PROBE_TOKEN_KEY.to_owned(),
                ByteString(token.clone().into_bytes()),
            )])),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(probe_token(token)),
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn probe_token(token: String) -> ProbeToken {
    let sha256 = hex::encode(Sha256::digest(token.as_bytes()));
    ProbeToken { token, sha256 }
}

/// 32 random bytes as 64 hex characters.
fn random_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    // A v4 UUID has 122 random bits; hash two of them into 32 uniformly mixed bytes.
    hex::encode(Sha256::digest(
        [a.as_bytes().as_slice(), b.as_bytes()].concat(),
    ))
}
