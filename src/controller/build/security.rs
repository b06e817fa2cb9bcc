//! The restricted Pod Security profile: defaults for every container and the pod, user
//! settings (spec.container.securityContext / podSecurityContext) merged over them where
//! the profile allows, a clear error where it does not, and a checker of a whole pod spec
//! (used after building, and by the tests).
//!
//! `runAsUser` is never forced on the `mcp` container: images pick their own non-root
//! uid (the examples set one at pod level). The operator's own containers run as 65532.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext, Volume,
};

use super::BuildError;

/// The uid (and gid) of the operator's own containers (gateway, install-bridge).
pub const OPERATOR_UID: i64 = 65532;

/// The only capability the restricted profile lets a container add.
const ALLOWED_CAPABILITY: &str = "NET_BIND_SERVICE";

/// Sysctls the baseline profile allows (Kubernetes' "safe" set).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types the baseline profile allows (empty = the runtime's default).
const ALLOWED_SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume types the restricted profile allows.
const ALLOWED_VOLUME_TYPES: &str =
    "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret";

const POD_FIELD: &str = "spec.container.podSecurityContext";
const CONTAINER_FIELD: &str = "spec.container.securityContext";

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// The pod security context: runAsNonRoot and seccomp RuntimeDefault, with the user's
/// settings (uids, fsGroup, supplemental groups, a Localhost seccomp profile…) on top.
pub fn pod_security_context(
    user: Option<&PodSecurityContext>,
) -> Result<PodSecurityContext, BuildError> {
    let mut out = user.cloned().unwrap_or_default();
    if out.run_as_user == Some(0) {
        return Err(BuildError::pod_security(
            format!("{POD_FIELD}.runAsUser"),
            "0 (root) is not allowed; use the image's non-root uid, e.g. 1000 or 65532",
        ));
    }
    if out.run_as_non_root == Some(false) {
        return Err(BuildError::pod_security(
            format!("{POD_FIELD}.runAsNonRoot"),
            "false is not allowed",
        ));
    }
    out.run_as_non_root = Some(true);
    check_seccomp(out.seccomp_profile.as_ref(), POD_FIELD)?;
    if out.seccomp_profile.is_none() {
        out.seccomp_profile = Some(runtime_default());
    }
    if let Some(p) = &out.app_armor_profile
        && p.type_ == "Unconfined"
    {
        return Err(BuildError::pod_security(
            format!("{POD_FIELD}.appArmorProfile.type"),
            "Unconfined is not allowed",
        ));
    }
    if let Some(o) = &out.se_linux_options {
        check_selinux(o, POD_FIELD)?;
    }
    for s in out.sysctls.iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            return Err(BuildError::pod_security(
                format!("{POD_FIELD}.sysctls"),
                format!("{} is not a safe sysctl", s.name),
            ));
        }
    }
    if out
        .windows_options
        .as_ref()
        .and_then(|w| w.host_process)
        .unwrap_or(false)
    {
        return Err(BuildError::pod_security(
            format!("{POD_FIELD}.windowsOptions.hostProcess"),
            "true is not allowed",
        ));
    }
    Ok(out)
}

/// The `mcp` container's security context: no privilege escalation, every capability
/// dropped, non-root, read-only root filesystem (overridable), with the user's settings on
/// top where the profile allows them.
pub fn server_security_context(
    user: Option<&SecurityContext>,
) -> Result<SecurityContext, BuildError> {
    let mut out = user.cloned().unwrap_or_default();
    let field = |f: &str| format!("{CONTAINER_FIELD}.{f}");
    if out.privileged == Some(true) {
        return Err(BuildError::pod_security(
            field("privileged"),
            "privileged containers are not allowed",
        ));
    }
    if out.allow_privilege_escalation == Some(true) {
        return Err(BuildError::pod_security(
            field("allowPrivilegeEscalation"),
            "true is not allowed",
        ));
    }
    if out.run_as_user == Some(0) {
        return Err(BuildError::pod_security(
            field("runAsUser"),
            "0 (root) is not allowed; use the image's non-root uid, e.g. 1000 or 65532",
        ));
    }
    if out.run_as_non_root == Some(false) {
        return Err(BuildError::pod_security(
            field("runAsNonRoot"),
            "false is not allowed",
        ));
    }
    if let Some(m) = &out.proc_mount
        && m != "Default"
    {
        return Err(BuildError::pod_security(
            field("procMount"),
            format!("{m} is not allowed (only Default)"),
        ));
    }
    check_seccomp(out.seccomp_profile.as_ref(), CONTAINER_FIELD)?;
    if let Some(p) = &out.app_armor_profile
        && p.type_ == "Unconfined"
    {
        return Err(BuildError::pod_security(
            field("appArmorProfile.type"),
            "Unconfined is not allowed",
        ));
    }
    if let Some(o) = &out.se_linux_options {
        check_selinux(o, CONTAINER_FIELD)?;
    }
    if out
        .windows_options
        .as_ref()
        .and_then(|w| w.host_process)
        .unwrap_or(false)
    {
        return Err(BuildError::pod_security(
            field("windowsOptions.hostProcess"),
            "true is not allowed",
        ));
    }
    let caps = out.capabilities.take().unwrap_or_default();
    let add = caps.add.unwrap_or_default();
    if let Some(bad) = add.iter().find(|c| !is_allowed_capability(c)) {
        return Err(BuildError::pod_security(
            field("capabilities.add"),
            format!("{bad} is not allowed (only {ALLOWED_CAPABILITY})"),
        ));
    }
    let mut drop = vec!["ALL".to_owned()];
    drop.extend(
        caps.drop
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !c.eq_ignore_ascii_case("ALL")),
    );
    out.capabilities = Some(Capabilities {
        add: (!add.is_empty()).then_some(add),
        drop: Some(drop),
    });
    out.allow_privilege_escalation = Some(false);
    out.privileged = None;
    out.run_as_non_root = Some(true);
    out.read_only_root_filesystem.get_or_insert(true);
    Ok(out)
}

/// The security context of the operator's own containers (gateway, install-bridge).
pub fn operator_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".into()]),
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(OPERATOR_UID),
        run_as_group: Some(OPERATOR_UID),
        ..SecurityContext::default()
    }
}

/// The user's volumes must be of a type the restricted profile allows.
pub fn check_volumes(volumes: &[Volume]) -> Result<(), BuildError> {
    for (i, v) in volumes.iter().enumerate() {
        if let Some(kind) = disallowed_volume_type(v) {
            return Err(BuildError::pod_security(
                format!("spec.container.volumes[{i}] ({})", v.name),
                format!("{kind} volumes are not allowed (only {ALLOWED_VOLUME_TYPES})"),
            ));
        }
    }
    Ok(())
}

fn is_allowed_capability(c: &str) -> bool {
    c == ALLOWED_CAPABILITY || c == "CAP_NET_BIND_SERVICE"
}

fn check_seccomp(profile: Option<&SeccompProfile>, at: &str) -> Result<(), BuildError> {
    match profile.map(|p| p.type_.as_str()) {
        None | Some("RuntimeDefault") | Some("Localhost") => Ok(()),
        Some(other) => Err(BuildError::pod_security(
            format!("{at}.seccompProfile.type"),
            format!("{other} is not allowed (RuntimeDefault or Localhost)"),
        )),
    }
}

fn check_selinux(
    o: &k8s_openapi::api::core::v1::SELinuxOptions,
    at: &str,
) -> Result<(), BuildError> {
    let type_ = o.type_.as_deref().unwrap_or("");
    if !ALLOWED_SELINUX_TYPES.contains(&type_) {
        return Err(BuildError::pod_security(
            format!("{at}.seLinuxOptions.type"),
            format!("{type_} is not allowed"),
        ));
    }
    if o.user.as_deref().is_some_and(|u| !u.is_empty())
        || o.role.as_deref().is_some_and(|r| !r.is_empty())
    {
        return Err(BuildError::pod_security(
            format!("{at}.seLinuxOptions"),
            "user and role may not be set",
        ));
    }
    Ok(())
}

fn disallowed_volume_type(v: &Volume) -> Option<&'static str> {
    let allowed = v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some();
    if allowed {
        return None;
    }
    Some(if v.host_path.is_some() {
        "hostPath"
    } else if v.nfs.is_some() {
        "nfs"
    } else {
        "this type of"
    })
}

/// Checks a pod spec against the restricted Pod Security profile, the way the
/// `restricted` admission level does (container settings override the pod's). Returns
/// every problem found.
pub fn check_restricted(pod: &PodSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        problems.push("host namespaces are not allowed".to_owned());
    }
    for v in pod.volumes.iter().flatten() {
        if let Some(kind) = disallowed_volume_type(v) {
            problems.push(format!("volume {}: {kind} volumes are not allowed", v.name));
        }
    }
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    if pod_sc.run_as_user == Some(0) {
        problems.push("pod runAsUser is 0".to_owned());
    }
    let pod_seccomp_ok = pod_sc
        .seccomp_profile
        .as_ref()
        .is_some_and(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost");
    let containers = pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter());
    for c in containers {
        check_container(c, &pod_sc, pod_seccomp_ok, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn check_container(
    c: &Container,
    pod_sc: &PodSecurityContext,
    pod_seccomp_ok: bool,
    problems: &mut Vec<String>,
) {
    let name = &c.name;
    let sc = c.security_context.clone().unwrap_or_default();
    let mut problem = |p: &str| problems.push(format!("container {name}: {p}"));
    if sc.privileged == Some(true) {
        problem("privileged");
    }
    if sc.allow_privilege_escalation != Some(false) {
        problem("allowPrivilegeEscalation must be false");
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.drop.iter().flatten().any(|d| d == "ALL") {
        problem("capabilities must drop ALL");
    }
    if caps.add.iter().flatten().any(|a| !is_allowed_capability(a)) {
        problem("capabilities.add may only hold NET_BIND_SERVICE");
    }
    if sc.run_as_non_root.or(pod_sc.run_as_non_root) != Some(true) {
        problem("runAsNonRoot must be true");
    }
    if sc.run_as_user == Some(0) {
        problem("runAsUser is 0");
    }
    let seccomp = sc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    match seccomp {
        Some("RuntimeDefault") | Some("Localhost") => {}
        None if pod_seccomp_ok => {}
        _ => problem("seccompProfile must be RuntimeDefault or Localhost"),
    }
    if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
        problem("procMount must be Default");
    }
    if c.ports.iter().flatten().any(|p| p.host_port.is_some()) {
        problem("hostPort is not allowed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(yaml: &str) -> SecurityContext {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn err(r: Result<impl std::fmt::Debug, BuildError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_restricted() {
        let c = server_security_context(None).unwrap();
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.run_as_non_root, Some(true));
        assert_eq!(c.read_only_root_filesystem, Some(true));
        assert_eq!(c.run_as_user, None, "mcp keeps the image's or pod's uid");
        assert_eq!(c.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        let p = pod_security_context(None).unwrap();
        assert_eq!(p.run_as_non_root, Some(true));
        assert_eq!(p.seccomp_profile.unwrap().type_, "RuntimeDefault");
    }

    #[test]
    fn user_settings_override_where_allowed() {
        let c = server_security_context(Some(&sc(
            "{runAsUser: 1000, readOnlyRootFilesystem: false, capabilities: {add: [NET_BIND_SERVICE], drop: [NET_RAW]}}",
        )))
        .unwrap();
        assert_eq!(c.run_as_user, Some(1000));
        assert_eq!(c.read_only_root_filesystem, Some(false));
        let caps = c.capabilities.unwrap();
        assert_eq!(caps.add, Some(vec!["NET_BIND_SERVICE".to_owned()]));
        assert_eq!(
            caps.drop,
            Some(vec!["ALL".to_owned(), "NET_RAW".to_owned()])
        );
        let p: PodSecurityContext =
            serde_yaml::from_str("{runAsUser: 1000, fsGroup: 1000, seccompProfile: {type: Localhost, localhostProfile: p.json}}").unwrap();
        let p = pod_security_context(Some(&p)).unwrap();
        assert_eq!(p.fs_group, Some(1000));
        assert_eq!(p.seccomp_profile.unwrap().type_, "Localhost");
    }

    #[test]
    fn settings_that_break_the_profile_are_refused() {
        let cases = [
            ("{privileged: true}", "securityContext.privileged"),
            ("{runAsUser: 0}", "securityContext.runAsUser"),
            ("{runAsNonRoot: false}", "securityContext.runAsNonRoot"),
            (
                "{allowPrivilegeEscalation: true}",
                "securityContext.allowPrivilegeEscalation",
            ),
            (
                "{capabilities: {add: [SYS_ADMIN]}}",
                "SYS_ADMIN is not allowed",
            ),
            (
                "{seccompProfile: {type: Unconfined}}",
                "seccompProfile.type",
            ),
            ("{procMount: Unmasked}", "procMount"),
        ];
        for (yaml, expected) in cases {
            let e = err(server_security_context(Some(&sc(yaml))));
            assert!(e.contains(expected), "{yaml}: {e}");
            assert!(e.contains("restricted Pod Security profile"), "{e}");
        }
        for (yaml, expected) in [
            ("{runAsUser: 0}", "podSecurityContext.runAsUser"),
            ("{runAsNonRoot: false}", "podSecurityContext.runAsNonRoot"),
            (
                "{seccompProfile: {type: Unconfined}}",
                "podSecurityContext.seccompProfile",
            ),
            (
                "{sysctls: [{name: kernel.msgmax, value: '1'}]}",
                "kernel.msgmax",
            ),
        ] {
            let p: PodSecurityContext = serde_yaml::from_str(yaml).unwrap();
            let e = err(pod_security_context(Some(&p)));
            assert!(e.contains(expected), "{yaml}: {e}");
        }
    }

    #[test]
    fn host_path_volumes_are_refused() {
        let v: Vec<Volume> =
            serde_yaml::from_str("[{name: ok, emptyDir: {}}, {name: host, hostPath: {path: /}}]")
                .unwrap();
        let e = err(check_volumes(&v));
        assert!(
            e.contains("volumes[1] (host)") && e.contains("hostPath"),
            "{e}"
        );
    }

    #[test]
    fn checker_finds_unrestricted_pods() {
        let pod: PodSpec = serde_yaml::from_str(
            "{containers: [{name: a, securityContext: {privileged: true}}], volumes: [{name: h, hostPath: {path: /}}]}",
        )
        .unwrap();
        let problems = check_restricted(&pod).unwrap_err();
        let text = problems.join("\n");
        for want in [
            "container a: privileged",
            "allowPrivilegeEscalation",
            "drop ALL",
            "runAsNonRoot",
            "seccompProfile",
            "volume h",
        ] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
    }
}
