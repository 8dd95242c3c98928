# Paracell's edge router on Azure: edge-router as the custom handler of a Linux Function App, routing
# by the Cosmos DB replica of the placement registry (kept by the placement-replicator, so Azure keeps
# routing while AWS is down). Package examples/azure/router-app with the Linux x86_64 edge-router
# binary (built with --features cosmos) beside host.json, zip it, and deploy the zip.

terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0"
    }
  }
}

provider "azurerm" {
  features {}
}

variable "location" {
  type    = string
  default = "westeurope"
}

variable "package_zip" {
  description = "zip of examples/azure/router-app with the edge-router binary"
  type        = string
  default     = "../router-app.zip"
}

variable "replica_cosmos_endpoint" {
  description = "The Cosmos DB account holding the placement replica"
  type        = string
}

variable "replica_cosmos_key_secret_uri" {
  description = "Key Vault secret URI of that account's key; resolved by App Service"
  type        = string
}

variable "replica_database" {
  type    = string
  default = "paracell"
}

variable "replica_container" {
  type    = string
  default = "placements"
}

variable "edge_cells" {
  description = "Where each cell listens, cell=cloud=url comma-separated (PARACELL_EDGE_CELLS)"
  type        = string
}

resource "azurerm_resource_group" "router" {
  name     = "paracell-edge-router"
  location = var.location
}

resource "azurerm_storage_account" "router" {
  name                            = "paracelledgerouter"
  resource_group_name             = azurerm_resource_group.router.name
  location                        = azurerm_resource_group.router.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  blob_properties {
    delete_retention_policy {
      days = 7
    }
  }
}

resource "azurerm_service_plan" "router" {
  name                = "paracell-edge-router"
  resource_group_name = azurerm_resource_group.router.name
  location            = azurerm_resource_group.router.location
  os_type             = "Linux"
  sku_name            = "Y1"
}

resource "azurerm_linux_function_app" "router" {
  name                       = "paracell-edge-router"
  resource_group_name        = azurerm_resource_group.router.name
  location                   = azurerm_resource_group.router.location
  service_plan_id            = azurerm_service_plan.router.id
  storage_account_name       = azurerm_storage_account.router.name
  storage_account_access_key = azurerm_storage_account.router.primary_access_key
  zip_deploy_file            = var.package_zip
  https_only                 = true

  site_config {
    minimum_tls_version = "1.2"
    ftps_state          = "Disabled"
  }

  # Key Vault references in app settings resolve with the app's identity (grant it "get" on secrets).
  identity {
    type = "SystemAssigned"
  }

  app_settings = {
    FUNCTIONS_WORKER_RUNTIME  = "custom"
    PARACELL_REGISTRY         = "cosmos:${var.replica_container}"
    PARACELL_COSMOS_ENDPOINT  = var.replica_cosmos_endpoint
    PARACELL_COSMOS_KEY       = "@Microsoft.KeyVault(SecretUri=${var.replica_cosmos_key_secret_uri})"
    PARACELL_COSMOS_DATABASE  = var.replica_database
    PARACELL_COSMOS_REGION    = var.location
    PARACELL_EDGE_CELLS       = var.edge_cells
    PARACELL_EDGE_ID          = "edge-azure"
    PARACELL_EDGE_DEADLINE_MS = "5000"
    RUST_LOG                  = "info"
  }
}

output "router_url" {
  value = "https://${azurerm_linux_function_app.router.default_hostname}"
}
