k8slab --spec missing.yaml spec
