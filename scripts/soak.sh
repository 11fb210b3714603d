#!/usr/bin/env bash
# The soak test on its own: 30 minutes at 50% of the measured maximum throughput.
#
#   scripts/soak.sh                              30 min at 50% of the calibrated maximum
#   CRISISWATCH_SOAK_SECONDS=600 scripts/soak.sh  a 10-minute run
#   CRISISWATCH_SOAK_RATE=2000 scripts/soak.sh    a fixed rate (mentions/s) instead of 50%
#   CRISISWATCH_SOAK_BRANDS=1000 scripts/soak.sh  more brands (default 200)
#
# Pass: every mention counted exactly, worker RSS growth <= 5% after the warm-up,
# no lag growth (tests/reliability/test_soak.py, docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CRISISWATCH_SOAK=1
exec bash scripts/reliability.sh tests/reliability/test_soak.py "$@"
