"""Flow Operator: Workflows (published services) and FlowRuns (batch task runs) on Kubernetes."""

GROUP = "flowops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGER = "flow-operator"
