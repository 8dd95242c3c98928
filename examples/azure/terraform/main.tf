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

# The Functions runtime's own storage (and the events' queue and dead letters): TLS 1.2, HTTPS only,
# nothing public, deleted blobs kept a week.
resource "azurerm_storage_account" "cell" {
  name                            = substr(replace("pc${var.cell_id}", "/[^a-z0-9]/", ""), 0, 24)
  resource_group_name             = azurerm_resource_group.cell.name
  location                        = azurerm_resource_group.cell.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  public_network_access_enabled   = true
  blob_properties {
    delete_retention_policy {
      days = 7
    }
  }
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
  # No keys: the cell reaches its container with its managed identity (PARACELL_COSMOS_AUTH=entra)
  # and a data-plane role on this database only; keys cannot change the account either.
  local_authentication_disabled      = true
  access_key_metadata_writes_enabled = false
}

# "Cosmos DB Built-in Data Contributor" (reads and writes items, no account or container changes),
# for the cell's identity, on the cell's database only.
resource "azurerm_cosmosdb_sql_role_assignment" "cell" {
  resource_group_name = azurerm_resource_group.cell.name
  account_name        = azurerm_cosmosdb_account.cell.name
  role_definition_id  = "${azurerm_cosmosdb_account.cell.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002"
  principal_id        = azurerm_linux_function_app.cell.identity[0].principal_id
  scope               = "${azurerm_cosmosdb_account.cell.id}/dbs/${azurerm_cosmosdb_sql_database.cell.name}"
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
  https_only                 = true

  site_config {
    minimum_tls_version = "1.2"
    ftps_state          = "Disabled"
  }

  # The cell's identity: Cosmos DB and Event Grid with Entra ID (roles below), and Key Vault
  # references in app settings (grant it "get" on the peer secret).
  identity {
    type = "SystemAssigned"
  }

  app_settings = {
    FUNCTIONS_WORKER_RUNTIME = "custom"
    PARACELL_CELL_ID         = var.cell_id
    PARACELL_TENANTS         = var.tenants
    PARACELL_STORE           = "cosmos"
    PARACELL_COSMOS_ENDPOINT  = azurerm_cosmosdb_account.cell.endpoint
    PARACELL_COSMOS_AUTH      = "entra"
    PARACELL_COSMOS_DATABASE  = azurerm_cosmosdb_sql_database.cell.name
    PARACELL_COSMOS_CONTAINER = azurerm_cosmosdb_sql_container.cell.name
    PARACELL_COSMOS_REGION    = azurerm_resource_group.cell.location
    # The Relay function's trigger connection (examples/azure/app/Relay/function.json), identity-based.
    CosmosConnection__accountEndpoint = azurerm_cosmosdb_account.cell.endpoint
    PARACELL_PEERS        = "${var.peer_cell_id}=${var.peer_base_url}"
    PARACELL_PEER_SECRETS = "${var.peer_cell_id}=@Microsoft.KeyVault(SecretUri=${var.peer_secret_uri})"
    PARACELL_DEAD_LETTERS = "cosmos"
    # The relay publishes each accepted transaction's CloudEvent to the topic (docs/events.md) with
    # the app's managed identity ("EventGrid Data Sender" on this topic only; the topic has no keys).
    PARACELL_EVENTGRID_ENDPOINT = azurerm_eventgrid_topic.events.endpoint
    PARACELL_EVENTGRID_AUTH     = "entra"
    RUST_LOG                    = "info"
  }
}

# The cell's public events, in the CloudEvents schema: one TransactionAccepted per booked transaction.
resource "azurerm_eventgrid_topic" "events" {
  name                = "paracell-${var.cell_id}-events"
  resource_group_name = azurerm_resource_group.cell.name
  location            = azurerm_resource_group.cell.location
  input_schema        = "CloudEventSchemaV1_0"
  # Entra ID only: no access key exists to leak or expire.
  local_auth_enabled = false
  identity {
    type = "SystemAssigned"
  }
}

# The cell may publish to its own topic, and nothing else there.
resource "azurerm_role_assignment" "cell_publishes" {
  scope                = azurerm_eventgrid_topic.events.id
  role_definition_name = "EventGrid Data Sender"
  principal_id         = azurerm_linux_function_app.cell.identity[0].principal_id
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
  https_only                 = true

  # No identity and no role: a consumer cannot publish, nor read the cell's container.
  site_config {
    minimum_tls_version = "1.2"
    ftps_state          = "Disabled"
  }

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
