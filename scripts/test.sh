#!/usr/bin/env bash
# The test command: set-up, lint, type-check, then the test suite against a
# real local Kafka broker (started and stopped by the test session).
# Extra arguments go to pytest, e.g. scripts/test.sh -k pipeline
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy
echo "== pytest"
# Everything but the long fault-injection scenarios, which have their own
# command (scripts/reliability.sh); the reliability tests marked `ci` run here.
exec python -m pytest -m "not reliability or ci" --durations=15 "$@"
