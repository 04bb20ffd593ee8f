k8slab verify --junit .
