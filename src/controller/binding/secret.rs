//! The binding Secret, pure: `mcp.json` (the standard MCP client configuration, one entry
//! per served server with its URL and the bearer header), `token`, one `<server>.url` per
//! served server, the rotation annotations, labels and the controller ownerReference to
//! the binding. Also who owns an existing Secret of that name: the controller never
//! overwrites a Secret it does not own.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};

use super::token::{self, TokenState};
use crate::{
    api::McpBinding,
    controller::build::labels::{
        INSTANCE_KEY, MANAGED_BY, MANAGED_BY_KEY, NAME_KEY, PART_OF, PART_OF_KEY,
    },
};

/// Type of the binding Secret.
pub const SECRET_TYPE: &str = "mcp-operator.dev/binding";
/// Key of the client configuration.
pub const MCP_JSON_KEY: &str = "mcp.json";
/// Key of the bearer token.
pub const TOKEN_KEY: &str = "token";
/// Value of `app.kubernetes.io/name` on binding Secrets (server children carry
/// `mcp-server`, so a selector for a server's children never matches a binding Secret
/// whose binding has the server's name).
pub const NAME: &str = "mcp-binding";

/// Key of one server's URL.
pub fn url_key(server: &str) -> String {
    format!("{server}.url")
}

/// Labels of the binding Secret.
pub fn labels(binding: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_owned(), MANAGED_BY.to_owned()),
        (INSTANCE_KEY.to_owned(), binding.to_owned()),
        (NAME_KEY.to_owned(), NAME.to_owned()),
        (PART_OF_KEY.to_owned(), PART_OF.to_owned()),
    ])
}

/// `mcp.json`: `{"mcpServers": {"<server>": {"type": "http", "url": …, "headers":
/// {"Authorization": "Bearer <token>"}}}}`, servers in the given order, pretty-printed.
pub fn mcp_json(served: &[(String, String)], token: &str) -> String {
    let servers: Map<String, Value> = served
        .iter()
        .map(|(name, url)| {
            let entry = json!({
                "type": "http",
                "url": url,
                "headers": {"Authorization": format!("Bearer {token}")},
            });
            (name.clone(), entry)
        })
        .collect();
    let doc = json!({"mcpServers": servers});
    serde_json::to_string_pretty(&doc).expect("JSON of strings serializes") + "\n"
}

/// Who holds the Secret name the binding wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// No Secret of that name.
    Absent,
    /// It names this binding (by uid) as its controller.
    Owned,
    /// Someone else's: left alone (SecretConflict).
    Foreign,
}

/// Classifies `existing` against `binding`.
pub fn ownership(binding: &McpBinding, existing: Option<&Secret>) -> Ownership {
    let Some(secret) = existing else {
        return Ownership::Absent;
    };
    let uid = binding.uid().unwrap_or_default();
    let owned = !uid.is_empty()
        && secret
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true));
    if owned {
        Ownership::Owned
    } else {
        Ownership::Foreign
    }
}

/// The controller ownerReference to the binding (None without a uid).
pub fn owner_reference(binding: &McpBinding) -> Option<OwnerReference> {
    let mut owner = binding.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// The desired Secret: `served` is (server, URL) sorted by server, `state` the token.
pub fn desired(
    binding: &McpBinding,
    owner: OwnerReference,
    served: &[(String, String)],
    state: &TokenState,
) -> Secret {
    let mut data = BTreeMap::from([
        (
            MCP_JSON_KEY.to_owned(),
            ByteString(mcp_json(served, &state.token).into_bytes()),
        ),
        (
            TOKEN_KEY.to_owned(),
            ByteString(state.token.clone().into_bytes()),
        ),
    ]);
    for (name, url) in served {
        data.insert(url_key(name), ByteString(url.clone().into_bytes()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(binding.secret_name()),
            namespace: binding.namespace(),
            labels: Some(labels(&binding.name_any())),
            annotations: Some(token::annotations(state)),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The token state stored in an owned Secret (see [`token::from_secret`]).
pub fn stored_token(secret: &Secret, now: k8s_openapi::jiff::Timestamp) -> Option<TokenState> {
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .map(|b| b.0.as_slice());
    token::from_secret(token, secret.annotations(), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn binding() -> McpBinding {
        serde_json::from_value(json!({
            "apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpBinding",
            "metadata": {"name": "agent", "namespace": "agents", "uid": "b-1"},
            "spec": {"servers": [{"name": "memory"}]},
        }))
        .unwrap()
    }

    #[test]
    fn secret_holds_mcp_json_token_and_urls_owned_by_the_binding() {
        let b = binding();
        let state = TokenState {
            token: "t".repeat(64),
            rotated_at: Timestamp::from_second(1_800_000_000).unwrap(),
            previous: None,
        };
        let served = vec![
            (
                "memory".to_owned(),
                "http://memory.agents.svc:8080/mcp".to_owned(),
            ),
            (
                "time".to_owned(),
                "http://time.agents.svc:8080/mcp".to_owned(),
            ),
        ];
        let s = desired(&b, owner_reference(&b).unwrap(), &served, &state);
        assert_eq!(s.metadata.name.as_deref(), Some("agent-mcp"));
        assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("McpBinding", "b-1")
        );
        assert_eq!(owner.controller, Some(true));
        let data = s.data.as_ref().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["mcp.json", "memory.url", "time.url", "token"]);
        let doc: Value = serde_json::from_slice(&data["mcp.json"].0).unwrap();
        assert_eq!(
            doc["mcpServers"]["memory"],
            json!({"type": "http", "url": "http://memory.agents.svc:8080/mcp",
                   "headers": {"Authorization": format!("Bearer {}", state.token)}})
        );
        assert_eq!(data["token"].0, state.token.as_bytes());
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["app.kubernetes.io/name"],
            "mcp-binding"
        );
        assert_eq!(stored_token(&s, Timestamp::now()), Some(state));
    }

    #[test]
    fn ownership_is_by_controller_uid() {
        let b = binding();
        assert_eq!(ownership(&b, None), Ownership::Absent);
        let mut s = Secret::default();
        assert_eq!(ownership(&b, Some(&s)), Ownership::Foreign);
        s.metadata.owner_references = Some(vec![owner_reference(&b).unwrap()]);
        assert_eq!(ownership(&b, Some(&s)), Ownership::Owned);
        s.metadata.owner_references.as_mut().unwrap()[0].uid = "older-incarnation".into();
        assert_eq!(ownership(&b, Some(&s)), Ownership::Foreign);
    }
}
