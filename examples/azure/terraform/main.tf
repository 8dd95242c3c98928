# A Paracell cell on Azure: azure-cell as the custom handler of a Linux Function App.
# Package examples/azure/app with the Linux x86_64 azure-cell binary beside host.json, zip it,
# and deploy the zip (see the README's "Deploying to Azure").

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

variable "cell_id" {
  description = "PARACELL_CELL_ID"
  type        = string
  default     = "cell-azure-1"
}

variable "tenants" {
  description = "PARACELL_TENANTS: \"*\" or a comma list of tenant ids"
  type        = string
  default     = "*"
}

variable "package_zip" {
  description = "zip of examples/azure/app with the azure-cell binary"
  type        = string
  default     = "../app.zip"
}

resource "azurerm_resource_group" "cell" {
  name     = "paracell-${var.cell_id}"
  location = var.location
}

resource "azurerm_storage_account" "cell" {
  name                     = substr(replace("pc${var.cell_id}", "/[^a-z0-9]/", ""), 0, 24)
  resource_group_name      = azurerm_resource_group.cell.name
  location                 = azurerm_resource_group.cell.location
  account_tier             = "Standard"
  account_replication_type = "LRS"
}

resource "azurerm_service_plan" "cell" {
  name                = "paracell-${var.cell_id}"
  resource_group_name = azurerm_resource_group.cell.name
  location            = azurerm_resource_group.cell.location
  os_type             = "Linux"
  sku_name            = "Y1"
}

resource "azurerm_linux_function_app" "cell" {
  name                       = "paracell-${var.cell_id}"
  resource_group_name        = azurerm_resource_group.cell.name
  location                   = azurerm_resource_group.cell.location
  service_plan_id            = azurerm_service_plan.cell.id
  storage_account_name       = azurerm_storage_account.cell.name
  storage_account_access_key = azurerm_storage_account.cell.primary_access_key
  zip_deploy_file            = var.package_zip

  site_config {}

  app_settings = {
    FUNCTIONS_WORKER_RUNTIME = "custom"
    PARACELL_CELL_ID         = var.cell_id
    PARACELL_TENANTS         = var.tenants
    RUST_LOG                 = "info"
  }
}

output "health_url" {
  value = "https://${azurerm_linux_function_app.cell.default_hostname}/api/health"
}
