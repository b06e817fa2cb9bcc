{{/*
Rules the controller needs in every namespace it watches: a ClusterRole's rules when it
watches all namespaces, one Role's per namespace otherwise. Mirrors
config/rbac/role.yaml (hack/check-packaging.sh fails on drift).
*/}}
{{- define "mcp-operator.namespacedRules" -}}
# The three controllers watch all three kinds (a policy or binding change re-reconciles
# the servers it touches). No create/update/patch/delete: the operator never writes the
# spec of user objects, so GitOps tools stay the only writer.
- apiGroups: [mcp-operator.dev]
  resources: [mcpservers, mcppolicies, mcpbindings]
  verbs: [get, list, watch]
# Status (conditions, inventory, binding Secret name) is written with server-side apply.
- apiGroups: [mcp-operator.dev]
  resources: [mcpservers/status, mcppolicies/status, mcpbindings/status]
  verbs: [get, patch, update]
# Children of a container/remote McpServer (Deployment with the gateway sidecar and
# install-bridge init container), applied server-side and pruned by label when the spec
# no longer wants them.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
# Children: Service (gateway port), Secrets (`<server>-gateway` config and the McpBinding
# credentials Secret), per-server ServiceAccount. Same apply/prune cycle as above.
- apiGroups: [""]
  resources: [services, secrets, serviceaccounts]
  verbs: [get, list, watch, create, update, patch, delete]
# Children: the per-server Role/RoleBinding that lets the gateway record Events.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
# Children: the per-server NetworkPolicy (ingress to the gateway port, egress per policy).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, update, patch, delete]
# Read-only: server pods explain Available=False (reasons CrashLooping, Unschedulable).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# The Event recorder (controller actions, probe transitions, policy violations). Also
# required by RBAC escalation prevention: the per-server Role the operator creates grants
# the gateway `events: create, patch`, and one can only grant what one holds.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# The same for the events.k8s.io/v1 API (kube-runtime's Recorder writes there; the
# gateway's Role may name either group).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# The prober reaches gateways through the API server's service proxy when the operator
# runs outside the cluster (development, `make run`); unused in-cluster.
- apiGroups: [""]
  resources: [services/proxy]
  verbs: [get, create]
{{- end }}

{{- define "mcp-operator.clusterRules" -}}
# Start-up check that the three CRDs are installed and Established, with a message
# saying how to install them when they are not.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end }}
