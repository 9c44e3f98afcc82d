output "kv_path" {
  description = "Mount path of the KV v2 engine."
  value       = vault_mount.kv.path
}

output "kubernetes_auth_path" {
  description = "Mount path of the Kubernetes auth method."
  value       = vault_auth_backend.kubernetes.path
}

output "secrets_controller_role" {
  description = "Kubernetes auth role for the secrets controller."
  value       = vault_kubernetes_auth_backend_role.secrets_controller.role_name
}

output "policies" {
  description = "Policies this configuration manages."
  value       = [vault_policy.secrets_controller.name, vault_policy.people.name]
}

output "userpass_login" {
  description = "How people log in (the password is in the platform's secrets)."
  value       = "bao login -method=userpass username=${var.userpass_username}"
}

output "seeded_secrets" {
  description = "KV paths of the seeded demo secrets."
  value       = sort([for s in vault_generic_secret.demo : s.path])
}
