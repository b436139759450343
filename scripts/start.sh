#!/usr/bin/env bash
# Install signgate into .venv, initialise ./signgate-data on first run, and serve on
# http://127.0.0.1:8080 (SQLite database and software key vault in that directory).
# Environment: SIGNGATE_DATA_DIR, SIGNGATE_DATABASE_URL, SIGNGATE_HOST, SIGNGATE_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

data_dir=${SIGNGATE_DATA_DIR:-signgate-data}
if [ ! -f "$data_dir/admin.token" ]; then
  .venv/bin/signgate init --data-dir "$data_dir"
fi
echo "client: export SIGNGATE_TOKEN=\$(cat $data_dir/admin.token) PATH=$PWD/.venv/bin:\$PATH"
exec .venv/bin/signgate serve --data-dir "$data_dir" \
  --host "${SIGNGATE_HOST:-127.0.0.1}" --port "${SIGNGATE_PORT:-8080}"
