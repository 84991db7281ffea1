"""flowctl: Workflows and flow runs from the command line, through the kubeconfig."""
