k8slab ssh node-9
