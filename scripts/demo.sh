#!/usr/bin/env bash
# The demo: set-up, then `crisiswatch demo` (local broker unless
# CRISISWATCH_KAFKA_BOOTSTRAP points at one, a worker, a replayed stream
# with a crisis, events printed, everything stopped again).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/crisiswatch demo "$@"
