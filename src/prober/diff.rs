//! [`InventoryDiff`]: which tools were added, removed or changed (hash differs) between two
//! inventories — the basis of the ToolsChanged event and of pinning. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::inventory::ToolInventory;

/// Tool names that differ between an old and a new tool set, each list sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryDiff {
    /// In the new set only.
    pub added: Vec<String>,
    /// In the old set only.
    pub removed: Vec<String>,
    /// In both, with a different sha256.
    pub changed: Vec<String>,
}

impl InventoryDiff {
    /// The difference between two inventories' kept tools. Past 128 tools (`toolsTruncated`)
    /// only the kept ones are compared; compare `toolsDigest` to notice any change at all.
    pub fn between(old: &ToolInventory, new: &ToolInventory) -> Self {
        Self::from_hashes(
            old.tools
                .iter()
                .map(|t| (t.name.as_str(), t.sha256.as_str())),
            new.tools
                .iter()
                .map(|t| (t.name.as_str(), t.sha256.as_str())),
        )
    }

    /// The difference between two `(name, sha256)` sets, e.g. pins and an inventory.
    pub fn from_hashes<'a>(
        old: impl IntoIterator<Item = (&'a str, &'a str)>,
        new: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let old: BTreeMap<&str, &str> = old.into_iter().collect();
        let new: BTreeMap<&str, &str> = new.into_iter().collect();
        let mut diff = InventoryDiff::default();
        for (name, hash) in &new {
            match old.get(name) {
                None => diff.added.push((*name).to_owned()),
                Some(h) if h != hash => diff.changed.push((*name).to_owned()),
                Some(_) => {}
            }
        }
        diff.removed = old
            .keys()
            .filter(|n| !new.contains_key(*n))
            .map(|n| (*n).to_owned())
            .collect();
        diff
    }

    /// No tool was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::inventory::{ServerCapabilities, ServerInfo};
    use serde_json::json;

    fn inv(tools: &[(&str, &str)]) -> ToolInventory {
        let raw: Vec<_> = tools
            .iter()
            .map(|(n, d)| json!({"name": n, "description": d, "inputSchema": {}}))
            .collect();
        ToolInventory::from_tools(
            ServerInfo::default(),
            ServerCapabilities::default(),
            &raw,
            0,
            0,
        )
    }

    #[test]
    fn added_removed_changed_sorted() {
        let old = inv(&[("b", "1"), ("a", "1"), ("c", "1"), ("d", "1")]);
        let new = inv(&[("e", "1"), ("c", "2"), ("a", "1"), ("f", "1"), ("b", "x")]);
        let d = InventoryDiff::between(&old, &new);
        assert_eq!(d.added, ["e", "f"]);
        assert_eq!(d.removed, ["d"]);
        assert_eq!(d.changed, ["b", "c"]);
        assert!(!d.is_empty());
        assert!(InventoryDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn against_pins() {
        let new = inv(&[("a", "1")]);
        let pin = new.tools[0].sha256.clone();
        let d = InventoryDiff::from_hashes(
            [("a", pin.as_str())],
            new.tools
                .iter()
                .map(|t| (t.name.as_str(), t.sha256.as_str())),
        );
        assert!(d.is_empty());
        let d = InventoryDiff::from_hashes([("a", "deadbeef")], [("a", pin.as_str())]);
        assert_eq!(d.changed, ["a"]);
    }
}
