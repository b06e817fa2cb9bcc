//! The resource types the server serves: the built-in kinds the operator (and kubectl)
//! use, plus one entry per served version of every stored CustomResourceDefinition.
//! Discovery, routing and object mechanics all read this registry.

use serde_json::Value;

/// Every verb a served resource answers (discovery lists them; kubectl checks them).
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A column of `kubectl get` output (a CRD's `additionalPrinterColumns`).
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `date`, ...).
    pub type_: String,
    /// JSONPath into the object, e.g. `.status.phase`.
    pub json_path: String,
    /// Shown only with `-o wide` when > 0.
    pub priority: i64,
    /// Description of the column.
    pub description: String,
}

/// One served resource (group, version, plural) and how objects of it behave.
#[derive(Clone, Debug)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`svc`, `mcp`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether a `/status` subresource isolates status writes.
    pub status: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// `kubectl get` columns beyond NAME (CRDs only; empty means NAME and AGE).
    pub printer_columns: Vec<PrinterColumn>,
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `mcpservers.mcp-operator.dev`, as error messages name resources.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether this type is the CustomResourceDefinition type itself.
    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }
}

/// Builds a built-in entry: (group, version, plural, kind, namespaced, short names,
/// status subresource, generation).
#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    generation: bool,
) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_lowercase(),
        kind: kind.to_owned(),
        namespaced,
        short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
        categories: Vec::new(),
        status,
        generation,
        printer_columns: Vec::new(),
    }
}

/// The built-in kinds. `generation` follows each kind's registry strategy in Kubernetes:
/// Deployments, NetworkPolicies and CRDs maintain it; Secrets, ConfigMaps and the like
/// do not set it at all.
pub fn builtins() -> Vec<ResourceType> {
    let rbac = "rbac.authorization.k8s.io";
    let mut all = vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            false,
        ),
        builtin("", "v1", "secrets", "Secret", true, &[], false, false),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            false,
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            false,
        ),
        builtin("", "v1", "services", "Service", true, &["svc"], true, false),
        builtin("", "v1", "events", "Event", true, &["ev"], false, false),
        // Where Service `default/kubernetes` really listens (the operator reads them for
        // the API server's egress rule); the server maintains none itself.
        builtin(
            "",
            "v1",
            "endpoints",
            "Endpoints",
            true,
            &["ep"],
            false,
            false,
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            true,
        ),
        builtin(rbac, "v1", "roles", "Role", true, &[], false, false),
        builtin(
            rbac,
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            rbac,
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            rbac,
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
            false,
            true,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            true,
        ),
    ];
    for rt in &mut all {
        if matches!(rt.plural.as_str(), "services" | "deployments") {
            rt.categories.push("all".to_owned());
        }
    }
    all
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The resource types a stored CRD serves (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let kind = str_at(&names, "/kind").to_owned();
    let plural = str_at(&names, "/plural").to_owned();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .map(|v| ResourceType {
            group: str_at(crd, "/spec/group").to_owned(),
            version: str_at(v, "/name").to_owned(),
            plural: plural.clone(),
            singular: Some(str_at(&names, "/singular"))
                .filter(|s| !s.is_empty())
                .map_or_else(|| kind.to_lowercase(), str::to_owned),
            kind: kind.clone(),
            namespaced: str_at(crd, "/spec/scope") != "Cluster",
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status: v.pointer("/subresources/status").is_some(),
            generation: true,
            printer_columns: printer_columns(v),
        })
        .collect()
}

fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    let columns = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array);
    columns
        .into_iter()
        .flatten()
        .map(|c| PrinterColumn {
            name: str_at(c, "/name").to_owned(),
            type_: str_at(c, "/type").to_owned(),
            json_path: str_at(c, "/jsonPath").to_owned(),
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            description: str_at(c, "/description").to_owned(),
        })
        .collect()
}

/// All served resource types: built-ins first, then those of the stored CRDs.
#[derive(Clone, Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// The built-ins plus the types served by `crds` (stored CRD objects).
    pub fn new<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut types = builtins();
        types.extend(crds.into_iter().flat_map(from_crd));
        Self { types }
    }

    /// The type served at group/version/plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Every served type.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The served groups, each with its versions, in registration order (core excluded).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}
