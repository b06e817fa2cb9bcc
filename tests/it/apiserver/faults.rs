//! Fault injection: a kube-runtime `Controller` survives every injected fault without
//! losing an event. The controller under test copies each ConfigMap's `data.v` into the
//! annotation `reconciled`; during a fault window objects are created and pre-existing
//! ones changed, and afterwards every annotation must match its object's data.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use kube::runtime::{Controller, controller::Action, utils::Backoff};
use mcp_operator::apiserver::{FaultKind, FaultRule};

use super::*;
use crate::support::eventually::eventually;

const ANNOTATION: &str = "reconciled";

/// A short constant watch backoff: the default (0.8 s doubling to 30 s) only changes how
/// long recovery takes, and would make each test take seconds.
struct QuickBackoff;

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {}
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(cm: Arc<ConfigMap>, api: Arc<Api<ConfigMap>>) -> Result<Action, ReconcileError> {
    let want = data_version(&cm);
    if annotation(&cm) == Some(want.as_str()) {
        return Ok(Action::await_change());
    }
    let name = cm.metadata.name.clone().unwrap_or_default();
    let patch = json!({"metadata": {"annotations": {ANNOTATION: want}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Api<ConfigMap>>) -> Action {
    Action::requeue(Duration::from_millis(20))
}

fn data_version(cm: &ConfigMap) -> String {
    cm.data
        .as_ref()
        .and_then(|d| d.get("v"))
        .cloned()
        .unwrap_or_default()
}

fn annotation(cm: &ConfigMap) -> Option<&str> {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .map(String::as_str)
}

/// Runs the controller; the counter counts the errors it reports (failed reconciles,
/// watch errors), which shows a fault reached it.
fn spawn_controller(client: Client, errors: Arc<AtomicUsize>) -> tokio::task::JoinHandle<()> {
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .trigger_backoff(QuickBackoff)
        .run(reconcile, error_policy, Arc::new(api))
        .for_each(move |result| {
            if let Err(error) = result {
                tracing::debug!(%error, "controller error");
                errors.fetch_add(1, Ordering::Relaxed);
            }
            async {}
        });
    tokio::spawn(controller)
}

fn config_map(name: &str, version: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": version}}))
        .expect("valid ConfigMap")
}

/// Writes through faults: retries until the server accepts the write. Only the test's
/// own setup uses this; the controller gets no such help.
async fn create_retrying(api: &Api<ConfigMap>, name: &str, version: &str) {
    eventually(
        &format!("the server to accept creating {name}"),
        Duration::from_secs(30),
        async || match api
            .create(&PostParams::default(), &config_map(name, version))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(()),
            Err(error) => {
                tracing::debug!(%error, "create failed, retrying");
                Err(error.to_string())
            }
        },
    )
    .await
}

/// Changes `data.v` with get + replace (verbs get and update, which the controller
/// never uses, so rules aimed at the controller's patches, lists and watches spare it).
async fn update_retrying(api: &Api<ConfigMap>, name: &str, version: &str) {
    eventually(
        &format!("the server to accept updating {name}"),
        Duration::from_secs(30),
        async || match api.get(name).await {
            Ok(mut cm) => {
                cm.data = Some([("v".to_owned(), version.to_owned())].into());
                api.replace(name, &PostParams::default(), &cm)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Err(error) => Err(error.to_string()),
        },
    )
    .await
}

/// Polls (through faults) until every ConfigMap's annotation matches its data and the
/// expected names all exist; panics with what is still unreconciled after 30 s.
async fn wait_all_reconciled(api: &Api<ConfigMap>, expected: &[String]) {
    let mut pending: Vec<String> = expected.to_vec();
    eventually(
        "every ConfigMap reconciled (last seen: the pending ones)",
        Duration::from_secs(30),
        async || {
            // A failed list (a fault) keeps the previous observation.
            if let Ok(list) = api.list(&ListParams::default()).await {
                let done: std::collections::HashSet<String> = list
                    .items
                    .iter()
                    .filter(|cm| annotation(cm) == Some(data_version(cm).as_str()))
                    .filter_map(|cm| cm.metadata.name.clone())
                    .collect();
                pending = expected
                    .iter()
                    .filter(|n| !done.contains(*n))
                    .cloned()
                    .collect();
            }
            if pending.is_empty() {
                Ok(())
            } else {
                Err(pending.clone())
            }
        },
    )
    .await
}

/// The scenario every fault runs through: three reconciled objects, then the fault; six
/// objects created and the first three changed while it is in force (paced so that
/// watch faults fall between them); the rule must have fired `expect_fired` times (or
/// at least once when None); after it is removed every object is reconciled. The
/// controller must have reported errors during the fault, or none when `errors_expected`
/// is false (latency; throttling, which the kube client's retry layer absorbs, is None).
async fn controller_survives(
    rule: FaultRule,
    expect_fired: Option<usize>,
    errors_expected: Option<bool>,
) {
    let (server, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut names: Vec<String> = (0..3).map(|i| format!("before-{i}")).collect();
    for name in &names {
        create_retrying(&api, name, "1").await;
    }
    let errors = Arc::new(AtomicUsize::new(0));
    let controller = spawn_controller(client.clone(), errors.clone());
    wait_all_reconciled(&api, &names).await;
    let errors_before = errors.load(Ordering::Relaxed);

    let id = server.faults().set(rule);
    for i in 0..6 {
        let name = format!("during-{i}");
        create_retrying(&api, &name, "1").await;
        names.push(name);
        if i < 3 {
            update_retrying(&api, &format!("before-{i}"), "2").await;
        }
        // Pacing, not synchronisation: spreads the writes over the fault window.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let wanted = expect_fired.unwrap_or(1);
    eventually(
        &format!("the fault to fire {wanted} times"),
        Duration::from_secs(30),
        async || {
            let fired = server.faults().fired(id);
            if fired >= wanted { Ok(()) } else { Err(fired) }
        },
    )
    .await;
    if let Some(n) = expect_fired {
        assert_eq!(
            server.faults().fired(id),
            n,
            "a Times(n) rule fires n times"
        );
    }
    server.faults().remove(id);
    wait_all_reconciled(&api, &names).await;
    let errors_during = errors.load(Ordering::Relaxed) - errors_before;
    match errors_expected {
        Some(true) => assert!(errors_during > 0, "the fault never reached the controller"),
        Some(false) => assert_eq!(errors_during, 0, "the controller reported errors"),
        None => {}
    }
    let updated = api.get("before-0").await.unwrap();
    assert_eq!(
        annotation(&updated),
        Some("2"),
        "the change made during the fault was seen"
    );
    controller.abort();
}

/// 500 InternalError on the controller's ConfigMap requests (list, watch, patch).
#[tokio::test]
async fn controller_survives_internal_errors() {
    let rule = FaultRule::new(FaultKind::Error500)
        .verbs(["list", "watch", "patch"])
        .resource("configmaps")
        .times(12);
    controller_survives(rule, Some(12), Some(true)).await;
}

/// 429 with Retry-After on the controller's patches, lists and watches.
#[tokio::test]
async fn controller_survives_throttling() {
    let rule = FaultRule::new(FaultKind::TooManyRequests {
        retry_after: Duration::from_secs(1),
    })
    .verbs(["patch", "list", "watch"])
    .resource("configmaps")
    .times(4);
    controller_survives(rule, Some(4), None).await;
}

/// 409 Conflict on writes.
#[tokio::test]
async fn controller_survives_conflicts_on_writes() {
    let rule = FaultRule::new(FaultKind::Conflict)
        .verbs(["patch", "update"])
        .resource("configmaps")
        .every_nth(2);
    controller_survives(rule, None, Some(true)).await;
}

/// Every request slowed down by 150 ms while the objects are created and reconciled.
#[tokio::test]
async fn controller_survives_latency() {
    let rule =
        FaultRule::new(FaultKind::Latency(Duration::from_millis(150))).resource("configmaps");
    controller_survives(rule, None, Some(false)).await;
}

/// Watch connections cut 100 ms after they open, three times: changes made while no
/// watch was open are replayed from the resourceVersion the watcher resumes from. The
/// kube client takes a cut watch for an ended one (no error is reported); that the rule
/// fired three times shows the watcher came back twice after a cut.
#[tokio::test]
async fn controller_survives_dropped_watch_connections() {
    let rule = FaultRule::new(FaultKind::DropWatch {
        after: Duration::from_millis(100),
    })
    .resource("configmaps")
    .times(3);
    controller_survives(rule, Some(3), None).await;
}

/// Watches answered with 410 Gone three times: the watcher relists and catches up.
#[tokio::test]
async fn controller_survives_forced_410_on_watch() {
    let rule = FaultRule::new(FaultKind::WatchGone)
        .resource("configmaps")
        .times(3);
    controller_survives(rule, Some(3), Some(true)).await;
}

/// The 429 answer carries `Retry-After` and the real Status shape; the 500 the real
/// InternalError wording.
#[tokio::test]
async fn injected_errors_have_the_real_status_shape() {
    let (server, client) = start(ApiServerOptions::default()).await;
    server.faults().set(
        FaultRule::new(FaultKind::TooManyRequests {
            retry_after: Duration::from_secs(7),
        })
        .verbs(["get"])
        .times(1),
    );
    let response = raw_get(&format!(
        "{}/api/v1/namespaces/default/configmaps/x",
        server.url()
    ))
    .await;
    assert_eq!(response.0, 429);
    assert_eq!(response.1.as_deref(), Some("7"));
    assert_eq!(response.2["reason"], "TooManyRequests");
    assert_eq!(response.2["details"]["retryAfterSeconds"], 7);

    server
        .faults()
        .set(FaultRule::new(FaultKind::Error500).verbs(["get"]).times(1));
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let status = api_error(api.get("x").await.unwrap_err());
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    assert!(
        status.message.starts_with("Internal error occurred"),
        "{}",
        status.message
    );
    // Both rules are spent: the next get is the real answer.
    let status = api_error(api.get("x").await.unwrap_err());
    assert_eq!(status.code, 404);
}

/// (HTTP code, Retry-After header, body) of a plain HTTP/1.0 GET, without kube's retry
/// layer (which would wait out the Retry-After).
async fn raw_get(url: &str) -> (u16, Option<String>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(url).expect("URL");
    let mut stream = tokio::net::TcpStream::connect((
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(80),
    ))
    .await
    .expect("connect");
    let request = format!("GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n", url.path());
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let retry_after = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    (
        code,
        retry_after,
        serde_json::from_str(body).expect("JSON body"),
    )
}
