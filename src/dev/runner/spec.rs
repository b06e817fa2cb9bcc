//! A container of a pod spec → the host process that plays it (pure: no I/O). The
//! command and args, `$(VAR)` references expanded; the environment with `value`,
//! `valueFrom` (Secret, ConfigMap, downward API fields) and `envFrom` resolved; mount
//! paths in the command, args, env values and working directory rewritten to the pod's
//! directories on the host; wildcard and loopback listen addresses (`0.0.0.0`,
//! `127.0.0.1`, `localhost:`) rewritten to the pod's own loopback address. A container
//! of the operator image without a command runs the operator binary (the image's
//! entrypoint); any other image needs a command, since the image itself is never pulled.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use k8s_openapi::api::core::v1::{Container, EnvVar};

/// Secrets and ConfigMaps of the pod's namespace, by name: key → bytes.
pub trait Objects {
    /// Secret `name`'s data (stringData merged), None when it does not exist.
    fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
    /// ConfigMap `name`'s data and binaryData, None when it does not exist.
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
}

/// What a container sees of its pod.
pub struct PodFacts<'a> {
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    pub pod_ip: Ipv4Addr,
    pub service_account: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// Volume name → its directory on the host.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// The operator's image: its containers run `operator_binary`.
    pub operator_image: &'a str,
    pub operator_binary: &'a Path,
}

/// How to start one container's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    /// The container's environment, resolved and rewritten (the host's is added when
    /// spawning).
    pub env: Vec<(String, String)>,
    /// The container's workingDir when it lies on a mounted volume.
    pub working_dir: Option<PathBuf>,
    /// The container mounts a ServiceAccount token: it gets a kubeconfig for the API.
    pub api_access: bool,
}

/// Why a container cannot start (the pod waits, as kubelet's CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Config(String),
    #[error(
        "container {0}: image {1} has no command; `mcp-operator dev` runs commands on the host and never pulls images, so it needs spec.container.command"
    )]
    NoCommand(String, String),
}

/// Resolves container `c` of a pod into a [`ProcessSpec`].
pub fn process_spec(
    c: &Container,
    pod: &PodFacts<'_>,
    objects: &dyn Objects,
    projected_token_volumes: &[String],
) -> Result<ProcessSpec, SpecError> {
    let mounts = mounts(c, pod)?;
    let rewrite = |s: &str| rewrite_paths(&rewrite_addresses(s, pod.pod_ip), &mounts);
    let env = environment(c, pod, objects)?;
    let vars: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand = |s: &String| rewrite(&expand_vars(s, &vars));
    let command: Vec<String> = c.command.iter().flatten().map(expand).collect();
    let args: Vec<String> = c.args.iter().flatten().map(expand).collect();
    let (program, args) = match command.split_first() {
        Some((program, rest)) => (program.clone(), rest.iter().cloned().chain(args).collect()),
        None if c.image.as_deref() == Some(pod.operator_image) => {
            (pod.operator_binary.to_string_lossy().into_owned(), args)
        }
        None => {
            return Err(SpecError::NoCommand(
                c.name.clone(),
                c.image.clone().unwrap_or_default(),
            ));
        }
    };
    let env = env.iter().map(|(k, v)| (k.clone(), rewrite(v))).collect();
    let working_dir = c
        .working_dir
        .as_deref()
        .map(|w| PathBuf::from(rewrite_paths(w, &mounts)))
        .filter(|w| mounts.iter().any(|(_, host)| w.starts_with(host)));
    let api_access = c
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| projected_token_volumes.contains(&m.name));
    Ok(ProcessSpec {
        program,
        args,
        env,
        working_dir,
        api_access,
    })
}

/// (mount path, host path), longest mount path first.
fn mounts(c: &Container, pod: &PodFacts<'_>) -> Result<Vec<(String, String)>, SpecError> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let dir = pod.volumes.get(&m.name).ok_or_else(|| {
            SpecError::Config(format!(
                "container {}: volumeMount {} names no volume",
                c.name, m.name
            ))
        })?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        let path = m.mount_path.trim_end_matches('/').to_owned();
        out.push((path, host.to_string_lossy().into_owned()));
    }
    out.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Ok(out)
}

/// The container's variables in order: envFrom first, then env (later wins).
fn environment(
    c: &Container,
    pod: &PodFacts<'_>,
    objects: &dyn Objects,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, name, optional, kind) = if let Some(r) = &from.secret_ref {
            (objects.secret(&r.name), &r.name, r.optional, "Secret")
        } else if let Some(r) = &from.config_map_ref {
            (
                objects.config_map(&r.name),
                &r.name,
                r.optional,
                "ConfigMap",
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(&mut env, format!("{prefix}{k}"), lossy(&v));
                }
            }
            None if optional == Some(true) => {}
            None => return Err(missing(c, kind, name, None)),
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(v) = env_value(c, e, pod, objects, &env)? {
            set(&mut env, e.name.clone(), v);
        }
    }
    Ok(env)
}

fn env_value(
    c: &Container,
    e: &EnvVar,
    pod: &PodFacts<'_>,
    objects: &dyn Objects,
    earlier: &[(String, String)],
) -> Result<Option<String>, SpecError> {
    let Some(from) = &e.value_from else {
        let vars: BTreeMap<&str, &str> = earlier
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return Ok(Some(expand_vars(
            e.value.as_deref().unwrap_or_default(),
            &vars,
        )));
    };
    if let Some(r) = &from.secret_key_ref {
        return match objects.secret(&r.name).and_then(|d| d.get(&r.key).cloned()) {
            Some(v) => Ok(Some(lossy(&v))),
            None if r.optional == Some(true) => Ok(None),
            None => Err(missing(c, "Secret", &r.name, Some(&r.key))),
        };
    }
    if let Some(r) = &from.config_map_key_ref {
        return match objects
            .config_map(&r.name)
            .and_then(|d| d.get(&r.key).cloned())
        {
            Some(v) => Ok(Some(lossy(&v))),
            None if r.optional == Some(true) => Ok(None),
            None => Err(missing(c, "ConfigMap", &r.name, Some(&r.key))),
        };
    }
    if let Some(f) = &from.field_ref {
        return field(pod, &f.field_path).map(Some).ok_or_else(|| {
            SpecError::Config(format!(
                "env {}: unsupported fieldRef {}",
                e.name, f.field_path
            ))
        });
    }
    // resourceFieldRef: no limits are enforced on the host.
    Ok(Some(String::new()))
}

/// A downward API field of the pod.
pub fn field(pod: &PodFacts<'_>, path: &str) -> Option<String> {
    Some(match path {
        "metadata.name" => pod.pod_name.to_owned(),
        "metadata.namespace" => pod.namespace.to_owned(),
        "metadata.uid" => pod.pod_uid.to_owned(),
        "status.podIP" | "status.hostIP" => pod.pod_ip.to_string(),
        "spec.serviceAccountName" => pod.service_account.to_owned(),
        "spec.nodeName" => "localhost".to_owned(),
        "metadata.labels" => pod
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\"\n"))
            .collect(),
        other => {
            let key = other
                .strip_prefix("metadata.labels['")
                .and_then(|k| k.strip_suffix("']"))?;
            pod.labels.get(key).cloned().unwrap_or_default()
        }
    })
}

fn missing(c: &Container, kind: &str, name: &str, key: Option<&str>) -> SpecError {
    let key = key.map(|k| format!(" key {k}")).unwrap_or_default();
    SpecError::Config(format!(
        "container {}: {kind} {name}{key} not found",
        c.name
    ))
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Kubernetes `$(VAR)` expansion: known variables are replaced, `$$` escapes, unknown
/// references stay as written.
pub fn expand_vars(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(v) = vars.get(&inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `0.0.0.0`, `127.0.0.1` (as whole addresses) and `localhost:` → the pod's address.
pub fn rewrite_addresses(s: &str, ip: Ipv4Addr) -> String {
    let ip = ip.to_string();
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let prev_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        let hit = prev_ok
            .then(|| {
                ["0.0.0.0", "127.0.0.1", "localhost"]
                    .into_iter()
                    .find(|pat| {
                        let Some(tail) = s[i..].strip_prefix(pat) else {
                            return false;
                        };
                        let next = tail.as_bytes().first();
                        if *pat == "localhost" {
                            next == Some(&b':')
                        } else {
                            next.is_none_or(|b| !(b.is_ascii_digit() || *b == b'.'))
                        }
                    })
            })
            .flatten();
        match hit {
            Some(pat) => {
                out.push_str(&ip);
                i += pat.len();
            }
            None => {
                let ch = s[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Mount paths (whole path components, at the start or after `=`, `:`, `,` or a space)
/// → their host directories, in one pass so a replacement is never rewritten again.
pub fn rewrite_paths(s: &str, mounts: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || matches!(bytes[i - 1], b'=' | b':' | b',' | b' ');
        let hit = boundary
            .then(|| {
                mounts.iter().find(|(path, _)| {
                    s[i..].strip_prefix(path.as_str()).is_some_and(|tail| {
                        tail.is_empty() || tail.starts_with('/') || path.is_empty()
                    })
                })
            })
            .flatten();
        match hit {
            Some((path, host)) if !path.is_empty() => {
                out.push_str(host);
                i += path.len();
            }
            _ => {
                let ch = s[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EnvFromSource, EnvVarSource, ObjectFieldSelector, SecretEnvSource, SecretKeySelector,
        VolumeMount,
    };

    #[derive(Default)]
    struct Fake(BTreeMap<String, BTreeMap<String, Vec<u8>>>);

    impl Objects for Fake {
        fn secret(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            self.0.get(name).cloned()
        }
        fn config_map(&self, _: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            None
        }
    }

    fn facts<'a>(
        volumes: &'a BTreeMap<String, PathBuf>,
        labels: &'a BTreeMap<String, String>,
    ) -> PodFacts<'a> {
        PodFacts {
            namespace: "agents",
            pod_name: "memory-abc-0",
            pod_uid: "uid",
            pod_ip: Ipv4Addr::new(127, 0, 9, 8),
            service_account: "memory",
            labels,
            volumes,
            operator_image: "op:dev",
            operator_binary: Path::new("/work/mcp-operator"),
        }
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..VolumeMount::default()
        }
    }

    #[test]
    fn stdio_container_runs_the_installed_bridge_on_the_pod_address() {
        let volumes = BTreeMap::from([
            ("tmp".to_owned(), PathBuf::from("/h/pod/volumes/tmp")),
            ("bin".to_owned(), PathBuf::from("/h/pod/volumes/bin")),
        ]);
        let labels = BTreeMap::new();
        let c = Container {
            name: "mcp".into(),
            image: Some("node:22-alpine".into()),
            command: Some(vec!["/opt/mcp-operator/bin/mcp-operator".into()]),
            args: Some(
                [
                    "bridge",
                    "--listen",
                    "127.0.0.1:8081",
                    "--",
                    "npx",
                    "-y",
                    "x",
                    "/tmp/data",
                ]
                .map(String::from)
                .to_vec(),
            ),
            env: Some(vec![
                EnvVar {
                    name: "HOME".into(),
                    value: Some("/tmp".into()),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "FILE".into(),
                    value: Some("$(HOME)/memory.jsonl".into()),
                    ..EnvVar::default()
                },
            ]),
            volume_mounts: Some(vec![
                mount("tmp", "/tmp"),
                mount("bin", "/opt/mcp-operator/bin"),
            ]),
            ..Container::default()
        };
        let spec = process_spec(&c, &facts(&volumes, &labels), &Fake::default(), &[]).unwrap();
        assert_eq!(spec.program, "/h/pod/volumes/bin/mcp-operator");
        assert_eq!(
            spec.args,
            [
                "bridge",
                "--listen",
                "127.0.9.8:8081",
                "--",
                "npx",
                "-y",
                "x",
                "/h/pod/volumes/tmp/data"
            ]
        );
        assert_eq!(
            spec.env,
            [
                ("HOME".to_owned(), "/h/pod/volumes/tmp".to_owned()),
                (
                    "FILE".to_owned(),
                    "/h/pod/volumes/tmp/memory.jsonl".to_owned()
                )
            ]
        );
        assert!(!spec.api_access);
    }

    #[test]
    fn operator_image_without_command_runs_the_operator_binary() {
        let volumes = BTreeMap::from([
            (
                "gateway-config".to_owned(),
                PathBuf::from("/h/p/volumes/gateway-config"),
            ),
            ("api".to_owned(), PathBuf::from("/h/p/volumes/api")),
        ]);
        let labels = BTreeMap::new();
        let c = Container {
            name: "gateway".into(),
            image: Some("op:dev".into()),
            args: Some(
                [
                    "gateway",
                    "--config",
                    "/etc/mcp-operator/gateway/config.json",
                    "--listen",
                    "0.0.0.0:8080",
                    "--upstream",
                    "http://127.0.0.1:8081/mcp",
                ]
                .map(String::from)
                .to_vec(),
            ),
            env: Some(vec![EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }]),
            volume_mounts: Some(vec![
                mount("gateway-config", "/etc/mcp-operator/gateway"),
                mount("api", "/var/run/secrets/kubernetes.io/serviceaccount"),
            ]),
            ..Container::default()
        };
        let spec = process_spec(
            &c,
            &facts(&volumes, &labels),
            &Fake::default(),
            &["api".into()],
        )
        .unwrap();
        assert_eq!(spec.program, "/work/mcp-operator");
        assert_eq!(
            spec.args,
            [
                "gateway",
                "--config",
                "/h/p/volumes/gateway-config/config.json",
                "--listen",
                "127.0.9.8:8080",
                "--upstream",
                "http://127.0.9.8:8081/mcp"
            ]
        );
        assert_eq!(
            spec.env,
            [("POD_NAME".to_owned(), "memory-abc-0".to_owned())]
        );
        assert!(spec.api_access);
    }

    #[test]
    fn secrets_resolve_and_missing_ones_wait() {
        let volumes = BTreeMap::new();
        let labels = BTreeMap::new();
        let mut objects = Fake::default();
        let c = Container {
            name: "mcp".into(),
            command: Some(vec!["srv".into()]),
            env: Some(vec![EnvVar {
                name: "TOKEN".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "gh".into(),
                        key: "token".into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            }]),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("X_".into()),
                secret_ref: Some(SecretEnvSource {
                    name: "gh".into(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }]),
            ..Container::default()
        };
        let err = process_spec(&c, &facts(&volumes, &labels), &objects, &[]).unwrap_err();
        assert_eq!(err.to_string(), "container mcp: Secret gh not found");
        objects.0.insert(
            "gh".into(),
            BTreeMap::from([("token".to_owned(), b"s3cr3t".to_vec())]),
        );
        let spec = process_spec(&c, &facts(&volumes, &labels), &objects, &[]).unwrap();
        assert_eq!(
            spec.env,
            [
                ("X_token".to_owned(), "s3cr3t".to_owned()),
                ("TOKEN".to_owned(), "s3cr3t".to_owned())
            ]
        );
    }

    #[test]
    fn other_images_need_a_command() {
        let volumes = BTreeMap::new();
        let labels = BTreeMap::new();
        let c = Container {
            name: "mcp".into(),
            image: Some("ghcr.io/x/y:1".into()),
            ..Container::default()
        };
        let err = process_spec(&c, &facts(&volumes, &labels), &Fake::default(), &[]).unwrap_err();
        assert!(matches!(err, SpecError::NoCommand(..)), "{err}");
    }

    #[test]
    fn rewriting_respects_boundaries() {
        let ip = Ipv4Addr::new(127, 0, 1, 2);
        assert_eq!(rewrite_addresses("10.0.0.0/8", ip), "10.0.0.0/8");
        assert_eq!(rewrite_addresses("127.0.0.10:80", ip), "127.0.0.10:80");
        assert_eq!(rewrite_addresses("--host=0.0.0.0", ip), "--host=127.0.1.2");
        assert_eq!(
            rewrite_addresses("http://localhost:3000/x", ip),
            "http://127.0.1.2:3000/x"
        );
        assert_eq!(rewrite_addresses("localhost", ip), "localhost");
        let mounts = vec![
            ("/tmp/deep".to_owned(), "/tmp/x/deep".to_owned()),
            ("/tmp".to_owned(), "/tmp/x/tmp".to_owned()),
        ];
        assert_eq!(rewrite_paths("/tmp", &mounts), "/tmp/x/tmp");
        assert_eq!(rewrite_paths("/tmpfile", &mounts), "/tmpfile");
        assert_eq!(rewrite_paths("/tmp/deep/a", &mounts), "/tmp/x/deep/a");
        assert_eq!(rewrite_paths("--dir=/tmp/a", &mounts), "--dir=/tmp/x/tmp/a");
        assert_eq!(rewrite_paths("a:/tmp", &mounts), "a:/tmp/x/tmp");
        assert_eq!(rewrite_paths("x/tmp", &mounts), "x/tmp");
        let vars = BTreeMap::from([("A", "1")]);
        assert_eq!(expand_vars("$(A)-$$(A)-$(B)-$", &vars), "1-$(A)-$(B)-$");
    }
}
