k8slab status --backend ssh
