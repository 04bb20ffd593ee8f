k8slab spec --spec ../spec/several-problems-at-once.yaml
