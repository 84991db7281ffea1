"""Pure status computation: Kubernetes objects in, the reference status document out."""
