#!/usr/bin/env bash
# Renders everything a user deploys and checks it before a cluster ever sees it:
#   - helm lint --strict, default values and charts/mcp-operator/ci/*-values.yaml;
#   - helm template (default, namespaced, crds.keep=false), kubectl kustomize
#     config/default and config/samples, and examples/;
#   - every built-in kind against the Kubernetes OpenAPI schema (kubernetes-validate
#     --strict); our CRs against the generated CRD schemas (structure only: the CEL rules
#     are exercised by `cargo test`);
#   - invariants: RBAC scope per install mode, chart and kustomize rules in sync, no write
#     access to user specs, the API-server-endpoints Role alone in `default`, CRD keep annotation, restricted securityContext, operator
#     flags and env, samples identical to examples, CRD copies identical.
# Needs the tools from `make peers`; override with HELM, KUBECTL, PYTHON (a Python with
# kubernetes-validate), K8S_VERSION.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
HELM=${HELM:-.peers/bin/helm}
KUBECTL=${KUBECTL:-.peers/bin/kubectl}
PYTHON=${PYTHON:-.peers/venv/bin/python}
K8S_VERSION=${K8S_VERSION:-1.33.0}
CHART=charts/mcp-operator
RELEASE=mcp-operator
NAMESPACE=mcp-operator-system

die() { echo "check-packaging: $*" >&2; exit 1; }
for tool in "$HELM" "$KUBECTL" "$PYTHON"; do
  command -v "$tool" >/dev/null || die "$tool not found: run \`make peers\` (or set HELM/KUBECTL/PYTHON)"
done
"$PYTHON" -c 'import kubernetes_validate, yaml, jsonschema' 2>/dev/null \
  || die "$PYTHON lacks kubernetes-validate: run \`make peers\`"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "==> helm lint --strict"
for values in "$CHART"/ci/*-values.yaml; do
  "$HELM" lint --strict --quiet "$CHART" -f "$values" >"$out/lint.log" 2>&1 \
    || { cat "$out/lint.log" >&2; die "helm lint failed with $values"; }
done

render() { # name, helm args...
  local name=$1; shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$K8S_VERSION" "$@" \
    >"$out/$name.yaml" || die "helm template failed: $name ($*)"
}
echo "==> helm template"
render helm-default -f "$CHART/ci/default-values.yaml"
render helm-namespaced -f "$CHART/ci/namespaced-values.yaml"
render helm-nokeep --set crds.keep=false

echo "==> kubectl kustomize"
for dir in config/default config/samples; do
  "$KUBECTL" kustomize "$dir" >"$out/kustomize-${dir#config/}.yaml" || die "kustomize failed: $dir"
done

echo "==> validate and check invariants"
"$PYTHON" - "$out" "$K8S_VERSION" "$NAMESPACE" "$CHART/ci/namespaced-values.yaml" <<'PY'
import copy, filecmp, glob, os, re, sys
import jsonschema, kubernetes_validate, yaml

out, k8s_version, namespace, namespaced_values = sys.argv[1:5]
failures = []

def fail(where, msg):
    failures.append(f"{where}: {msg}")

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def ident(doc):
    md = doc.get("metadata") or {}
    ns = f"{md['namespace']}/" if md.get("namespace") else ""
    return f"{doc.get('kind')} {ns}{md.get('name')}"

renders = {os.path.basename(p)[:-5]: load(p) for p in sorted(glob.glob(f"{out}/*.yaml"))}
for p in sorted(glob.glob("examples/*.yaml")):
    renders[p] = load(p)

# --- schema validation ------------------------------------------------------------------
OUR_GROUP = "mcp-operator.dev"
SKIP_GROUPS = {"monitoring.coreos.com"}      # Prometheus Operator: no schema to hand

def crd_schema(s):
    """OpenAPI v3 (structural) → JSON Schema that, like the API server with pruning
    made an error, rejects unknown fields."""
    if isinstance(s, list):
        return [crd_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    r = {k: crd_schema(v) for k, v in s.items()
         if not k.startswith("x-kubernetes-") and k != "nullable"}
    if s.get("x-kubernetes-int-or-string"):
        r.pop("type", None)
        r["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable") and "type" in r:
        r["type"] = [r["type"], "null"]
    if "properties" in s and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        r["additionalProperties"] = False
    if "properties" in s:
        r["properties"] = {k: crd_schema(v) for k, v in s["properties"].items()}
    return r

crd_validators = {}
for path in sorted(glob.glob("crds/*.yaml")):
    for crd in load(path):
        for v in crd["spec"]["versions"]:
            gv = f"{crd['spec']['group']}/{v['name']}"
            crd_validators[(gv, crd["spec"]["names"]["kind"])] = \
                jsonschema.Draft202012Validator(crd_schema(v["schema"]["openAPIV3Schema"]))

validated, cr_checked, skipped = 0, 0, {}
for name, docs in renders.items():
    for i, doc in enumerate(docs):
        where = f"{name} doc #{i + 1} ({ident(doc)})"
        group = doc.get("apiVersion", "").rpartition("/")[0]
        if group == OUR_GROUP:
            v = crd_validators.get((doc["apiVersion"], doc["kind"]))
            if v is None:
                fail(where, f"no CRD in crds/ for {doc['apiVersion']} {doc['kind']}")
                continue
            body = {k: x for k, x in doc.items() if k not in ("apiVersion", "kind", "metadata")}
            for e in sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path)):
                fail(where, f".{'.'.join(map(str, e.absolute_path))}: {e.message}")
            cr_checked += 1
            continue
        if group in SKIP_GROUPS:
            skipped[doc["kind"]] = skipped.get(doc["kind"], 0) + 1
            continue
        try:
            kubernetes_validate.validate(doc, k8s_version, strict=True)
            validated += 1
        except kubernetes_validate.ValidationError as e:
            fail(where, f".{'.'.join(map(str, e.absolute_path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            fail(where, f"no Kubernetes {k8s_version} schema for {doc.get('apiVersion')} {doc.get('kind')}")

# --- invariants -----------------------------------------------------------------------
def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]

def norm(rules):
    return sorted((tuple(sorted(r.get("apiGroups", []))), tuple(sorted(r.get("resources", []))),
                   tuple(sorted(r.get("verbs", [])))) for r in rules)

def grants(role, resource):
    return any(OUR_GROUP in r.get("apiGroups", []) and resource in r.get("resources", [])
               for r in role.get("rules", []))

CRD_RULE = [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
             "verbs": ["get", "list", "watch"]}]

def check_manager(where, docs, leader_elect=True, watch=()):
    deps = of_kind(docs, "Deployment")
    if len(deps) != 1:
        return fail(where, f"expected one Deployment, found {len(deps)}")
    pod = deps[0]["spec"]["template"]["spec"]
    psc = pod.get("securityContext") or {}
    for c in pod.get("initContainers", []) + pod["containers"]:
        w, sc = f"{where} Deployment container {c['name']}", c.get("securityContext") or {}
        eff = {**psc, **sc}
        if eff.get("runAsNonRoot") is not True: fail(w, "runAsNonRoot must be true")
        if eff.get("runAsUser") != 65532: fail(w, "runAsUser must be 65532")
        if (eff.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            fail(w, "seccompProfile must be RuntimeDefault")
        if sc.get("allowPrivilegeEscalation") is not False: fail(w, "allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True: fail(w, "readOnlyRootFilesystem must be true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []): fail(w, "capabilities must drop ALL")
    mgr = next((c for c in pod["containers"] if c["name"] == "manager"), None)
    if mgr is None:
        return fail(where, "Deployment has no container named manager")
    w, args = f"{where} manager", mgr.get("args", [])
    if args[:1] != ["run"]: fail(w, f"args must start with `run`, got {args}")
    if ("--leader-elect" in args) != leader_elect: fail(w, f"--leader-elect expected={leader_elect}")
    if "--admin-addr=0.0.0.0:8080" not in args: fail(w, "missing --admin-addr=0.0.0.0:8080")
    got = sorted(a.split("=", 1)[1] for a in args if a.startswith("--watch-namespace="))
    if got != sorted(watch): fail(w, f"--watch-namespace {got}, expected {sorted(watch)}")
    env = {e["name"]: e for e in mgr.get("env", [])}
    for var, field in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        if ((env.get(var, {}).get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") != field:
            fail(w, f"{var} must come from the downward API ({field})")
    if env.get("MCP_OPERATOR_IMAGE", {}).get("value") != mgr["image"]:
        fail(w, "MCP_OPERATOR_IMAGE must equal the manager image")
    if "RUST_LOG" not in env: fail(w, "RUST_LOG not set")
    ports = {p.get("name"): p["containerPort"] for p in mgr.get("ports", [])}
    if ports.get("http-metrics") != 8080: fail(w, "needs containerPort 8080 named http-metrics")
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = (mgr.get(probe) or {}).get("httpGet") or {}
        if (get.get("path"), get.get("port")) != (path, "http-metrics"):
            fail(w, f"{probe} must GET {path} on http-metrics")

def check_crds(where, docs, count, keep):
    crds = of_kind(docs, "CustomResourceDefinition")
    if len(crds) != count:
        fail(where, f"expected {count} CRDs, found {len(crds)}")
    for c in crds:
        has = (c["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"
        if has != keep:
            fail(f"{where} {ident(c)}", "helm.sh/resource-policy: keep " + ("missing" if keep else "present"))

def check_leader_role(where, docs):
    if not any(d["metadata"].get("namespace") == namespace and
               any("leases" in r.get("resources", []) for r in d.get("rules", []))
               for d in of_kind(docs, "Role")):
        fail(where, f"no Role granting leases in {namespace}")

# Source of truth for the rules: the kustomize ClusterRole (what the Rust RBAC test reads).
kz = renders["kustomize-default"]
kz_roles = [d for d in of_kind(kz, "ClusterRole") if grants(d, "mcpservers")]
if len(kz_roles) != 1:
    fail("kustomize-default", f"expected one ClusterRole granting mcpservers, found {len(kz_roles)}")
    cluster_rules = []
else:
    cluster_rules = kz_roles[0]["rules"]
namespaced_rules = norm([r for r in cluster_rules if norm([r]) != norm(CRD_RULE)])
if norm(cluster_rules) != sorted(namespaced_rules + norm(CRD_RULE)):
    fail("kustomize-default ClusterRole", "must contain the customresourcedefinitions read rule")

for name, docs in renders.items():
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for r in role.get("rules", []):
            if OUR_GROUP in r.get("apiGroups", []) and \
               {"mcpservers", "mcppolicies", "mcpbindings"} & set(r.get("resources", [])) and \
               {"create", "update", "patch", "delete", "deletecollection", "*"} & set(r.get("verbs", [])):
                fail(f"{name} {ident(role)}", "writes MCP object specs; only /status may be written")

# The Role (and RoleBinding) reading the API server's endpoints: in `default` in every
# install mode, with exactly the rules of config/rbac, and the only thing there.
API_ROLE = "config/rbac/api_server_endpoints_role.yaml"
api_rules = sorted(norm([r]) + [tuple(sorted(r.get("resourceNames", [])))]
                   for r in load(API_ROLE)[0]["rules"])

def check_api_server_role(where, docs):
    in_default = [d for d in docs if (d.get("metadata") or {}).get("namespace") == "default"]
    roles = of_kind(in_default, "Role")
    if len(roles) != 1 or len(in_default) != 2:
        return fail(where, f"expected one Role and its RoleBinding in default, found {[ident(d) for d in in_default]}")
    got = sorted(norm([r]) + [tuple(sorted(r.get("resourceNames", [])))] for r in roles[0]["rules"])
    if got != api_rules:
        fail(f"{where} {ident(roles[0])}", f"rules differ from {API_ROLE}")
    if not [b for b in of_kind(in_default, "RoleBinding") if b["roleRef"]["name"] == roles[0]["metadata"]["name"]
            and any(s.get("namespace") == namespace for s in b["subjects"])]:
        fail(where, f"no RoleBinding in default binding {ident(roles[0])} to the operator")

for name in ("kustomize-default", "helm-default", "helm-namespaced"):
    check_api_server_role(name, renders[name])

# kustomize: everything namespaced lands in the operator namespace (but the above).
for d in kz:
    if d["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding") \
            and d["metadata"].get("namespace") not in (namespace, "default"):
        fail(f"kustomize-default {ident(d)}", f"not in namespace {namespace}")
for b in of_kind(kz, "ClusterRoleBinding") + of_kind(kz, "RoleBinding"):
    for s in b["subjects"]:
        if s.get("kind") == "ServiceAccount" and s.get("namespace") != namespace:
            fail(f"kustomize-default {ident(b)}", f"subject not in {namespace}")
if not of_kind(kz, "Namespace"):
    fail("kustomize-default", "no Namespace")
check_manager("kustomize-default", kz)
check_crds("kustomize-default", kz, 3, keep=False)
check_leader_role("kustomize-default", kz)

# Helm, cluster-wide.
hd = renders["helm-default"]
roles = [d for d in of_kind(hd, "ClusterRole") if grants(d, "mcpservers")]
if len(roles) != 1:
    fail("helm-default", f"expected one ClusterRole granting mcpservers, found {len(roles)}")
elif norm(roles[0]["rules"]) != norm(cluster_rules):
    fail(f"helm-default {ident(roles[0])}", "rules differ from config/rbac/role.yaml")
if [d for d in of_kind(hd, "Role") if grants(d, "mcpservers")]:
    fail("helm-default", "cluster-wide install must not render per-namespace Roles")
check_manager("helm-default", hd)
check_crds("helm-default", hd, 3, keep=True)
check_leader_role("helm-default", hd)
check_crds("helm-nokeep", renders["helm-nokeep"], 3, keep=False)

# Helm, namespace-scoped.
with open(namespaced_values) as f:
    watched = yaml.safe_load(f)["watchNamespaces"]
hn = renders["helm-namespaced"]
for cr in of_kind(hn, "ClusterRole"):
    if norm(cr["rules"]) != norm(CRD_RULE):
        fail(f"helm-namespaced {ident(cr)}", "only customresourcedefinitions reads may be cluster-wide")
for ns in watched:
    rs = [d for d in of_kind(hn, "Role") if d["metadata"].get("namespace") == ns and grants(d, "mcpservers")]
    if len(rs) != 1:
        fail("helm-namespaced", f"expected one Role granting mcpservers in {ns}, found {len(rs)}")
    elif norm(rs[0]["rules"]) != namespaced_rules:
        fail(f"helm-namespaced {ident(rs[0])}", "rules differ from config/rbac/role.yaml")
    elif not [b for b in of_kind(hn, "RoleBinding")
              if b["metadata"].get("namespace") == ns and b["roleRef"]["name"] == rs[0]["metadata"]["name"]]:
        fail("helm-namespaced", f"no RoleBinding for the Role in {ns}")
extra = {d["metadata"].get("namespace") for d in of_kind(hn, "Role") if grants(d, "mcpservers")} - set(watched)
if extra:
    fail("helm-namespaced", f"Roles in unwatched namespaces {sorted(extra)}")
check_manager("helm-namespaced", hn, watch=watched)
check_crds("helm-namespaced", hn, 0, keep=False)
check_leader_role("helm-namespaced", hn)
if not of_kind(hn, "ServiceMonitor"):
    fail("helm-namespaced", "serviceMonitor.enabled rendered no ServiceMonitor")

# Every RBAC rule in the sources says which code needs it.
for path in ["config/rbac/role.yaml", "config/rbac/leader_election_role.yaml", API_ROLE,
             "charts/mcp-operator/templates/_rbac.tpl", "charts/mcp-operator/templates/rbac.yaml"]:
    lines = open(path).read().splitlines()
    for n, line in enumerate(lines):
        if re.match(r"\s*- apiGroups:", line) and not lines[n - 1].strip().startswith("#"):
            fail(f"{path}:{n + 1}", "RBAC rule without a comment saying which code needs it")

# Samples are copies of examples; examples leave the namespace to `kubectl apply -n`.
for path in sorted(glob.glob("config/samples/*.yaml")):
    if os.path.basename(path) == "kustomization.yaml":
        continue
    twin = os.path.join("examples", os.path.basename(path))
    if not os.path.exists(twin) or not filecmp.cmp(path, twin, shallow=False):
        fail(path, f"must be an exact copy of {twin}")
for name, docs in renders.items():
    if name.startswith("examples/"):
        for d in docs:
            if d["metadata"].get("namespace"):
                fail(f"{name} {ident(d)}", "sets metadata.namespace; leave it to `kubectl apply -n`")

# The generated CRDs are copied to three places by `make manifests`.
for copy_dir in ("config/crd/bases", "charts/mcp-operator/files/crds"):
    for path in sorted(glob.glob("crds/*.yaml")):
        twin = os.path.join(copy_dir, os.path.basename(path))
        if not os.path.exists(twin) or not filecmp.cmp(path, twin, shallow=False):
            fail(twin, f"differs from {path}: run `make manifests`")

if failures:
    print("\n".join(f"FAIL {f}" for f in failures), file=sys.stderr)
    sys.exit(f"packaging: {len(failures)} problem(s)")
kinds = ", ".join(f"{k}×{n}" for k, n in sorted(skipped.items())) or "none"
print(f"packaging: {validated + cr_checked} documents validated ({validated} built-in against "
      f"Kubernetes {k8s_version}, {cr_checked} CRs against the generated CRDs), "
      f"{sum(skipped.values())} skipped (kinds: {kinds}); {len(renders)} renders/files")
PY
