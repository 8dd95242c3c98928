# A Paracell cell on AWS: lambda-cell behind an HTTP API (payload 2.0) and a Function URL.
# Build first: cargo lambda build --release --bin lambda-cell --output-format zip

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

resource "aws_iam_role" "lambda" {
  name = "paracell-${var.cell_id}"
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
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
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
    name = "seq"
    type = "S"
  }

  global_secondary_index {
    name            = "outbox"
    hash_key        = "outbox"
    range_key       = "seq"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }
}

resource "aws_iam_role_policy" "table" {
  name = "cell-table"
  role = aws_iam_role.lambda.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = [
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:DescribeTable",
      ]
      Resource = [aws_dynamodb_table.cell.arn, "${aws_dynamodb_table.cell.arn}/index/*"]
    }]
  })
}

resource "aws_lambda_function" "cell" {
  function_name    = "paracell-${var.cell_id}"
  role             = aws_iam_role.lambda.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  memory_size      = 128
  timeout          = 10
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)

  environment {
    variables = {
      PARACELL_CELL_ID        = var.cell_id
      PARACELL_TENANTS        = var.tenants
      PARACELL_STORE          = "dynamodb"
      PARACELL_DYNAMODB_TABLE = aws_dynamodb_table.cell.name
      RUST_LOG                = "info"
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
}

resource "aws_lambda_permission" "http_api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.cell.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}

output "http_api_url" {
  value = aws_apigatewayv2_api.http.api_endpoint
}

output "function_url" {
  value = aws_lambda_function_url.cell.function_url
}
