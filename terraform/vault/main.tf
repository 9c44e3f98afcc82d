# Vault configuration of the platform: KV v2, Kubernetes auth for the secrets controller,
# a userpass login for people, least-privilege policies and seeded demo secrets.

resource "vault_mount" "kv" {
  path        = var.kv_path
  type        = "kv"
  options     = { version = "2" }
  description = "Platform secrets (KV v2)"
}

# ---- policies --------------------------------------------------------------------------

resource "vault_policy" "secrets_controller" {
  name = "secrets-controller"
  policy = join("\n", [for p in var.secrets_controller_paths : <<-EOT
    path "${vault_mount.kv.path}/data/${p}" {
      capabilities = ["read"]
    }
    path "${vault_mount.kv.path}/metadata/${p}" {
      capabilities = ["read", "list"]
    }
  EOT
  ])
}

resource "vault_policy" "people" {
  name   = "platform-people"
  policy = <<-EOT
    # Manage the platform's secrets; nothing else.
    path "${vault_mount.kv.path}/data/*" {
      capabilities = ["create", "read", "update", "delete", "list"]
    }
    path "${vault_mount.kv.path}/metadata/*" {
      capabilities = ["read", "list", "delete"]
    }
    path "sys/mounts" {
      capabilities = ["read"]
    }
  EOT
}

# ---- Kubernetes auth -------------------------------------------------------------------

resource "vault_auth_backend" "kubernetes" {
  type        = "kubernetes"
  path        = "kubernetes"
  description = "ServiceAccount logins from the platform's cluster"
}

resource "vault_kubernetes_auth_backend_config" "cluster" {
  backend                = vault_auth_backend.kubernetes.path
  kubernetes_host        = var.kubernetes_host
  kubernetes_ca_cert     = var.kubernetes_ca_cert != "" ? var.kubernetes_ca_cert : null
  token_reviewer_jwt     = var.token_reviewer_jwt != "" ? var.token_reviewer_jwt : null
  disable_iss_validation = true
}

resource "vault_kubernetes_auth_backend_role" "secrets_controller" {
  backend                          = vault_auth_backend.kubernetes.path
  role_name                        = "secrets-controller"
  bound_service_account_names      = [var.secrets_controller_service_account]
  bound_service_account_namespaces = [var.secrets_controller_namespace]
  token_policies                   = [vault_policy.secrets_controller.name]
  token_ttl                        = var.token_ttl
  token_max_ttl                    = var.token_ttl * 4
}

# ---- people ----------------------------------------------------------------------------

resource "vault_auth_backend" "userpass" {
  type        = "userpass"
  path        = "userpass"
  description = "Logins for people"
}

resource "vault_generic_endpoint" "person" {
  depends_on           = [vault_auth_backend.userpass]
  path                 = "auth/${vault_auth_backend.userpass.path}/users/${var.userpass_username}"
  ignore_absent_fields = true
  data_json = jsonencode({
    password       = var.userpass_password
    token_policies = [vault_policy.people.name]
    token_ttl      = 28800 # 8h; a number, as Vault returns it, so plans stay empty
  })
}

# ---- seeded demo secrets ---------------------------------------------------------------

resource "vault_generic_secret" "demo" {
  for_each  = nonsensitive(toset(keys(var.demo_secrets)))
  path      = "${vault_mount.kv.path}/${each.key}"
  data_json = jsonencode(var.demo_secrets[each.key])
}
