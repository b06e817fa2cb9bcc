//! The Service `<server>`: the gateway port only, named `mcp` with `appProtocol: mcp`.
//! Sessions live in one pod, so several replicas get ClientIP affinity.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::GATEWAY_PORT_NAME;
use super::{Target, labels};

/// The Service `<server>`.
pub(crate) fn service(target: &Target<'_>) -> Service {
    Service {
        metadata: labels::child_meta(target.name, target),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector(target.name)),
            ports: Some(vec![ServicePort {
                name: Some(GATEWAY_PORT_NAME.into()),
                port: target.gateway.port,
                target_port: Some(IntOrString::String(GATEWAY_PORT_NAME.into())),
                app_protocol: Some("mcp".into()),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            session_affinity: Some(
                if target.spec.replicas == 1 {
                    "None"
                } else {
                    "ClientIP"
                }
                .into(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
