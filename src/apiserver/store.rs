//! The in-memory object store: objects keyed by (group, version, resource, namespace,
//! name), one global resourceVersion counter (as etcd's revision), and a bounded history
//! of change events that watches replay from. A watch asking for a revision older than
//! the history holds gets 410 Gone, as from a compacted etcd.

use std::{
    collections::{BTreeMap, VecDeque},
    ops::Bound,
    sync::Arc,
};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{events, resources::ResourceType};

/// Where an object is stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `name` in `namespace` for type `rt`.
    /// events.k8s.io Events are keyed as the core Events they are stored as.
    pub fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        let (group, version) = events::storage_of(rt);
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    /// Whether this key belongs to type `rt`.
    pub fn is_of(&self, rt: &ResourceType) -> bool {
        let (group, version) = events::storage_of(rt);
        self.group == group && self.version == version && self.resource == rt.plural
    }
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Clone, Debug)]
pub struct Change {
    /// resourceVersion of the change.
    pub revision: u64,
    /// The object's key.
    pub key: ObjectKey,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (the last state, for deletions).
    pub object: Value,
    /// The object before the change (for selector transitions).
    pub old: Option<Value>,
}

/// The store. Callers hold the server's lock around every read-modify-write.
pub struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Highest revision dropped from the history: watches from before it get 410.
    compacted: u64,
    changes: broadcast::Sender<Arc<Change>>,
}

impl Store {
    /// An empty store keeping the last `history_limit` changes for watches.
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(history_limit.max(16));
        Self {
            objects: BTreeMap::new(),
            revision: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            changes,
        }
    }

    /// The current global resourceVersion.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The highest revision no longer replayable.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The stored object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of type `rt`, in one namespace or (None) all, ordered by namespace and name.
    pub fn list<'a>(
        &'a self,
        rt: &'a ResourceType,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let start = ObjectKey::new(rt, namespace.unwrap_or_default(), "");
        self.objects.range(start..).take_while(move |(k, _)| {
            k.is_of(rt) && namespace.is_none_or(|ns| k.namespace == ns || !rt.namespaced)
        })
    }

    /// Objects of type `rt` (as [`Store::list`]) that come after `after` (namespace,
    /// name) in list order: where a paged list continues.
    pub fn list_after<'a>(
        &'a self,
        rt: &'a ResourceType,
        namespace: Option<&'a str>,
        after: (&str, &str),
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let mut start = ObjectKey::new(rt, after.0, after.1);
        start.namespace = after.0.to_owned();
        self.objects
            .range((Bound::Excluded(start), Bound::Unbounded))
            .take_while(move |(k, _)| {
                k.is_of(rt) && namespace.is_none_or(|ns| k.namespace == ns || !rt.namespaced)
            })
    }

    /// Every stored object (for garbage collection).
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }

    /// Stores `object` at `key` with a new resourceVersion; returns what was stored.
    pub fn put(&mut self, key: ObjectKey, mut object: Value) -> Value {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let old = self.objects.insert(key.clone(), object.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            revision: self.revision,
            key,
            kind,
            object: object.clone(),
            old,
        });
        object
    }

    /// Removes the object at `key`; returns its last state (with the deletion's revision).
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let change = Change {
            revision: self.revision,
            key: key.clone(),
            kind: EventType::Deleted,
            object: object.clone(),
            old: None,
        };
        self.record(change);
        Some(object)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        if self.history.len() == self.history_limit
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted = dropped.revision;
        }
        self.history.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// The changes after `revision`, or None when some of them were already dropped.
    /// Subscribe under the same lock so nothing falls between replay and live events.
    pub fn changes_since(&self, revision: u64) -> Option<Vec<Arc<Change>>> {
        if revision < self.compacted {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|c| c.revision > revision)
                .cloned()
                .collect(),
        )
    }

    /// Live changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }
}
