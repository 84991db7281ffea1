"""The Workflow status: Kubernetes objects in, the reference status document out."""
