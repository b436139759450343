#!/usr/bin/env bash
# Install signgate into .venv (only when needed), initialise ./signgate-data on first run,
# and serve on http://127.0.0.1:8080 (SQLite database and software key vault in that
# directory).
# Environment: SIGNGATE_DATA_DIR, SIGNGATE_DATABASE_URL, SIGNGATE_HOST, SIGNGATE_PORT, and
# SIGNGATE_PUBLIC_URL: where clients reach the server, named in the CRL URLs of its
# certificates (default http://HOST:PORT; when it changes, serve re-issues them).
set -euo pipefail
cd "$(dirname "$0")/.."

# Install only when pyproject.toml, the interpreter or the venv changed: a stamp in the venv
# holds the hash of what the last install saw (a new venv has no stamp).
venv=.venv
stamp=$venv/.signgate-install
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
want=$( { sha256sum pyproject.toml; readlink -f "$venv/bin/python";
          "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/signgate" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
   || ! "$venv/bin/python" -c 'import signgate' 2>/dev/null; then
  echo "installing signgate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e .
  echo "$want" > "$stamp"
fi

data_dir=${SIGNGATE_DATA_DIR:-signgate-data}
host=${SIGNGATE_HOST:-127.0.0.1}
port=${SIGNGATE_PORT:-8080}
case $host in
  0.0.0.0|::|"") url_host=127.0.0.1 ;;  # all addresses: name one that reaches this machine
  *:*) url_host="[$host]" ;;             # an IPv6 literal
  *) url_host=$host ;;
esac
public_url=${SIGNGATE_PUBLIC_URL:-http://$url_host:$port}
if [ ! -f "$data_dir/admin.token" ]; then
  "$venv/bin/signgate" init --data-dir "$data_dir" --public-url "$public_url"
fi
echo "client: export SIGNGATE_TOKEN=\$(cat $data_dir/admin.token) PATH=$PWD/.venv/bin:\$PATH"
exec "$venv/bin/signgate" serve --data-dir "$data_dir" --host "$host" --port "$port" \
  --public-url "$public_url"
