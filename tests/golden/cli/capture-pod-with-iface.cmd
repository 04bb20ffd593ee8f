k8slab capture --pod web --iface eth1 -o web.pcap
