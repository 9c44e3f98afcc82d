"""Vault/OpenBao: the hvac adapter (api.py), the unseal-key format (keys.py), the
in-cluster unsealer (unsealer.py) and the manifests the `vault` stage deploys."""
