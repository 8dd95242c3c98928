# A Paracell cell on AWS: lambda-cell behind an HTTP API (payload 2.0) and a Function URL, relaying
# its table's stream to the standby cell on the other cloud (docs/replication.md).
# Build first: cargo lambda build --release --bin lambda-cell --features dynamodb --output-format zip

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "zip_path" {
  description = "target/lambda/lambda-cell/bootstrap.zip"
  type        = string
  default     = "../../../target/lambda/lambda-cell/bootstrap.zip"
}

variable "consumer_zip_path" {
  description = "target/lambda/lambda-consumer/bootstrap.zip (the events consumer example)"
  type        = string
  default     = "../../../target/lambda/lambda-consumer/bootstrap.zip"
}

variable "cell_id" {
  description = "PARACELL_CELL_ID"
  type        = string
  default     = "cell-aws-1"
}

variable "tenants" {
  description = "PARACELL_TENANTS: \"*\" or a comma list of tenant ids"
  type        = string
  default     = "*"
}

variable "peer_cell_id" {
  description = "The standby cell on the other cloud (its PARACELL_CELL_ID)"
  type        = string
  default     = "cell-azure-1"
}

variable "peer_base_url" {
  description = "The standby cell's public base URL, with its route prefix"
  type        = string
  default     = "https://paracell-cell-azure-1.azurewebsites.net/api"
}

variable "peer_secret_name" {
  description = "Secrets Manager secret holding the secret shared with the peer (whsec_…)"
  type        = string
  default     = "paracell/cell-aws-1/peer-secret"
}

data "aws_secretsmanager_secret_version" "peer" {
  secret_id = var.peer_secret_name
}

# One role per function, each with only what it must do (docs/security.md, least privilege): the
# cell reads and writes its own table; the relay marks entries relayed, writes dead letters and
# publishes events, and cannot write the ledger; the consumer only logs.
resource "aws_iam_role" "function" {
  for_each = toset(["cell", "relay", "consumer"])
  name     = "paracell-${var.cell_id}-${each.key}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "logs" {
  for_each   = aws_iam_role.function
  role       = each.value.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  for_each   = aws_iam_role.function
  role       = each.value.name
  policy_arn = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# One table per cell; item layout in adapters-aws/src/dynamodb/items.rs.
resource "aws_dynamodb_table" "cell" {
  name         = "paracell-${var.cell_id}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "outbox"
    type = "S"
  }
  attribute {
    name = "outbox_order"
    type = "S"
  }

  global_secondary_index {
    name            = "outbox"
    hash_key        = "outbox"
    range_key       = "outbox_order"
    projection_type = "ALL"
  }

  # The relay reads new entry items from the table's stream.
  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }
}

# The cell: what TransactGetItems, TransactWriteItems (puts and conditional updates), GetItem and
# the store's queries need on its own table — no scan, no delete, no other table.
resource "aws_iam_role_policy" "cell" {
  name = "cell-table"
  role = aws_iam_role.function["cell"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = [
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem", "dynamodb:Query",
      ]
      Resource = [aws_dynamodb_table.cell.arn, "${aws_dynamodb_table.cell.arn}/index/outbox"]
    }]
  })
}

# The relay: reads the stream, marks its entries relayed (an UpdateItem that may touch only the
# outbox attributes), writes dead letters, takes the replay queue, publishes events.
resource "aws_iam_role_policy" "relay" {
  name = "relay"
  role = aws_iam_role.function["relay"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["dynamodb:UpdateItem"]
      Resource = aws_dynamodb_table.cell.arn
      Condition = {
        "ForAllValues:StringEquals" = { "dynamodb:Attributes" = ["pk", "sk", "outbox", "outbox_order"] }
      }
      }, {
      Effect   = "Allow"
      Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
      Resource = aws_dynamodb_table.cell.stream_arn
      }, {
      Effect   = "Allow"
      Action   = ["sqs:SendMessage"]
      Resource = [aws_sqs_queue.dead_letters.arn, aws_sqs_queue.stream_failures.arn]
      }, {
      Effect   = "Allow"
      Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      Resource = aws_sqs_queue.replay.arn
      }, {
      Effect   = "Allow"
      Action   = ["events:PutEvents"]
      Resource = aws_cloudwatch_event_bus.events.arn
    }]
  })
}

# The cell's public events: one TransactionAccepted CloudEvent per booked transaction (Source = the
# CloudEvent's source, DetailType = its type, Detail = the document; docs/events.md).
resource "aws_cloudwatch_event_bus" "events" {
  name = "paracell-${var.cell_id}"
}

# A subscriber: every accepted transaction to a queue (a consumer reads it, deduplicating on the
# CloudEvent's source + id); what EventBridge cannot deliver lands in the dead-letter queue.
resource "aws_cloudwatch_event_rule" "accepted" {
  name           = "paracell-${var.cell_id}-accepted"
  event_bus_name = aws_cloudwatch_event_bus.events.name
  event_pattern = jsonencode({
    source        = [{ prefix = "/cells/" }]
    "detail-type" = ["dev.paracell.transaction.accepted.v1"]
  })
}

resource "aws_cloudwatch_event_target" "accepted" {
  rule           = aws_cloudwatch_event_rule.accepted.name
  event_bus_name = aws_cloudwatch_event_bus.events.name
  arn            = aws_sqs_queue.accepted_events.arn
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.accepted_events_dead_letters.arn
  }
}

resource "aws_sqs_queue" "accepted_events" {
  name                    = "paracell-${var.cell_id}-accepted-events"
  sqs_managed_sse_enabled = true
}

resource "aws_sqs_queue" "accepted_events_dead_letters" {
  name                      = "paracell-${var.cell_id}-accepted-events-dead-letters"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue_policy" "accepted_events" {
  for_each  = { target = aws_sqs_queue.accepted_events, dead_letters = aws_sqs_queue.accepted_events_dead_letters }
  queue_url = each.value.url
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = each.value.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.accepted.arn } }
    }]
  })
}

# The relay's dead letters: full entries with the destination and the reason.
resource "aws_sqs_queue" "dead_letters" {
  name                      = "paracell-${var.cell_id}-dead-letters"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

# Where an operator moves dead letters to have the function deliver them again.
resource "aws_sqs_queue" "replay" {
  name                       = "paracell-${var.cell_id}-replay"
  visibility_timeout_seconds = 60
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = 5
  })
}

# The stream mapping's own on-failure destination (metadata of batches it gave up on).
resource "aws_sqs_queue" "stream_failures" {
  name                      = "paracell-${var.cell_id}-stream-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_lambda_event_source_mapping" "stream" {
  function_name                      = aws_lambda_function.relay.arn
  event_source_arn                   = aws_dynamodb_table.cell.stream_arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = 100
  maximum_batching_window_in_seconds = 1
  maximum_retry_attempts             = 20
  maximum_record_age_in_seconds      = 86400
  bisect_batch_on_function_error     = true
  function_response_types            = ["ReportBatchItemFailures"]
  filter_criteria {
    filter {
      pattern = jsonencode({
        eventName = ["INSERT"]
        dynamodb = {
          Keys     = { sk = { S = [{ prefix = "SEQ#" }] } }
          NewImage = { outbox = { S = ["pending"] } }
        }
      })
    }
  }
  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_failures.arn
    }
  }
}

resource "aws_lambda_event_source_mapping" "replay" {
  function_name           = aws_lambda_function.relay.arn
  event_source_arn        = aws_sqs_queue.replay.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
}

# The cell answers clients and verifies the peer's deliveries (it needs the peer secrets, not the
# peers). While rotating, list both secrets (docs/security.md, secret rotation).
resource "aws_lambda_function" "cell" {
  function_name    = "paracell-${var.cell_id}"
  role             = aws_iam_role.function["cell"].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  memory_size      = 128
  timeout          = 10
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)
  tracing_config {
    mode = "Active"
  }

  environment {
    variables = {
      PARACELL_CELL_ID        = var.cell_id
      PARACELL_TENANTS        = var.tenants
      PARACELL_STORE          = "dynamodb"
      PARACELL_DYNAMODB_TABLE = aws_dynamodb_table.cell.name
      PARACELL_PEER_SECRETS   = "${var.peer_cell_id}=${data.aws_secretsmanager_secret_version.peer.secret_string}"
      RUST_LOG                = "info"
    }
  }
}

# The relay: the same bootstrap, driven only by the stream and the replay queue, with its own role.
resource "aws_lambda_function" "relay" {
  function_name    = "paracell-${var.cell_id}-relay"
  role             = aws_iam_role.function["relay"].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  memory_size      = 128
  timeout          = 60
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)
  tracing_config {
    mode = "Active"
  }

  environment {
    variables = {
      PARACELL_CELL_ID               = var.cell_id
      PARACELL_TENANTS               = var.tenants
      PARACELL_STORE                 = "dynamodb"
      PARACELL_DYNAMODB_TABLE        = aws_dynamodb_table.cell.name
      PARACELL_PEERS                 = "${var.peer_cell_id}=${var.peer_base_url}"
      PARACELL_PEER_SECRETS          = "${var.peer_cell_id}=${data.aws_secretsmanager_secret_version.peer.secret_string}"
      PARACELL_DEAD_LETTERS          = "sqs"
      PARACELL_DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letters.url
      PARACELL_EVENTBRIDGE_BUS       = aws_cloudwatch_event_bus.events.name
      RUST_LOG                       = "info"
    }
  }
}

resource "aws_lambda_function_url" "cell" {
  function_name      = aws_lambda_function.cell.function_name
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_api" "http" {
  name          = "paracell-${var.cell_id}"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "cell" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.cell.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "proxy" {
  api_id    = aws_apigatewayv2_api.http.id
  route_key = "ANY /{proxy+}"
  target    = "integrations/${aws_apigatewayv2_integration.cell.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format          = jsonencode({ requestId = "$context.requestId", route = "$context.routeKey", status = "$context.status", latencyMs = "$context.responseLatency" })
  }
}

# One line per request (no body, no header values).
resource "aws_cloudwatch_log_group" "api" {
  name              = "/paracell/${var.cell_id}/http-api"
  retention_in_days = 365
}

resource "aws_lambda_permission" "http_api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.cell.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}

# The consumer example (examples/src/bin/lambda-consumer.rs), targeted by its own rule: reads each
# CloudEvent back with the domain's parser and applies it at most once per source + id. What it
# fails to read lands in the consumer's dead-letter queue after EventBridge's retries.
resource "aws_lambda_function" "consumer" {
  function_name    = "paracell-${var.cell_id}-consumer"
  role             = aws_iam_role.function["consumer"].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  memory_size      = 128
  timeout          = 10
  filename         = var.consumer_zip_path
  source_code_hash = filebase64sha256(var.consumer_zip_path)
  tracing_config {
    mode = "Active"
  }
  environment {
    variables = { RUST_LOG = "info" }
  }
}

resource "aws_cloudwatch_event_rule" "consumer" {
  name           = "paracell-${var.cell_id}-consumer"
  event_bus_name = aws_cloudwatch_event_bus.events.name
  event_pattern = jsonencode({
    source        = [{ prefix = "/cells/" }]
    "detail-type" = ["dev.paracell.transaction.accepted.v1"]
  })
}

resource "aws_cloudwatch_event_target" "consumer" {
  rule           = aws_cloudwatch_event_rule.consumer.name
  event_bus_name = aws_cloudwatch_event_bus.events.name
  arn            = aws_lambda_function.consumer.arn
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.consumer_dead_letters.arn
  }
}

resource "aws_lambda_permission" "consumer" {
  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.consumer.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.consumer.arn
}

resource "aws_sqs_queue" "consumer_dead_letters" {
  name                      = "paracell-${var.cell_id}-consumer-dead-letters"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue_policy" "consumer_dead_letters" {
  queue_url = aws_sqs_queue.consumer_dead_letters.url
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.consumer_dead_letters.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.consumer.arn } }
    }]
  })
}

output "http_api_url" {
  value = aws_apigatewayv2_api.http.api_endpoint
}

output "function_url" {
  value = aws_lambda_function_url.cell.function_url
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dead_letters.url
}
