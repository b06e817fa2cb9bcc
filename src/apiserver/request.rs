//! What an HTTP request addresses, in the terms authorization and fault injection use:
//! verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
//! `deletecollection`), API group, resource, subresource, namespace and name. Parsed
//! from the method, path and query the way the real server's `RequestInfoFactory` does,
//! before routing, so the layers around the router need no registry.

use axum::http::{Method, Uri};

/// The attributes of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the path addresses a resource (`/api/v1/...`, `/apis/<g>/<v>/...`) rather
    /// than discovery, `/version` or `/openapi`.
    pub is_resource: bool,
    /// The Kubernetes verb (for non-resource requests, the lowercase HTTP method).
    pub verb: String,
    /// API group, empty for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`), empty for the main resource.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
    /// The request path.
    pub path: String,
}

impl RequestInfo {
    /// The attributes of a request with this method and URI.
    pub fn of(method: &Method, uri: &Uri) -> Self {
        let path = uri.path().to_owned();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            _ => {
                return Self {
                    verb: method.as_str().to_lowercase(),
                    path,
                    ..Self::default()
                };
            }
        };
        let mut parts = rest;
        let mut namespace = "";
        if parts.first() == Some(&"namespaces") && parts.len() > 1 {
            namespace = parts[1];
            // `namespaces/<ns>` and `namespaces/<ns>/status` address the Namespace itself.
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts = &parts[2..];
            }
        }
        let watch = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1"));
        let name = parts.get(1).copied().unwrap_or_default();
        let verb = match (method, name.is_empty()) {
            (&Method::GET, true) if watch => "watch",
            (&Method::GET, true) => "list",
            (&Method::GET, false) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "deletecollection",
            (&Method::DELETE, false) => "delete",
            (other, _) => return Self::unknown_verb(other, path),
        };
        Self {
            is_resource: true,
            verb: verb.to_owned(),
            group: group.to_owned(),
            version: version.to_owned(),
            resource: parts.first().copied().unwrap_or_default().to_owned(),
            subresource: parts.get(2).copied().unwrap_or_default().to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            path,
        }
    }

    fn unknown_verb(method: &Method, path: String) -> Self {
        Self {
            is_resource: true,
            verb: method.as_str().to_lowercase(),
            path,
            ..Self::default()
        }
    }

    /// `configmaps` or `mcpservers/status`, as RBAC rules name resources.
    pub fn resource_with_subresource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, uri: &str) -> RequestInfo {
        RequestInfo::of(&method, &uri.parse().unwrap())
    }

    #[test]
    fn resource_paths_parse_like_the_real_server() {
        let i = info(Method::GET, "/api/v1/namespaces/ns1/configmaps/cm1");
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.namespace.as_str(),
                i.name.as_str()
            ),
            ("get", "configmaps", "ns1", "cm1")
        );
        let i = info(
            Method::GET,
            "/apis/mcp-operator.dev/v1alpha1/mcpservers?watch=true&resourceVersion=5",
        );
        assert_eq!(
            (i.verb.as_str(), i.group.as_str()),
            ("watch", "mcp-operator.dev")
        );
        let i = info(
            Method::PATCH,
            "/apis/mcp-operator.dev/v1alpha1/namespaces/a/mcpservers/x/status",
        );
        assert_eq!(i.resource_with_subresource(), "mcpservers/status");
        let i = info(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "kube-system", "kube-system")
        );
        let i = info(Method::DELETE, "/api/v1/namespaces/a/secrets");
        assert_eq!(i.verb, "deletecollection");
        assert!(!info(Method::GET, "/apis/apps/v1").is_resource);
        assert!(!info(Method::GET, "/openapi/v3").is_resource);
    }
}
