//! Never adopt: who holds each child name an McpServer's reconcile is about to write, and
//! the conflict that stops it. Pure: the reconcile reads every wanted child once
//! (`server::dereference`), [`first_conflict`] decides over what was read, and only
//! then is anything applied — an object of a child's kind and name that does not carry
//! this McpServer's controller ownerReference (matching uid) is left untouched and no
//! child at all is written (`Accepted=False`, reason [`ChildConflict::REASON`]).
//! Deleting ([`may_delete`]) has the same rule. [`server_for_child`] maps any object of a
//! child kind back to the McpServer whose child name it has, so a conflicting object
//! changing or going away re-reconciles that server at once.

use serde_json::Value;

/// Who holds a child name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nothing of that kind and name exists.
    Absent,
    /// It names the McpServer (by uid) as its controller.
    Ours,
    /// It exists without our controller ownerReference: a user's object, another
    /// McpServer's or McpBinding's child, or a child of an earlier McpServer of the
    /// same name that garbage collection has not removed yet.
    Foreign,
}

/// One child name the reconcile will write, and the stored object of that kind and
/// name (JSON as read), if any.
#[derive(Clone, Debug)]
pub struct ReadChild {
    /// The child's kind (`Service`, `Secret`, …).
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// What the API server holds under that name.
    pub current: Option<Value>,
}

/// A child name held by someone else: nothing is written until it is free.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} \"{name}\" already exists and is not owned by this McpServer{held_by}; rename the McpServer or delete the {kind}"
)]
pub struct ChildConflict {
    /// Kind of the conflicting object.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// ` (its controller is McpBinding "bar")`, or empty when it has no controller.
    held_by: String,
}

impl ChildConflict {
    /// The `Accepted=False` reason and Event reason.
    pub const REASON: &'static str = "ChildConflict";

    /// A conflict over `kind`/`name`, whose stored object is `current`.
    pub fn new(kind: impl Into<String>, name: impl Into<String>, current: &Value) -> Self {
        let held_by = controller_of(current)
            .map(|(k, n)| format!(" (its controller is {} \"{}\")", cut(k), cut(n)))
            .unwrap_or_default();
        Self {
            kind: kind.into(),
            name: name.into(),
            held_by,
        }
    }
}

/// Who holds `current` (None: absent) relative to the McpServer with `uid`.
pub fn holder(current: Option<&Value>, uid: &str) -> Holder {
    let Some(current) = current else {
        return Holder::Absent;
    };
    let ours = !uid.is_empty()
        && owner_refs(current).any(|r| {
            r.get("uid").and_then(Value::as_str) == Some(uid)
                && r.get("controller").and_then(Value::as_bool) == Some(true)
        });
    if ours { Holder::Ours } else { Holder::Foreign }
}

/// The first child (in apply order) whose name is held by someone else.
pub fn first_conflict(uid: &str, children: &[ReadChild]) -> Option<ChildConflict> {
    children
        .iter()
        .find_map(|c| match holder(c.current.as_ref(), uid) {
            Holder::Foreign => c
                .current
                .as_ref()
                .map(|v| ChildConflict::new(c.kind, c.name.clone(), v)),
            Holder::Absent | Holder::Ours => None,
        })
}

/// Whether pruning may delete `current`: only our own child, not already being deleted.
pub fn may_delete(current: &Value, uid: &str) -> bool {
    holder(Some(current), uid) == Holder::Ours
        && current.pointer("/metadata/deletionTimestamp").is_none()
}

/// The name of the McpServer whose child of `kind` would be called `name`: the name
/// itself for Deployment, Service, ServiceAccount and NetworkPolicy, the name without
/// `-gateway` for Secret, Role and RoleBinding (`build::desired` names them so).
pub fn server_for_child<'a>(kind: &str, name: &'a str) -> Option<&'a str> {
    match kind {
        "Secret" | "Role" | "RoleBinding" => name.strip_suffix("-gateway"),
        "Deployment" | "Service" | "ServiceAccount" | "NetworkPolicy" => Some(name),
        _ => None,
    }
    .filter(|n| !n.is_empty())
}

fn owner_refs(current: &Value) -> impl Iterator<Item = &Value> {
    current
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// (kind, name) of the object's controller ownerReference, if any.
fn controller_of(current: &Value) -> Option<(&str, &str)> {
    owner_refs(current)
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| Some((r.get("kind")?.as_str()?, r.get("name")?.as_str()?)))
}

/// Names from a stored object are at most 253 characters in Kubernetes; cut anything
/// longer so a message stays small whatever the API server returned.
fn cut(s: &str) -> &str {
    match s.char_indices().nth(253) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(refs: Value) -> Value {
        json!({"metadata": {"name": "foo", "ownerReferences": refs}})
    }

    fn owner(kind: &str, name: &str, uid: &str, controller: Option<bool>) -> Value {
        json!({"apiVersion": "mcp-operator.dev/v1alpha1", "kind": kind, "name": name,
               "uid": uid, "controller": controller})
    }

    #[test]
    fn only_our_controller_reference_by_uid_makes_a_child_ours() {
        assert_eq!(holder(None, "u1"), Holder::Absent);
        let user = json!({"metadata": {"name": "foo"}});
        assert_eq!(holder(Some(&user), "u1"), Holder::Foreign);
        let mine = obj(json!([owner("McpServer", "foo", "u1", Some(true))]));
        assert_eq!(holder(Some(&mine), "u1"), Holder::Ours);
        // An earlier McpServer of the same name (another uid) does not make it ours.
        assert_eq!(holder(Some(&mine), "u2"), Holder::Foreign);
        // Our uid without controller=true is not ours: we never write such a reference.
        for c in [None, Some(false)] {
            let weak = obj(json!([owner("McpServer", "foo", "u1", c)]));
            assert_eq!(holder(Some(&weak), "u1"), Holder::Foreign);
        }
        // Another controller next to a plain reference to us.
        let binding = obj(json!([
            owner("McpServer", "foo", "u1", None),
            owner("McpBinding", "bar", "b1", Some(true))
        ]));
        assert_eq!(holder(Some(&binding), "u1"), Holder::Foreign);
        // A server without uid owns nothing.
        assert_eq!(holder(Some(&mine), ""), Holder::Foreign);
    }

    #[test]
    fn the_first_foreign_child_is_the_conflict_and_names_kind_name_and_holder() {
        let ours = obj(json!([owner("McpServer", "bar", "u1", Some(true))]));
        let binding = obj(json!([owner("McpBinding", "bar", "b1", Some(true))]));
        let user = json!({"metadata": {"name": "bar"}});
        let read = |kind, name: &str, current: Option<&Value>| ReadChild {
            kind,
            name: name.to_owned(),
            current: current.cloned(),
        };
        let children = [
            read("ServiceAccount", "bar", None),
            read("Role", "bar-gateway", Some(&ours)),
            read("Secret", "bar-gateway", Some(&binding)),
            read("Service", "bar", Some(&user)),
        ];
        let c = first_conflict("u1", &children).expect("conflict");
        assert_eq!(
            (c.kind.as_str(), c.name.as_str()),
            ("Secret", "bar-gateway")
        );
        assert_eq!(
            c.to_string(),
            "Secret \"bar-gateway\" already exists and is not owned by this McpServer (its controller is McpBinding \"bar\"); rename the McpServer or delete the Secret"
        );
        let c = first_conflict("u1", &children[3..]).unwrap();
        assert_eq!(
            c.to_string(),
            "Service \"bar\" already exists and is not owned by this McpServer; rename the McpServer or delete the Service"
        );
        assert_eq!(first_conflict("u1", &children[..2]), None);
        assert_eq!(first_conflict("u1", &[]), None);
    }

    #[test]
    fn pruning_deletes_only_our_children_not_yet_being_deleted() {
        let mine = obj(json!([owner("McpServer", "foo", "u1", Some(true))]));
        assert!(may_delete(&mine, "u1"));
        assert!(!may_delete(&mine, "u2"));
        assert!(!may_delete(&json!({"metadata": {"name": "foo"}}), "u1"));
        let weak = obj(json!([owner("McpServer", "foo", "u1", None)]));
        assert!(!may_delete(&weak, "u1"));
        let mut going = mine.clone();
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!may_delete(&going, "u1"));
    }

    #[test]
    fn child_names_map_back_to_their_server() {
        assert_eq!(server_for_child("Secret", "bar-gateway"), Some("bar"));
        assert_eq!(server_for_child("RoleBinding", "bar-gateway"), Some("bar"));
        assert_eq!(server_for_child("Role", "bar"), None);
        assert_eq!(server_for_child("Secret", "-gateway"), None);
        assert_eq!(server_for_child("Deployment", "bar"), Some("bar"));
        assert_eq!(
            server_for_child("NetworkPolicy", "x-gateway"),
            Some("x-gateway")
        );
        assert_eq!(server_for_child("ConfigMap", "bar"), None);
    }

    #[test]
    fn a_hostile_owner_name_is_cut() {
        let long = "x".repeat(10_000);
        let v = obj(json!([owner("McpBinding", &long, "b", Some(true))]));
        let c = ChildConflict::new("Secret", "s", &v);
        assert!(c.to_string().len() < 500, "{}", c.to_string().len());
    }
}
