# A Paracell cell on Azure: azure-cell as the custom handler of a Linux Function App. Its Relay
# function (a Cosmos DB trigger on the cell's container) relays to the standby cell on the other
# cloud (docs/replication.md).
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

variable "peer_cell_id" {
  description = "The standby cell on the other cloud (its PARACELL_CELL_ID)"
  type        = string
  default     = "cell-aws-1"
}

variable "peer_base_url" {
  description = "The standby cell's public base URL (e.g. its Lambda Function URL, no trailing slash)"
  type        = string
  default     = "https://example.lambda-url.eu-west-1.on.aws"
}

variable "peer_secret_uri" {
  description = "Key Vault secret URI of the secret shared with the peer (whsec_…); resolved by App Service"
  type        = string
  default     = "https://paracell-vault.vault.azure.net/secrets/cell-azure-1-peer"
}

variable "package_zip" {
  description = "zip of examples/azure/app with the azure-cell binary"
  type        = string
  default     = "../app.zip"
}

variable "consumer_package_zip" {
  description = "zip of examples/azure/consumer-app with the azure-consumer binary"
  type        = string
  default     = "../consumer-app.zip"
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

# One Cosmos DB container per cell, partitioned by tenant; document layout in
# adapters-azure/src/cosmos/documents.rs.
resource "azurerm_cosmosdb_account" "cell" {
  name                = "paracell-${var.cell_id}"
  resource_group_name = azurerm_resource_group.cell.name
  location            = azurerm_resource_group.cell.location
  offer_type          = "Standard"
  kind                = "GlobalDocumentDB"

  consistency_policy {
    consistency_level = "Session"
  }
  geo_location {
    location          = azurerm_resource_group.cell.location
    failover_priority = 0
  }
  capabilities {
    name = "EnableServerless"
  }
}

resource "azurerm_cosmosdb_sql_database" "cell" {
  name                = "paracell"
  resource_group_name = azurerm_resource_group.cell.name
  account_name        = azurerm_cosmosdb_account.cell.name
}

resource "azurerm_cosmosdb_sql_container" "cell" {
  name                = var.cell_id
  resource_group_name = azurerm_resource_group.cell.name
  account_name        = azurerm_cosmosdb_account.cell.name
  database_name       = azurerm_cosmosdb_sql_database.cell.name
  partition_key_paths = ["/tenant"]
}

# The Relay function's leases (the change-feed processor's checkpoints).
resource "azurerm_cosmosdb_sql_container" "leases" {
  name                = "leases"
  resource_group_name = azurerm_resource_group.cell.name
  account_name        = azurerm_cosmosdb_account.cell.name
  database_name       = azurerm_cosmosdb_sql_database.cell.name
  partition_key_paths = ["/id"]
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

  # Key Vault references in app settings resolve with the app's identity (grant it "get" on secrets).
  identity {
    type = "SystemAssigned"
  }

  app_settings = {
    FUNCTIONS_WORKER_RUNTIME = "custom"
    PARACELL_CELL_ID         = var.cell_id
    PARACELL_TENANTS         = var.tenants
    PARACELL_STORE           = "cosmos"
    PARACELL_COSMOS_ENDPOINT = azurerm_cosmosdb_account.cell.endpoint
    # In production prefer a Key Vault reference ("@Microsoft.KeyVault(...)") over the raw key.
    PARACELL_COSMOS_KEY       = azurerm_cosmosdb_account.cell.primary_key
    PARACELL_COSMOS_DATABASE  = azurerm_cosmosdb_sql_database.cell.name
    PARACELL_COSMOS_CONTAINER = azurerm_cosmosdb_sql_container.cell.name
    PARACELL_COSMOS_REGION    = azurerm_resource_group.cell.location
    # The Relay function's trigger connection (examples/azure/app/Relay/function.json).
    CosmosConnection      = azurerm_cosmosdb_account.cell.primary_sql_connection_string
    PARACELL_PEERS        = "${var.peer_cell_id}=${var.peer_base_url}"
    PARACELL_PEER_SECRETS = "${var.peer_cell_id}=@Microsoft.KeyVault(SecretUri=${var.peer_secret_uri})"
    PARACELL_DEAD_LETTERS = "cosmos"
    # The relay publishes each accepted transaction's CloudEvent to the topic (docs/events.md). To
    # use Entra ID instead of the key, grant the app's identity "EventGrid Data Sender" on the topic
    # and set PARACELL_EVENTGRID_TOKEN from a token source instead of PARACELL_EVENTGRID_KEY.
    PARACELL_EVENTGRID_ENDPOINT = azurerm_eventgrid_topic.events.endpoint
    PARACELL_EVENTGRID_KEY      = azurerm_eventgrid_topic.events.primary_access_key
    RUST_LOG                    = "info"
  }
}

# The cell's public events, in the CloudEvents schema: one TransactionAccepted per booked transaction.
resource "azurerm_eventgrid_topic" "events" {
  name                = "paracell-${var.cell_id}-events"
  resource_group_name = azurerm_resource_group.cell.name
  location            = azurerm_resource_group.cell.location
  input_schema        = "CloudEventSchemaV1_0"
}

# A subscriber: every accepted transaction to a Storage queue (a consumer function reads it,
# deduplicating on the CloudEvent's source + id); undeliverable events go to a blob container.
resource "azurerm_storage_queue" "accepted_events" {
  name                 = "accepted-events"
  storage_account_name = azurerm_storage_account.cell.name
}

resource "azurerm_storage_container" "event_dead_letters" {
  name                  = "event-dead-letters"
  storage_account_id    = azurerm_storage_account.cell.id
  container_access_type = "private"
}

resource "azurerm_eventgrid_event_subscription" "accepted" {
  name                  = "accepted-events"
  scope                 = azurerm_eventgrid_topic.events.id
  event_delivery_schema = "CloudEventSchemaV1_0"
  included_event_types  = ["dev.paracell.transaction.accepted.v1"]

  storage_queue_endpoint {
    storage_account_id = azurerm_storage_account.cell.id
    queue_name         = azurerm_storage_queue.accepted_events.name
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.cell.id
    storage_blob_container_name = azurerm_storage_container.event_dead_letters.name
  }
}

# The consumer example (examples/src/bin/azure-consumer.rs): a custom handler whose TransactionAccepted
# function has an Event Grid trigger. It reads each CloudEvent back with the domain's parser and
# applies it at most once per source + id.
resource "azurerm_linux_function_app" "consumer" {
  name                       = "paracell-${var.cell_id}-consumer"
  resource_group_name        = azurerm_resource_group.cell.name
  location                   = azurerm_resource_group.cell.location
  service_plan_id            = azurerm_service_plan.cell.id
  storage_account_name       = azurerm_storage_account.cell.name
  storage_account_access_key = azurerm_storage_account.cell.primary_access_key
  zip_deploy_file            = var.consumer_package_zip

  site_config {}

  app_settings = {
    FUNCTIONS_WORKER_RUNTIME = "custom"
    RUST_LOG                 = "info"
  }
}

resource "azurerm_eventgrid_event_subscription" "consumer" {
  name                  = "transaction-consumer"
  scope                 = azurerm_eventgrid_topic.events.id
  event_delivery_schema = "CloudEventSchemaV1_0"
  included_event_types  = ["dev.paracell.transaction.accepted.v1"]

  azure_function_endpoint {
    function_id                       = "${azurerm_linux_function_app.consumer.id}/functions/TransactionAccepted"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  # A delivery the function failed (500: it could not read the event) ends here after the retries.
  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.cell.id
    storage_blob_container_name = azurerm_storage_container.event_dead_letters.name
  }
}

output "health_url" {
  value = "https://${azurerm_linux_function_app.cell.default_hostname}/api/health"
}
