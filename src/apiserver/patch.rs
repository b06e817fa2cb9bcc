//! Non-apply patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Strategic
//! merge patch is accepted and applied as a merge patch (lists are replaced rather than
//! merged by their patch keys), which covers what kubectl label/annotate/scale send.

use serde_json::Value;

use super::error::{ApiResult, ApiServerError};

/// A patch body's type, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json` (applied as a merge patch).
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header value.
    pub fn from_content_type(content_type: &str) -> ApiResult<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiServerError::unsupported_media_type(other)),
        }
    }
}

/// `old` with a merge or JSON patch applied.
pub fn patched(kind: PatchType, old: &Value, body: &[u8]) -> ApiResult<Value> {
    let mut doc = old.clone();
    match kind {
        PatchType::Merge | PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiServerError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiServerError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &patch).map_err(|e| {
                ApiServerError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        PatchType::Apply => {
            return Err(ApiServerError::bad_request(
                "apply patches are handled by server-side apply",
            ));
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_deletes_and_objects_merge() {
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "y"}});
        let new = patched(
            PatchType::Merge,
            &old,
            br#"{"metadata": {"labels": {"a": null, "c": "3"}}}"#,
        )
        .unwrap();
        assert_eq!(new["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(new["data"], json!({"x": "y"}));
    }

    #[test]
    fn json_patch_test_failure_is_refused() {
        let old = json!({"spec": {"replicas": 1}});
        let body = br#"[{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 3}]"#;
        assert!(patched(PatchType::Json, &old, body).is_err());
        let body = br#"[{"op": "replace", "path": "/spec/replicas", "value": 3}]"#;
        assert_eq!(
            patched(PatchType::Json, &old, body).unwrap()["spec"]["replicas"],
            json!(3)
        );
    }
}
