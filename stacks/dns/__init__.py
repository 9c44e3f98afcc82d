"""The DNS stub: Ingress/Service/DNSRecord names -> CoreDNS hosts entries (k3s coredns-custom).

sources.py     names and targets from each source kind (pure; external-dns rules)
hosts.py       the server block and hosts file, owned vs foreign lines (pure)
controller.py  list sources, merge, write the two owned keys (I/O)
program.py     `platform run dns` entry point
manifests/     DNSRecord CRD, RBAC, Deployment for running it in the cluster
"""
