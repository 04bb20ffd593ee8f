"""k8slab: bring up the pod-to-pod tracing tutorial's cluster and prove its network behaves as taught."""

__version__ = "0.1.0"
