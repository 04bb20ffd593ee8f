k8slab --spec /dev/zero spec
