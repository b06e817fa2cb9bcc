//! A Deployment's status from its local pods, as the Deployment controller would write
//! it: replicas, updated/ready/available counts, `Available` (MinimumReplicasAvailable /
//! MinimumReplicasUnavailable) and `Progressing` (NewReplicaSetAvailable /
//! ReplicaSetUpdated, or False with ProgressDeadlineExceeded while a container is crash
//! looping: what the operator reports as CrashLooping). Transition times are kept while a
//! condition's status is unchanged, so an unchanged pod set gives an identical status and
//! no write.

use serde_json::{Value, json};

use super::pod::PodStatus;

/// The `status` of a Deployment of `generation` wanting `desired` replicas, whose pods
/// are `pods` (status, running the current template); `previous` is the status now
/// stored (for transition times), `now` an RFC 3339 time.
pub fn deployment_status(
    generation: Option<i64>,
    desired: usize,
    pods: &[(PodStatus, bool)],
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let count = |f: &dyn Fn(&(PodStatus, bool)) -> bool| pods.iter().filter(|p| f(p)).count();
    let ready = count(&|(s, _)| s.ready);
    let updated = count(&|(_, current)| *current);
    let looping = pods.iter().find(|(s, _)| s.crash_looping);
    let available = ready >= desired;
    let (available_reason, available_message) = if available {
        (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        let why = pods
            .iter()
            .find_map(|(s, _)| s.waiting.clone())
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        (
            "MinimumReplicasUnavailable",
            format!("Deployment does not have minimum availability{why}"),
        )
    };
    let progressing = match looping {
        Some((s, _)) => (
            "False",
            "ProgressDeadlineExceeded",
            format!(
                "a container keeps crashing: {}",
                s.waiting.clone().unwrap_or_default()
            ),
        ),
        None if available && updated >= desired => (
            "True",
            "NewReplicaSetAvailable",
            "the pods run on this machine (mcp-operator dev)".to_owned(),
        ),
        None => ("True", "ReplicaSetUpdated", "pods are starting".to_owned()),
    };
    let conditions = vec![
        condition(
            previous,
            "Available",
            if available { "True" } else { "False" },
            available_reason,
            &available_message,
            now,
        ),
        condition(
            previous,
            "Progressing",
            progressing.0,
            progressing.1,
            &progressing.2,
            now,
        ),
    ];
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": n(pods.len()),
        "updatedReplicas": n(updated),
        "readyReplicas": n(ready),
        "availableReplicas": n(ready),
        "unavailableReplicas": n(pods.len().saturating_sub(ready).max(desired.saturating_sub(ready))),
        "conditions": conditions,
    });
    if let Some(map) = status.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    status
}

fn condition(
    previous: Option<&Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let old = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let kept = |field: &str| {
        old.filter(|c| {
            c["status"] == status
                && (field == "lastTransitionTime"
                    || (c["reason"] == reason && c["message"] == message))
        })
        .and_then(|c| c.get(field).and_then(Value::as_str))
        .unwrap_or(now)
        .to_owned()
    };
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": kept("lastTransitionTime"),
        "lastUpdateTime": kept("lastUpdateTime"),
    })
}

/// Whether `new` differs from `old` in anything a reader cares about.
pub fn changed(old: Option<&Value>, new: &Value) -> bool {
    old != Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool, looping: bool) -> (PodStatus, bool) {
        (
            PodStatus {
                ready,
                crash_looping: looping,
                waiting: (!ready).then(|| "starting".to_owned()),
                ..PodStatus::default()
            },
            true,
        )
    }

    #[test]
    fn available_when_every_replica_is_ready_and_stable_otherwise() {
        let s = deployment_status(Some(2), 1, &[pod(false, false)], None, "t0");
        assert_eq!(s["availableReplicas"], 0);
        assert_eq!(s["conditions"][0]["status"], "False");
        let ready = deployment_status(Some(2), 1, &[pod(true, false)], Some(&s), "t1");
        assert_eq!(ready["availableReplicas"], 1);
        assert_eq!(ready["readyReplicas"], 1);
        assert_eq!(ready["observedGeneration"], 2);
        assert_eq!(ready["conditions"][0]["reason"], "MinimumReplicasAvailable");
        assert_eq!(ready["conditions"][0]["lastTransitionTime"], "t1");
        let again = deployment_status(Some(2), 1, &[pod(true, false)], Some(&ready), "t2");
        assert!(!changed(Some(&ready), &again), "nothing changed, no write");
        let scaled = deployment_status(Some(3), 0, &[], Some(&ready), "t3");
        assert_eq!(scaled["replicas"], 0);
        assert_eq!(scaled["conditions"][0]["status"], "True");
    }

    #[test]
    fn crash_loops_are_progress_deadline_exceeded() {
        let s = deployment_status(Some(1), 1, &[pod(false, true)], None, "t0");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    }
}
