//! The differential suite of the embedded API server: one script of requests — create,
//! get, list with paging and selectors, watches from a resourceVersion and with initial
//! events and bookmarks, merge/JSON/strategic/apply patches with conflicts and `force`,
//! the status subresource, finalizers, deletion propagation, Table output, error bodies —
//! run against the real kube-apiserver and the embedded server, each in a namespace of its
//! own. Every answer is compared on its status code and the fields clients read (uids,
//! timestamps and resourceVersion values left out, the namespace name replaced). A
//! difference is a bug in ours, fixed in `src/apiserver`, or listed in [`KNOWN`] (and in
//! docs/dev.md, "Test tiers") with the reason it stays.

use std::fmt::Write as _;
use std::time::Duration;

use kube::Client;
use serde_json::{Map, Value, json};

use crate::support::TestCluster;

/// Steps whose difference is known and stays (docs/dev.md, "Test tiers", says why):
/// built-in kinds' field selectors are not validated and built-in kinds have no Table
/// columns; parser messages (malformed JSON, continue tokens, a malformed
/// resourceVersion, which the real server answers with a 500) are our own; deletions
/// complete at once (no `foregroundDeletion`/`orphan` finalizer states, the deleted object
/// rather than a `Status` answers a delete); managed field entries are ordered by time, an
/// Apply manager left owning nothing is dropped; a Table row's embedded object differs; the real server lists a Forbidden cause
/// twice. A step listed here that answers alike fails the test (the list must shrink).
const KNOWN: &[&str] = &[
    "create with a malformed body: 400",
    "list with a bad continue: 400",
    "list unsupported field selector: 400",
    "patch with a malformed body: 400",
    "merge patch by m3 (Update manager)",
    "status apply",
    "get status",
    "table of mcpservers",
    "table of one mcpserver",
    "table of configmaps",
    "add a finalizer while deleting: 422",
    "delete owner-foreground (Foreground)",
    "delete owner-background (Background)",
    "delete owner-orphan (Orphan)",
    "dep-orphan orphaned",
    "watch with a malformed resourceVersion: 400",
];

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// One answer, as compared.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    code: u16,
    body: Value,
}

/// Runs requests against one server, in one namespace, and records the answers.
struct Script {
    client: Client,
    ns: String,
    answers: Vec<(String, Answer)>,
}

impl Script {
    fn path(&self, path: &str) -> String {
        path.replace("{ns}", &self.ns)
    }

    /// Sends one request; returns the raw answer (code, JSON body or the text as a string).
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        accept: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let bytes = match body {
            Some(Value::String(text)) => text.into_bytes(),
            Some(v) => serde_json::to_vec(&v).expect("JSON"),
            None => Vec::new(),
        };
        let request = http::Request::builder()
            .method(method)
            .uri(self.path(path))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(kube::client::Body::from(bytes))
            .expect("request");
        let response = self.client.send(request).await.expect("request sent");
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .expect("body read");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (code, body)
    }

    /// Sends a request and records its answer under `step`, normalized; returns the raw
    /// body.
    async fn step(
        &mut self,
        step: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> Value {
        self.step_accept(step, method, path, content_type, JSON, body)
            .await
    }

    async fn step_accept(
        &mut self,
        step: &str,
        method: &str,
        path: &str,
        content_type: &str,
        accept: &str,
        body: Option<Value>,
    ) -> Value {
        let (code, raw) = self.send(method, path, content_type, accept, body).await;
        let body = normalize(&raw, &self.ns);
        self.answers.push((step.to_owned(), Answer { code, body }));
        raw
    }

    /// Records a value the script computed (e.g. the outcome of a wait).
    fn record(&mut self, step: &str, body: Value) {
        let body = normalize(&body, &self.ns);
        self.answers
            .push((step.to_owned(), Answer { code: 0, body }));
    }

    /// Polls GET `path` until `done(code, body)` or 60 s; records the last answer.
    async fn wait_for(&mut self, step: &str, path: &str, done: impl Fn(u16, &Value) -> bool) {
        let started = tokio::time::Instant::now();
        let mut last = None;
        // Not done after 60 s: the last answer is recorded and the comparison shows it.
        let _ = crate::support::eventually::poll(Duration::from_secs(60), async || {
            let (code, body) = self.send("GET", path, JSON, JSON, None).await;
            let finished = done(code, &body);
            last = Some((code, body));
            finished
        })
        .await;
        let waited = started.elapsed();
        if waited > Duration::from_secs(5) {
            println!("{step}: waited {waited:?} for {}", self.ns);
        }
        let (code, body) = last.expect("at least one answer");
        let body = normalize(&body, &self.ns);
        self.answers.push((step.to_owned(), Answer { code, body }));
    }

    /// A watch of `path` (query included) that the server ends after `seconds`, started
    /// before `then` runs; records the events (type, and the object normalized).
    async fn watch_during<F: Future<Output = ()>>(
        &mut self,
        step: &str,
        path: &str,
        seconds: u32,
        then: impl FnOnce(Client, String) -> F,
    ) {
        let uri = format!("{}&timeoutSeconds={seconds}", self.path(path));
        let request = http::Request::get(uri)
            .header("accept", JSON)
            .body(kube::client::Body::from(Vec::new()))
            .expect("request");
        // The answer's head comes once the server has registered the watch: from then on
        // every change reaches it, so `then` runs after it, not after a guessed delay.
        let response = self.client.send(request).await.expect("watch sent");
        let code = response.status().as_u16();
        let watch = tokio::spawn(async move {
            let bytes = response
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            (code, bytes)
        });
        then(self.client.clone(), self.ns.clone()).await;
        let (code, bytes) = watch.await.expect("watch task");
        let events: Vec<Value> = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| {
                let object = &e["object"];
                json!({
                    "type": e["type"],
                    "kind": object["kind"],
                    "name": object.pointer("/metadata/name"),
                    "labels": object.pointer("/metadata/labels"),
                    "data": object.get("data"),
                    "annotations": object.pointer("/metadata/annotations"),
                    "resourceVersionSet": object.pointer("/metadata/resourceVersion").is_some_and(|v| v != ""),
                })
            })
            .collect();
        let body = normalize(&Value::Array(events), &self.ns);
        self.answers.push((step.to_owned(), Answer { code, body }));
    }
}

/// What clients read of an answer: uids, timestamps, resourceVersion values and managed
/// field times dropped (their presence kept), the namespace name replaced by `<ns>`.
fn normalize(value: &Value, ns: &str) -> Value {
    let mut out = normalize_values(value, ns);
    if out["kind"] == "Table" {
        normalize_table(&mut out);
    }
    out
}

/// A Table as kubectl reads it: column names, types and priorities (not their
/// descriptions), cells (ages as `<age>`: they move with the clock).
fn normalize_table(table: &mut Value) {
    let mut dates = Vec::new();
    if let Some(columns) = table["columnDefinitions"].as_array_mut() {
        for (i, column) in columns.iter_mut().enumerate() {
            if column["type"] == "date" || column["name"] == "Age" {
                dates.push(i);
            }
            if let Some(c) = column.as_object_mut() {
                c.remove("description");
            }
        }
    }
    if let Some(rows) = table["rows"].as_array_mut() {
        for row in rows {
            if let Some(cells) = row["cells"].as_array_mut() {
                for &i in &dates {
                    if let Some(cell) = cells.get_mut(i).filter(|c| !c.is_null()) {
                        *cell = json!("<age>");
                    }
                }
            }
        }
    }
}

fn normalize_values(value: &Value, ns: &str) -> Value {
    match value {
        Value::String(s) => Value::String(mask_uuids(&s.replace(ns, "<ns>"))),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, ns)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = match k.as_str() {
                    "uid" | "creationTimestamp" | "deletionTimestamp" | "time"
                    | "resourceVersion" | "continue" | "selfLink" => {
                        Value::String(if v.as_str().is_some_and(|s| !s.is_empty()) {
                            "<set>".into()
                        } else {
                            "<empty>".into()
                        })
                    }
                    // Who manages what (not the field sets' encoding: see KNOWN).
                    "managedFields" => Value::Array(
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| {
                                json!({"manager": m["manager"], "operation": m["operation"],
                                       "subresource": m.get("subresource"), "apiVersion": m["apiVersion"]})
                            })
                            .collect(),
                    ),
                    // An empty `details` says nothing (the API server sends one with some
                    // errors, none with others).
                    "details" if v.as_object().is_some_and(Map::is_empty) => continue,
                    _ => normalize_values(v, ns),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// `text` with every UUID (`8-4-4-4-12` hex digits, as uids are written) as `<uid>`.
fn mask_uuids(text: &str) -> String {
    let shape = |t: &[u8]| {
        t.len() >= 36
            && t[..36].iter().enumerate().all(|(i, b)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    *b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if shape(&bytes[i..]) {
            out.push_str("<uid>");
            i += 36;
        } else {
            let c = text[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn config_map(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": labels}, "data": data})
}

const CMS: &str = "/api/v1/namespaces/{ns}/configmaps";

fn cm(name: &str) -> String {
    format!("{CMS}/{name}")
}

const SERVERS: &str = "/apis/mcp-operator.dev/v1alpha1/namespaces/{ns}/mcpservers";

/// The script. Every request's answer is recorded; the waits record their outcome.
async fn run(script: &mut Script) {
    let s = script;
    // Create, get, errors.
    s.step(
        "create a",
        "POST",
        CMS,
        JSON,
        Some(config_map(
            "a",
            json!({"app": "x", "tier": "1"}),
            json!({"k": "v"}),
        )),
    )
    .await;
    s.step(
        "create a again: 409 AlreadyExists",
        "POST",
        CMS,
        JSON,
        Some(config_map("a", json!({}), json!({}))),
    )
    .await;
    s.step(
        "create Bad_Name: 422 Invalid",
        "POST",
        CMS,
        JSON,
        Some(config_map("Bad_Name", json!({}), json!({}))),
    )
    .await;
    s.step(
        "create without a name: 422",
        "POST",
        CMS,
        JSON,
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
    )
    .await;
    s.step(
        "create with a malformed body: 400",
        "POST",
        CMS,
        JSON,
        Some(Value::String("{not json".into())),
    )
    .await;
    s.step("get a", "GET", &cm("a"), JSON, None).await;
    s.step(
        "get missing: 404 NotFound",
        "GET",
        &cm("missing"),
        JSON,
        None,
    )
    .await;
    s.step(
        "get unknown resource: 404",
        "GET",
        "/api/v1/namespaces/{ns}/nothings/x",
        JSON,
        None,
    )
    .await;
    for (name, labels) in [
        ("b", json!({"app": "x"})),
        ("c", json!({"app": "y", "tier": "2"})),
        ("d", json!({})),
    ] {
        s.step(
            &format!("create {name}"),
            "POST",
            CMS,
            JSON,
            Some(config_map(name, labels, json!({}))),
        )
        .await;
    }

    // Lists: paging and selectors.
    let page = s
        .step("list limit=2", "GET", &format!("{CMS}?limit=2"), JSON, None)
        .await;
    let token = page
        .pointer("/metadata/continue")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let page2 = s
        .step(
            "list limit=2, continue",
            "GET",
            &format!("{CMS}?limit=2&continue={token}"),
            JSON,
            None,
        )
        .await;
    let token2 = page2
        .pointer("/metadata/continue")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    s.step(
        "list limit=2, last page",
        "GET",
        &format!("{CMS}?limit=2&continue={token2}"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list with a bad continue: 400",
        "GET",
        &format!("{CMS}?limit=2&continue=garbage"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list app=x",
        "GET",
        &format!("{CMS}?labelSelector=app%3Dx"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list app in (x,y),tier",
        "GET",
        &format!("{CMS}?labelSelector=app%20in%20(x%2Cy)%2Ctier"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list !app",
        "GET",
        &format!("{CMS}?labelSelector=!app"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list tier notin (1)",
        "GET",
        &format!("{CMS}?labelSelector=tier%20notin%20(1)"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list bad label selector: 400",
        "GET",
        &format!("{CMS}?labelSelector=app%3D(x"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list metadata.name=b",
        "GET",
        &format!("{CMS}?fieldSelector=metadata.name%3Db"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list metadata.name!=b",
        "GET",
        &format!("{CMS}?fieldSelector=metadata.name!%3Db"),
        JSON,
        None,
    )
    .await;
    s.step(
        "list unsupported field selector: 400",
        "GET",
        &format!("{CMS}?fieldSelector=data.k%3Dv"),
        JSON,
        None,
    )
    .await;

    // Updates and patches.
    let a = s.send("GET", &cm("a"), JSON, JSON, None).await.1;
    let mut stale = a.clone();
    s.step(
        "merge patch a",
        "PATCH",
        &cm("a"),
        MERGE,
        Some(json!({"data": {"k": "v2", "m": "1"}, "metadata": {"labels": {"tier": null}}})),
    )
    .await;
    stale["data"] = json!({"k": "stale"});
    s.step(
        "update with a stale resourceVersion: 409 Conflict",
        "PUT",
        &cm("a"),
        JSON,
        Some(stale),
    )
    .await;
    s.step(
        "update without a resourceVersion",
        "PUT",
        &cm("a"),
        JSON,
        Some(config_map("a", json!({"app": "x"}), json!({"k": "v3"}))),
    )
    .await;
    s.step(
        "update of a missing object: 404",
        "PUT",
        &cm("nope"),
        JSON,
        Some(config_map("nope", json!({}), json!({}))),
    )
    .await;
    s.step(
        "update with another name: 400",
        "PUT",
        &cm("a"),
        JSON,
        Some(config_map("b", json!({}), json!({}))),
    )
    .await;
    s.step("json patch a", "PATCH", &cm("a"), JSON_PATCH, Some(json!([{"op": "add", "path": "/data/j", "value": "1"}, {"op": "replace", "path": "/data/k", "value": "v4"}]))).await;
    s.step(
        "json patch with a failing test: 422",
        "PATCH",
        &cm("a"),
        JSON_PATCH,
        Some(json!([{"op": "test", "path": "/data/k", "value": "wrong"}])),
    )
    .await;
    s.step(
        "json patch removing a missing path",
        "PATCH",
        &cm("a"),
        JSON_PATCH,
        Some(json!([{"op": "remove", "path": "/data/absent"}])),
    )
    .await;
    s.step(
        "strategic merge patch a",
        "PATCH",
        &cm("a"),
        STRATEGIC,
        Some(json!({"data": {"s": "1"}})),
    )
    .await;
    s.step(
        "patch of a missing object: 404",
        "PATCH",
        &cm("nope"),
        MERGE,
        Some(json!({"data": {}})),
    )
    .await;
    s.step(
        "patch with a malformed body: 400",
        "PATCH",
        &cm("a"),
        MERGE,
        Some(Value::String("{".into())),
    )
    .await;
    s.step(
        "patch with an unknown content type: 415",
        "PATCH",
        &cm("a"),
        "text/plain",
        Some(json!({})),
    )
    .await;
    s.step(
        "strategic merge patch on a custom resource: 415",
        "PATCH",
        &format!("{SERVERS}/x"),
        STRATEGIC,
        Some(json!({})),
    )
    .await;

    // Server-side apply: owners, conflicts, force.
    let applied = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    s.step(
        "apply ssa as m1",
        "PATCH",
        &format!("{}?fieldManager=m1", cm("ssa")),
        APPLY,
        Some(applied(json!({"k": "1", "own": "m1"}))),
    )
    .await;
    s.step(
        "apply as m2 on m1's field: 409 Conflict",
        "PATCH",
        &format!("{}?fieldManager=m2", cm("ssa")),
        APPLY,
        Some(applied(json!({"k": "2"}))),
    )
    .await;
    s.step(
        "apply as m2, force",
        "PATCH",
        &format!("{}?fieldManager=m2&force=true", cm("ssa")),
        APPLY,
        Some(applied(json!({"k": "2"}))),
    )
    .await;
    s.step(
        "apply as m1 without k: m1 keeps own",
        "PATCH",
        &format!("{}?fieldManager=m1", cm("ssa")),
        APPLY,
        Some(applied(json!({"own": "m1"}))),
    )
    .await;
    s.step(
        "apply as m2 dropping k: k removed",
        "PATCH",
        &format!("{}?fieldManager=m2", cm("ssa")),
        APPLY,
        Some(applied(json!({}))),
    )
    .await;
    s.step(
        "apply without a fieldManager: 400",
        "PATCH",
        &cm("ssa"),
        APPLY,
        Some(applied(json!({}))),
    )
    .await;
    s.step(
        "apply with force on a non-apply patch: 400",
        "PATCH",
        &format!("{}?force=true", cm("ssa")),
        MERGE,
        Some(json!({})),
    )
    .await;
    s.step(
        "apply with a mismatched name: 400",
        "PATCH",
        &format!("{}?fieldManager=m1", cm("ssa")),
        APPLY,
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}})),
    )
    .await;
    s.step(
        "merge patch by m3 (Update manager)",
        "PATCH",
        &format!("{}?fieldManager=m3", cm("ssa")),
        MERGE,
        Some(json!({"data": {"u": "1"}})),
    )
    .await;

    // Status subresource and generation (a custom resource).
    let server = json!({"apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "srv"},
        "spec": {"transport": "StreamableHttp", "remote": {"url": "https://example.com/mcp"}},
        "status": {"phase": "Ready"}});
    s.step(
        "create srv (status dropped)",
        "POST",
        SERVERS,
        JSON,
        Some(server),
    )
    .await;
    s.step(
        "status patch",
        "PATCH",
        &format!("{SERVERS}/srv/status"),
        MERGE,
        Some(json!({"status": {"phase": "Pending", "toolCount": 3}, "spec": {"replicas": 5}})),
    )
    .await;
    s.step(
        "main patch ignores status",
        "PATCH",
        &format!("{SERVERS}/srv"),
        MERGE,
        Some(json!({"status": {"phase": "Failed"}, "metadata": {"labels": {"l": "1"}}})),
    )
    .await;
    s.step(
        "spec patch bumps generation",
        "PATCH",
        &format!("{SERVERS}/srv"),
        MERGE,
        Some(json!({"spec": {"replicas": 2}})),
    )
    .await;
    s.step("status apply", "PATCH", &format!("{SERVERS}/srv/status?fieldManager=op&force=true"), APPLY, Some(json!({"apiVersion": "mcp-operator.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "srv"}, "status": {"phase": "Ready"}}))).await;
    s.step(
        "get status",
        "GET",
        &format!("{SERVERS}/srv/status"),
        JSON,
        None,
    )
    .await;
    s.step(
        "invalid spec patch: 422",
        "PATCH",
        &format!("{SERVERS}/srv"),
        MERGE,
        Some(json!({"spec": {"replicas": -1}})),
    )
    .await;

    // Table output.
    s.step_accept("table of mcpservers", "GET", SERVERS, JSON, TABLE, None)
        .await;
    s.step_accept(
        "table of one mcpserver",
        "GET",
        &format!("{SERVERS}/srv"),
        JSON,
        TABLE,
        None,
    )
    .await;
    s.step_accept(
        "table of configmaps",
        "GET",
        &format!("{CMS}?labelSelector=app"),
        JSON,
        TABLE,
        None,
    )
    .await;

    // Finalizers.
    let finalized = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fin", "finalizers": ["example.com/hold"]}});
    s.step(
        "create fin with a finalizer",
        "POST",
        CMS,
        JSON,
        Some(finalized),
    )
    .await;
    s.step(
        "delete fin: kept, deletionTimestamp set",
        "DELETE",
        &cm("fin"),
        JSON,
        None,
    )
    .await;
    s.step("get fin while finalizing", "GET", &cm("fin"), JSON, None)
        .await;
    s.step(
        "add a finalizer while deleting: 422",
        "PATCH",
        &cm("fin"),
        MERGE,
        Some(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}})),
    )
    .await;
    s.step(
        "remove the finalizer",
        "PATCH",
        &cm("fin"),
        MERGE,
        Some(json!({"metadata": {"finalizers": null}})),
    )
    .await;
    s.wait_for("fin gone", &cm("fin"), |code, _| code == 404)
        .await;
    s.step("delete missing: 404", "DELETE", &cm("fin"), JSON, None)
        .await;
    s.step("delete with a wrong uid precondition: 409", "DELETE", &cm("b"), JSON, Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}))).await;

    // Deletion propagation.
    for policy in ["Foreground", "Background", "Orphan"] {
        let owner = format!("owner-{}", policy.to_lowercase());
        let dep = format!("dep-{}", policy.to_lowercase());
        let created = s
            .send(
                "POST",
                CMS,
                JSON,
                JSON,
                Some(config_map(&owner, json!({}), json!({}))),
            )
            .await
            .1;
        let uid = created
            .pointer("/metadata/uid")
            .cloned()
            .unwrap_or_default();
        let dependent = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": dep,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid, "blockOwnerDeletion": true}]}});
        s.step(&format!("create {dep}"), "POST", CMS, JSON, Some(dependent))
            .await;
        let options =
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
        s.step(
            &format!("delete {owner} ({policy})"),
            "DELETE",
            &cm(&owner),
            JSON,
            Some(options),
        )
        .await;
        s.wait_for(
            &format!("{owner} gone ({policy})"),
            &cm(&owner),
            |code, _| code == 404,
        )
        .await;
        match policy {
            "Orphan" => {
                s.wait_for(&format!("{dep} orphaned"), &cm(&dep), |code, body| {
                    code == 200 && body.pointer("/metadata/ownerReferences").is_none()
                })
                .await
            }
            _ => {
                s.wait_for(
                    &format!("{dep} collected ({policy})"),
                    &cm(&dep),
                    |code, _| code == 404,
                )
                .await
            }
        }
    }
    s.step(
        "delete with an unknown propagation policy: 400",
        "DELETE",
        &cm("b"),
        JSON,
        Some(
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sometimes"}),
        ),
    )
    .await;

    // Watches.
    let listed = s.send("GET", CMS, JSON, JSON, None).await.1;
    let rv = listed
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    s.watch_during(
        "watch from a resourceVersion, label selector app=w",
        &format!("{CMS}?watch=true&resourceVersion={rv}&labelSelector=app%3Dw"),
        3,
        |client, ns| async move {
            let sc = Script {
                client,
                ns,
                answers: Vec::new(),
            };
            sc.send(
                "POST",
                CMS,
                JSON,
                JSON,
                Some(config_map("w", json!({"app": "w"}), json!({"n": "1"}))),
            )
            .await;
            sc.send(
                "PATCH",
                &cm("w"),
                MERGE,
                JSON,
                Some(json!({"data": {"n": "2"}})),
            )
            .await;
            sc.send(
                "PATCH",
                &cm("w"),
                MERGE,
                JSON,
                Some(json!({"metadata": {"labels": {"app": "gone"}}})),
            )
            .await;
            sc.send(
                "PATCH",
                &cm("w"),
                MERGE,
                JSON,
                Some(json!({"metadata": {"labels": {"app": "w"}}})),
            )
            .await;
            sc.send("DELETE", &cm("w"), JSON, JSON, None).await;
        },
    )
    .await;
    s.watch_during(
        "watch without a resourceVersion: current state first",
        &format!("{CMS}?watch=true&labelSelector=app%3Dx"),
        2,
        |_, _| async {},
    )
    .await;
    s.watch_during(
        "watch with initial events and bookmarks",
        &format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app"),
        2,
        |_, _| async {},
    )
    .await;
    s.step(
        "watch with sendInitialEvents without resourceVersionMatch: 422",
        "GET",
        &format!("{CMS}?watch=true&sendInitialEvents=true&timeoutSeconds=1"),
        JSON,
        None,
    )
    .await;
    s.step(
        "watch with a malformed resourceVersion: 400",
        "GET",
        &format!("{CMS}?watch=true&resourceVersion=abc&timeoutSeconds=1"),
        JSON,
        None,
    )
    .await;
    s.record("done", json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_server_answers_the_script_as_kube_apiserver_does() {
    let real = TestCluster::real_shared("differential").await;
    let embedded = TestCluster::embedded("differential").await;
    // The shipped CRDs on both (the code's may be ahead of crds/ in a work tree).
    for doc in super::documents(&crate::support::repo_path("crds")) {
        crate::support::test_cluster::apply(&embedded.client, &doc.object).await;
    }
    let mut real_script = Script {
        client: real.client.clone(),
        ns: real.ns.clone(),
        answers: Vec::new(),
    };
    let mut embedded_script = Script {
        client: embedded.client.clone(),
        ns: embedded.ns.clone(),
        answers: Vec::new(),
    };
    let (_, _) = tokio::join!(run(&mut real_script), run(&mut embedded_script));
    assert_eq!(real_script.answers.len(), embedded_script.answers.len());
    let mut report = String::new();
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for ((step, want), (_, got)) in real_script.answers.iter().zip(&embedded_script.answers) {
        if want == got {
            if KNOWN.contains(&step.as_str()) {
                stale.push(step.clone());
            }
            continue;
        }
        let known = KNOWN.contains(&step.as_str());
        if !known {
            unexpected.push(step.clone());
        }
        let _ = writeln!(
            report,
            "--- {step}{}\n  real:     {} {}\n  embedded: {} {}",
            if known { " (known)" } else { "" },
            want.code,
            serde_json::to_string(&want.body).unwrap_or_default(),
            got.code,
            serde_json::to_string(&got.body).unwrap_or_default(),
        );
    }
    println!(
        "{} steps, differences:\n{report}",
        real_script.answers.len()
    );
    assert!(
        stale.is_empty(),
        "listed as known but answered alike now (take them off KNOWN): {stale:?}"
    );
    assert!(
        unexpected.is_empty(),
        "the embedded server answers {} steps differently from kube-apiserver:\n{report}",
        unexpected.len()
    );
}
