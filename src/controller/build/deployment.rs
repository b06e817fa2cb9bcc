//! The Deployment `<server>`: one pod per replica with the `install-bridge` init container
//! (Stdio only), the `mcp` container (container servers only) and the `gateway` sidecar,
//! the pod's only open port.
//!
//! Credentials in env/envFrom reach `mcp` only; the gateway configuration and the API
//! token reach `gateway` only (the pod does not automount a token, the gateway gets a
//! projected one), so the server process never sees either.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, ContainerPort, DownwardAPIProjection, DownwardAPIVolumeFile,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements,
    SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gateway_secret::{UPSTREAM_CA_FILE, upstream_header_env};
use super::{BuildContext, BuildError, Target, Workload, labels, security};
use crate::api::server::{ContainerSpec, ImagePullPolicy, SessionMode};

/// Name of the server container.
pub const MCP_CONTAINER: &str = "mcp";
/// Name of the gateway sidecar.
pub const GATEWAY_CONTAINER: &str = "gateway";
/// Name of the init container copying the operator binary (Stdio only).
pub const INSTALL_BRIDGE_CONTAINER: &str = "install-bridge";
/// Name of the gateway's container port (and of the Service port).
pub const GATEWAY_PORT_NAME: &str = "mcp";

/// Where the operator binary is installed in the pod. Not /tmp or /data: user volumes
/// mount there.
pub const BIN_DIR: &str = "/opt/mcp-operator/bin";
/// The binary the `mcp` container runs for Stdio servers.
pub const BRIDGE_BINARY: &str = "/opt/mcp-operator/bin/mcp-operator";
/// emptyDir holding the binary.
pub const BIN_VOLUME: &str = "mcp-operator-bin";
/// Where the gateway Secret is mounted (a directory: subPath mounts never see updates).
pub const GATEWAY_CONFIG_DIR: &str = "/etc/mcp-operator/gateway";
/// The gateway's configuration file.
pub const GATEWAY_CONFIG_FILE: &str = "/etc/mcp-operator/gateway/config.json";
/// Volume of the gateway Secret.
pub const GATEWAY_CONFIG_VOLUME: &str = "gateway-config";
/// Directory of the remote server's CA bundle.
pub const UPSTREAM_CA_DIR: &str = "/etc/mcp-operator/upstream-ca";
/// Volume of the remote server's CA bundle.
pub const UPSTREAM_CA_VOLUME: &str = "upstream-ca";
/// Projected API token, CA and namespace: the gateway's alone.
pub const API_ACCESS_VOLUME: &str = "gateway-kube-api-access";
/// Where Kubernetes clients look for the in-cluster token.
pub const API_ACCESS_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const RESERVED_VOLUMES: &[&str] = &[
    BIN_VOLUME,
    GATEWAY_CONFIG_VOLUME,
    UPSTREAM_CA_VOLUME,
    API_ACCESS_VOLUME,
];

/// The Deployment `<server>`.
pub(crate) fn deployment(
    target: &Target<'_>,
    ctx: &BuildContext,
) -> Result<Deployment, BuildError> {
    let pod = pod_spec(target, ctx)?;
    let default_container = match target.workload {
        Workload::Container(_) => MCP_CONTAINER,
        Workload::Remote(_) => GATEWAY_CONTAINER,
    };
    Ok(Deployment {
        metadata: labels::child_meta(target.name, target),
        spec: Some(DeploymentSpec {
            replicas: Some(target.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(labels::selector(target.name)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(target.name)),
                    annotations: Some(BTreeMap::from([(
                        "kubectl.kubernetes.io/default-container".to_owned(),
                        default_container.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

fn pod_spec(target: &Target<'_>, ctx: &BuildContext) -> Result<PodSpec, BuildError> {
    let mut volumes = Vec::new();
    let mut containers = Vec::new();
    let mut init_containers = Vec::new();
    let mut pod = PodSpec::default();
    match target.workload {
        Workload::Container(c) => {
            check_user_volumes(c, target.upstream.bridge_port.is_some())?;
            volumes.extend(c.volumes.iter().cloned());
            if target.upstream.bridge_port.is_some() {
                volumes.push(Volume {
                    name: BIN_VOLUME.into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                });
                init_containers.push(install_bridge(ctx));
            }
            containers.push(mcp_container(target, c)?);
            pod.security_context = Some(security::pod_security_context(
                c.pod_security_context.as_ref(),
            )?);
            pod.image_pull_secrets = non_empty(c.image_pull_secrets.clone());
            pod.node_selector = (!c.node_selector.is_empty()).then(|| c.node_selector.clone());
            pod.tolerations = non_empty(c.tolerations.clone());
            pod.affinity = c.affinity.clone();
        }
        Workload::Remote(_) => {
            pod.security_context = Some(security::pod_security_context(None)?);
        }
    }
    volumes.extend(gateway_volumes(target));
    containers.push(gateway_container(target, ctx));
    pod.service_account_name = Some(target.service_account.clone());
    pod.automount_service_account_token = Some(false);
    // Service links put every Service of the namespace into the environment: noise for
    // the server process, and a lot of it in busy namespaces.
    pod.enable_service_links = Some(false);
    pod.init_containers = non_empty(init_containers);
    pod.containers = containers;
    pod.volumes = Some(volumes);
    Ok(pod)
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn check_user_volumes(c: &ContainerSpec, stdio: bool) -> Result<(), BuildError> {
    security::check_volumes(&c.volumes)?;
    for (i, v) in c.volumes.iter().enumerate() {
        if RESERVED_VOLUMES.contains(&v.name.as_str()) {
            return Err(BuildError::invalid(
                format!("spec.container.volumes[{i}].name"),
                format!("{:?} is used by the operator; choose another name", v.name),
            ));
        }
    }
    if stdio {
        for (i, m) in c.volume_mounts.iter().enumerate() {
            let path = m.mount_path.trim_end_matches('/');
            if path == BIN_DIR
                || BIN_DIR.starts_with(&format!("{path}/"))
                || path.starts_with(&format!("{BIN_DIR}/"))
            {
                return Err(BuildError::invalid(
                    format!("spec.container.volumeMounts[{i}].mountPath"),
                    format!(
                        "{} would hide the bridge binary installed at {BIN_DIR}",
                        m.mount_path
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn install_bridge(ctx: &BuildContext) -> Container {
    Container {
        name: INSTALL_BRIDGE_CONTAINER.into(),
        image: Some(ctx.operator_image.clone()),
        args: Some(vec!["install-bridge".into(), BIN_DIR.into()]),
        resources: Some(resources(
            &[("cpu", "10m"), ("memory", "16Mi")],
            &[("memory", "64Mi")],
        )),
        security_context: Some(security::operator_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: BIN_VOLUME.into(),
            mount_path: BIN_DIR.into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

fn mcp_container(target: &Target<'_>, c: &ContainerSpec) -> Result<Container, BuildError> {
    let (command, args) = match target.upstream.bridge_port {
        Some(port) => {
            let mode = target.spec.session_mode.unwrap_or_default();
            let mut args: Vec<String> = vec![
                "bridge".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--session-mode".into(),
                match mode {
                    SessionMode::Shared => "Shared",
                    SessionMode::PerSession => "PerSession",
                }
                .into(),
                "--warm-pool".into(),
                target.spec.warm_pool.unwrap_or(1).to_string(),
                "--".into(),
            ];
            args.extend(c.command.iter().cloned());
            args.extend(c.args.iter().cloned());
            (Some(vec![BRIDGE_BINARY.to_owned()]), Some(args))
        }
        None => (non_empty(c.command.clone()), non_empty(c.args.clone())),
    };
    let mut mounts = c.volume_mounts.clone();
    if target.upstream.bridge_port.is_some() {
        mounts.push(VolumeMount {
            name: BIN_VOLUME.into(),
            mount_path: BIN_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if target.user_service_account {
        // The user chose a ServiceAccount for the server (e.g. a Kubernetes MCP server
        // that calls the API): the server gets its token too.
        mounts.push(api_access_mount());
    }
    let pull = c.image_pull_policy.unwrap_or(ImagePullPolicy::IfNotPresent);
    Ok(Container {
        name: MCP_CONTAINER.into(),
        image: Some(c.image.clone()),
        image_pull_policy: Some(
            match pull {
                ImagePullPolicy::Always => "Always",
                ImagePullPolicy::IfNotPresent => "IfNotPresent",
                ImagePullPolicy::Never => "Never",
            }
            .into(),
        ),
        command,
        args,
        env: non_empty(c.env.clone()),
        env_from: non_empty(c.env_from.clone()),
        resources: c.resources.clone(),
        security_context: Some(security::server_security_context(
            c.security_context.as_ref(),
        )?),
        volume_mounts: non_empty(mounts),
        ..Container::default()
    })
}

fn gateway_args(target: &Target<'_>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "gateway".into(),
        "--config".into(),
        GATEWAY_CONFIG_FILE.into(),
        "--listen".into(),
        format!("0.0.0.0:{}", target.gateway.port),
        "--upstream".into(),
        target.upstream.url.clone(),
    ];
    // Always explicit: the gateway would otherwise guess from the path (…/sse = Sse).
    let transport = if target.upstream.sse {
        "Sse"
    } else {
        "StreamableHttp"
    };
    args.extend(["--upstream-transport".into(), transport.into()]);
    args.extend(["--log-format".into(), "json".into()]);
    args
}

fn gateway_container(target: &Target<'_>, ctx: &BuildContext) -> Container {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ];
    let mut mounts = vec![
        VolumeMount {
            name: GATEWAY_CONFIG_VOLUME.into(),
            mount_path: GATEWAY_CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        api_access_mount(),
    ];
    if let Workload::Remote(remote) = target.workload {
        for (i, h) in remote.headers_from.iter().enumerate() {
            env.push(EnvVar {
                name: upstream_header_env(i),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(h.value_from.secret_key_ref.clone()),
                    ..EnvVarSource::default()
                }),
            });
        }
        if remote
            .tls
            .as_ref()
            .and_then(|t| t.ca_secret_ref.as_ref())
            .is_some()
        {
            mounts.push(VolumeMount {
                name: UPSTREAM_CA_VOLUME.into(),
                mount_path: UPSTREAM_CA_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
    let http_get = |path: &str| HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::String(GATEWAY_PORT_NAME.into()),
        ..HTTPGetAction::default()
    };
    Container {
        name: GATEWAY_CONTAINER.into(),
        image: Some(ctx.operator_image.clone()),
        args: Some(gateway_args(target)),
        ports: Some(vec![ContainerPort {
            name: Some(GATEWAY_PORT_NAME.into()),
            container_port: target.gateway.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        readiness_probe: Some(Probe {
            http_get: Some(http_get("/readyz")),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(http_get("/livez")),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: Some(target.gateway.resources.clone().unwrap_or_else(|| {
            resources(&[("cpu", "10m"), ("memory", "32Mi")], &[("memory", "64Mi")])
        })),
        security_context: Some(security::operator_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

fn gateway_volumes(target: &Target<'_>) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: GATEWAY_CONFIG_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(target.gateway_secret_name()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        api_access_volume(),
    ];
    if let Workload::Remote(remote) = target.workload
        && let Some(ca) = remote.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref())
    {
        volumes.push(Volume {
            name: UPSTREAM_CA_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(ca.name.clone()),
                items: Some(vec![KeyToPath {
                    key: ca.key.clone(),
                    path: UPSTREAM_CA_FILE
                        .rsplit('/')
                        .next()
                        .unwrap_or("ca.crt")
                        .into(),
                    mode: None,
                }]),
                optional: ca.optional,
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

/// What the kubelet would automount: a bound, expiring token, the cluster CA and the
/// namespace.
fn api_access_volume() -> Volume {
    Volume {
        name: API_ACCESS_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: None,
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3607),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
        }),
        ..Volume::default()
    }
}

fn api_access_mount() -> VolumeMount {
    VolumeMount {
        name: API_ACCESS_VOLUME.into(),
        mount_path: API_ACCESS_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: path.into(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect::<BTreeMap<_, _>>()
    };
    ResourceRequirements {
        requests: Some(map(requests)),
        limits: Some(map(limits)),
        ..ResourceRequirements::default()
    }
}
