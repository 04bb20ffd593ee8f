k8slab diagram -o lab.gif
