k8slab --inventory hosts.yml --backend netns status
