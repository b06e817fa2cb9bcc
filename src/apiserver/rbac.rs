//! RBAC mode: requests bearing a ServiceAccount token the handle minted (or one issued by
//! TokenRequest for the API server's audience, see `tokens`) are authorized
//! against the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings stored in the
//! server, as the real RBAC authorizer does (verbs, apiGroups, resources with
//! subresources and `*`, resourceNames), and refused with the real 403 `Status`.
//! Requests without a token are the cluster admin, so tests that do not care about RBAC
//! are unaffected; an unknown token is 401. `Impersonate-User` (kubectl `--as`, or the
//! `as:` of [`ApiServerHandle::kubeconfig_for_service_account`], since kubectl sends
//! bearer tokens only over TLS) makes a request act as that user. Non-resource paths (discovery, `/version`,
//! `/openapi`) are open to every authenticated user; `nonResourceURLs` rules and
//! aggregated ClusterRoles are not evaluated.
//!
//! [`ApiServerHandle::kubeconfig_for_service_account`]: super::ApiServerHandle::kubeconfig_for_service_account

use std::sync::Arc;

use axum::{
    extract::{Request, State as AxumState},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{
    credentials::UserInfo, error::ApiServerError, ops::Inner, request::RequestInfo,
    resources::ResourceType, state::State,
};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Who a request is, from its bearer token and impersonation headers.
enum Identity {
    /// No credentials: the cluster admin.
    Admin,
    /// An authenticated (possibly impersonated) user, authorized by RBAC.
    User(UserInfo),
}

/// The middleware: authentication by bearer token or impersonation, then authorization.
pub async fn layer(
    AxumState(state): AxumState<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let identity = match identify(&state, request.headers()) {
        Ok(identity) => identity,
        Err(refusal) => return refusal.into_response(),
    };
    let Identity::User(user) = identity else {
        return next.run(request).await;
    };
    let info = RequestInfo::of(request.method(), request.uri());
    if !info.is_resource {
        return next.run(request).await;
    }
    let decision = authorize(&state.lock(), &user, &info);
    match decision {
        Ok(()) => next.run(request).await,
        Err(reason) => forbidden(&user, &info, &reason).into_response(),
    }
}

fn identify(state: &State, headers: &HeaderMap) -> Result<Identity, ApiServerError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let caller = match token {
        None => Identity::Admin,
        Some(token) => Identity::User(
            state
                .tokens
                .user_of(token)
                .or_else(|| {
                    state
                        .issued
                        .authenticate(|ns, name| state.service_account_uid(ns, name), token)
                })
                .ok_or_else(ApiServerError::unauthorized)?,
        ),
    };
    let Some(target) = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(caller);
    };
    let mut impersonated = impersonated_user(target);
    for group in headers.get_all("impersonate-group") {
        if let Ok(group) = group.to_str() {
            impersonated.groups.push(group.to_owned());
        }
    }
    // The admin may impersonate anyone; a ServiceAccount needs the `impersonate` verb
    // on `users` (or on the impersonated ServiceAccount), as the real filter checks.
    if let Identity::User(caller) = caller
        && caller.name != impersonated.name
    {
        let check = impersonation_check(&impersonated.name);
        authorize(&state.lock(), &caller, &check)
            .map_err(|reason| forbidden(&caller, &check, &reason))?;
    }
    Ok(Identity::User(impersonated))
}

/// The user an `Impersonate-User` value names (ServiceAccounts get their groups).
fn impersonated_user(name: &str) -> UserInfo {
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, account)) => UserInfo::service_account(namespace, account),
        None => UserInfo {
            name: name.to_owned(),
            groups: vec!["system:authenticated".to_owned()],
        },
    }
}

fn impersonation_check(target: &str) -> RequestInfo {
    let (resource, namespace, name) = match target
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, account)) => ("serviceaccounts", namespace, account),
        None => ("users", "", target),
    };
    RequestInfo {
        is_resource: true,
        verb: "impersonate".to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ..RequestInfo::default()
    }
}

/// Allowed, or refused with the RBAC reason (empty unless a binding names a missing role).
pub fn authorize(inner: &Inner, user: &UserInfo, info: &RequestInfo) -> Result<(), String> {
    let mut errors = Vec::new();
    // Cluster-scoped requests have namespace "", where no RoleBinding lives.
    let bindings = bindings(inner, "clusterrolebindings", None).chain(bindings(
        inner,
        "rolebindings",
        Some(info.namespace.as_str()),
    ));
    for binding in bindings {
        let binding_ns = str_at(&binding, "/metadata/namespace");
        let subjects = binding.get("subjects").and_then(Value::as_array);
        if !subjects
            .into_iter()
            .flatten()
            .any(|s| subject_matches(s, user, binding_ns))
        {
            continue;
        }
        match role_rules(inner, &binding, binding_ns) {
            Ok(rules) if rules.iter().any(|r| rule_allows(r, info)) => return Ok(()),
            Ok(_) => {}
            Err(missing) => errors.push(missing),
        }
    }
    Err(match errors.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    })
}

fn rbac_type(inner: &Inner, plural: &str) -> Option<ResourceType> {
    inner.registry.find(RBAC_GROUP, "v1", plural).cloned()
}

fn bindings<'a>(
    inner: &'a Inner,
    plural: &str,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = Value> + 'a {
    let rt = rbac_type(inner, plural);
    let objects: Vec<Value> = rt
        .iter()
        .flat_map(|rt| inner.store.list(rt, namespace).map(|(_, v)| v.clone()))
        .collect();
    objects.into_iter()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `appliesToUser`: a ServiceAccount subject without a namespace means the binding's.
fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = str_at(subject, "/name");
    match str_at(subject, "/kind") {
        "ServiceAccount" => {
            let ns = Some(str_at(subject, "/namespace"))
                .filter(|ns| !ns.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        _ => false,
    }
}

/// The rules a binding's roleRef grants, or the lister's NotFound message.
fn role_rules(inner: &Inner, binding: &Value, binding_ns: &str) -> Result<Vec<Value>, String> {
    let kind = str_at(binding, "/roleRef/kind");
    let name = str_at(binding, "/roleRef/name");
    let (plural, singular, ns) = match kind {
        "ClusterRole" => ("clusterroles", "clusterrole", ""),
        "Role" if !binding_ns.is_empty() => ("roles", "role", binding_ns),
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    let role = rbac_type(inner, plural).and_then(|rt| inner.get(&rt, ns, name).ok());
    let role = role.ok_or_else(|| format!("{singular}.{RBAC_GROUP} {name:?} not found"))?;
    Ok(role
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn listed<'a>(rule: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    rule.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// `RuleAllows` of the RBAC authorizer for resource requests.
fn rule_allows(rule: &Value, info: &RequestInfo) -> bool {
    let verb = listed(rule, "verbs").any(|v| v == "*" || v == info.verb);
    let group = listed(rule, "apiGroups").any(|g| g == "*" || g == info.group);
    let combined = info.resource_with_subresource();
    let resource = listed(rule, "resources").any(|r| {
        r == "*"
            || r == combined
            || (!info.subresource.is_empty()
                && r.strip_prefix("*/") == Some(info.subresource.as_str()))
    });
    let mut names = listed(rule, "resourceNames").peekable();
    let name = names.peek().is_none() || names.any(|n| n == info.name);
    verb && group && resource && name
}

/// The real server's refusal: `forbiddenMessage` inside `NewForbidden`.
fn forbidden(user: &UserInfo, info: &RequestInfo, reason: &str) -> ApiServerError {
    let resource = info.resource_with_subresource();
    let scope = if info.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", info.namespace)
    };
    let mut why = format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.name, info.verb, info.group
    );
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    ApiServerError::forbidden(&info.group, &info.resource, &info.name, &why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;
    use serde_json::json;

    fn info(method: Method, uri: &str) -> RequestInfo {
        RequestInfo::of(&method, &uri.parse().unwrap())
    }

    #[test]
    fn rules_match_verbs_groups_subresources_and_names() {
        let status = json!({"apiGroups": ["mcp-operator.dev"], "resources": ["mcpservers/status"], "verbs": ["patch"]});
        let patch_status = info(
            Method::PATCH,
            "/apis/mcp-operator.dev/v1alpha1/namespaces/a/mcpservers/x/status",
        );
        let patch_main = info(
            Method::PATCH,
            "/apis/mcp-operator.dev/v1alpha1/namespaces/a/mcpservers/x",
        );
        assert!(rule_allows(&status, &patch_status));
        assert!(!rule_allows(&status, &patch_main));
        let any_status = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(&any_status, &patch_status));
        assert!(!rule_allows(&any_status, &patch_main));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]});
        assert!(rule_allows(
            &named,
            &info(Method::GET, "/api/v1/namespaces/a/configmaps/one")
        ));
        assert!(!rule_allows(
            &named,
            &info(Method::GET, "/api/v1/namespaces/a/configmaps/two")
        ));
        assert!(!rule_allows(
            &named,
            &info(Method::GET, "/api/v1/namespaces/a/configmaps")
        ));
    }

    #[test]
    fn forbidden_message_is_worded_as_the_real_server() {
        let user = UserInfo::service_account("ns", "sa");
        let error = forbidden(
            &user,
            &info(Method::GET, "/api/v1/namespaces/ns/configmaps/x"),
            "",
        );
        assert_eq!(
            error.to_status()["message"],
            r#"configmaps "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get resource "configmaps" in API group "" in the namespace "ns""#
        );
        let error = forbidden(
            &user,
            &info(
                Method::GET,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            ),
            "",
        );
        assert_eq!(
            error.to_status()["message"],
            r#"customresourcedefinitions.apiextensions.k8s.io is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope"#
        );
    }
}
