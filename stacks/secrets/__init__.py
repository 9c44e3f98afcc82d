"""The external-secrets equivalent: SecretStore / ClusterSecretStore / ExternalSecret.

Syncs Vault (OpenBao) KV secrets into Kubernetes Secrets with External Secrets Operator
v1 field names under the group `secrets.platform.local`. Runs as `platform run secrets`
(stacks.secrets.program); installed from stacks/secrets/manifests/.
"""
