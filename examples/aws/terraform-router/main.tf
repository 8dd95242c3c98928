# Paracell's edge router as a Lambda behind a Function URL, reading the placement registry table.
# Build the bootstrap first:
#   cargo lambda build --release --bin edge-router --features dynamodb --output-format zip
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

variable "zip_path" {
  description = "The router's bootstrap zip (target/lambda/edge-router/bootstrap.zip)"
  type        = string
  default     = "../../../target/lambda/edge-router/bootstrap.zip"
}

variable "registry_table_name" {
  description = "The placement registry table (examples/aws/terraform-registry)"
  type        = string
}

variable "registry_table_arn" {
  description = "Its ARN, for the read-only policy"
  type        = string
}

variable "edge_cells" {
  description = "Where each cell listens, cell=cloud=url comma-separated (PARACELL_EDGE_CELLS)"
  type        = string
}

resource "aws_iam_role" "router" {
  name = "paracell-edge-router"
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
  role       = aws_iam_role.router.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

# X-Ray traces (tracing_config below).
resource "aws_iam_role_policy_attachment" "router_xray" {
  role       = aws_iam_role.router.name
  policy_arn = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# The router only reads placements.
resource "aws_iam_role_policy" "registry" {
  role = aws_iam_role.router.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["dynamodb:GetItem", "dynamodb:Query"]
      Resource = [var.registry_table_arn]
    }]
  })
}

resource "aws_lambda_function" "router" {
  function_name    = "paracell-edge-router"
  role             = aws_iam_role.router.arn
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["x86_64"]
  memory_size      = 256
  timeout          = 10
  tracing_config {
    mode = "Active"
  }

  environment {
    variables = {
      PARACELL_REGISTRY         = "dynamodb:${var.registry_table_name}"
      PARACELL_EDGE_CELLS       = var.edge_cells
      PARACELL_EDGE_ID          = "edge-aws"
      PARACELL_EDGE_DEADLINE_MS = "5000"
      RUST_LOG                  = "info"
    }
  }
}

resource "aws_lambda_function_url" "router" {
  function_name      = aws_lambda_function.router.function_name
  authorization_type = "NONE"
}

output "router_url" {
  value = aws_lambda_function_url.router.function_url
}
