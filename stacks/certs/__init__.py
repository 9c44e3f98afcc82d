"""The certificate stub: a local CA, Issuer/ClusterIssuer/Certificate, ingress annotations.

pki.py         keys and X.509 certificates (pure, `cryptography`)
policy.py      spec parsing, issuance policies, Secret and status builders (pure)
controller.py  reconcile of Certificates, Issuers and annotated Ingresses (I/O)
program.py     `platform run certs` entry point
manifests/     CRDs, RBAC, Deployment for running it in the cluster
"""
