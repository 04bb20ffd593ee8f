"""The emulated lab: the tutorial's cluster network built from Linux network namespaces and the
real CNI plugins. names (where things live) -> plan (what to build, pure) -> kernel/nsfs/cni (how)
-> lab (NetnsLab, the lifecycle behind the Lab interface)."""

from k8slab.labs.netns.lab import NetnsLab

__all__ = ["NetnsLab"]
