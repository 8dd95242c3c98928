# Paracell's placement registry (one per deployment, not per cell): the DynamoDB authority that
# paracell-admin changes by conditional writes, and the placement-replicator function that feeds its
# stream into the Cosmos DB read replica. What the replicator gives up on is kept in an SQS queue.
# Build first: cargo lambda build --release --bin placement-replicator --features dynamodb,cosmos --output-format zip

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
  description = "target/lambda/placement-replicator/bootstrap.zip"
  type        = string
  default     = "../../../target/lambda/placement-replicator/bootstrap.zip"
}

variable "replica_cosmos_endpoint" {
  description = "The Cosmos DB account holding the replica (PARACELL_COSMOS_ENDPOINT)"
  type        = string
}

variable "replica_cosmos_key_secret" {
  description = "Secrets Manager secret holding that account's key"
  type        = string
  default     = "paracell/registry/cosmos-key"
}

variable "replica_container" {
  description = "The replica's container (partitioned by /tenant)"
  type        = string
  default     = "placements"
}

data "aws_secretsmanager_secret_version" "cosmos_key" {
  secret_id = var.replica_cosmos_key_secret
}

resource "aws_dynamodb_table" "registry" {
  name             = "paracell-registry"
  billing_mode     = "PAY_PER_REQUEST"
  hash_key         = "pk"
  range_key        = "sk"
  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"
  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  point_in_time_recovery {
    enabled = true
  }
}

resource "aws_iam_role" "replicator" {
  name = "paracell-placement-replicator"
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
  role       = aws_iam_role.replicator.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

# X-Ray traces (tracing_config below).
resource "aws_iam_role_policy_attachment" "replicator_xray" {
  role       = aws_iam_role.replicator.name
  policy_arn = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

resource "aws_iam_role_policy" "stream" {
  name = "registry-stream"
  role = aws_iam_role.replicator.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
        Resource = aws_dynamodb_table.registry.stream_arn
      },
      {
        Effect   = "Allow"
        Action   = "sqs:SendMessage"
        Resource = aws_sqs_queue.replicator_failures.arn
      }
    ]
  })
}

resource "aws_lambda_function" "replicator" {
  function_name    = "paracell-placement-replicator"
  role             = aws_iam_role.replicator.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  memory_size      = 128
  timeout          = 30
  tracing_config {
    mode = "Active"
  }
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)
  environment {
    variables = {
      PARACELL_COSMOS_ENDPOINT  = var.replica_cosmos_endpoint
      PARACELL_COSMOS_KEY       = data.aws_secretsmanager_secret_version.cosmos_key.secret_string
      PARACELL_COSMOS_DATABASE  = "paracell"
      PARACELL_COSMOS_CONTAINER = var.replica_container
      RUST_LOG                  = "info"
    }
  }
}

resource "aws_sqs_queue" "replicator_failures" {
  name                      = "paracell-placement-replicator-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_lambda_event_source_mapping" "registry_stream" {
  function_name                  = aws_lambda_function.replicator.arn
  event_source_arn               = aws_dynamodb_table.registry.stream_arn
  starting_position              = "TRIM_HORIZON"
  batch_size                     = 100
  maximum_retry_attempts         = 50
  maximum_record_age_in_seconds  = -1
  bisect_batch_on_function_error = true
  function_response_types        = ["ReportBatchItemFailures"]
  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.replicator_failures.arn
    }
  }
}

output "registry_table" {
  description = "PARACELL_REGISTRY=dynamodb:<this> for paracell-admin"
  value       = aws_dynamodb_table.registry.name
}
