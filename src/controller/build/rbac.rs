//! The ServiceAccount `<server>` (no automounted token: the gateway gets a projected one)
//! and the Role/RoleBinding `<server>-gateway` letting the gateway record Events about
//! its server (denials, rate-limit trips) in its namespace, and nothing else.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{Target, labels};

/// The ServiceAccount `<server>` (only when the user names none).
pub(crate) fn service_account(target: &Target<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: labels::child_meta(target.name, target),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The Role and RoleBinding `<server>-gateway`, bound to the pod's ServiceAccount.
pub(crate) fn role_and_binding(target: &Target<'_>) -> (Role, RoleBinding) {
    let name = target.gateway_secret_name();
    let events = |group: &str| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec!["events".into()]),
        verbs: vec!["create".into(), "patch".into()],
        ..PolicyRule::default()
    };
    let role = Role {
        metadata: labels::child_meta(name.clone(), target),
        rules: Some(vec![events(""), events("events.k8s.io")]),
    };
    let binding = RoleBinding {
        metadata: labels::child_meta(name.clone(), target),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![Subject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name: target.service_account.clone(),
            namespace: Some(target.namespace.to_owned()),
        }]),
    };
    (role, binding)
}
