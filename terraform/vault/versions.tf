terraform {
  required_version = ">= 1.5.0"

  required_providers {
    vault = {
      source  = "hashicorp/vault"
      version = "= 3.3.1"
    }
  }
}

# The token comes from VAULT_TOKEN in the environment, never from a variable or argv.
provider "vault" {
  address = var.vault_address
}
