k8slab capture --node node-1 --iface eth1 -o eth1.pcap --count 0
