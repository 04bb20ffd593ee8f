k8slab status
