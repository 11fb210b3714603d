#!/usr/bin/env bash
# The reliability suite (tests/reliability) against real Kafka brokers, in one command.
#
#   scripts/reliability.sh              every scenario but the on-demand ones (about 6-7 min
#                                       on 2 cores); all of it but test_reauthentication.py
#                                       is marked `ci` and also runs in the README test
#                                       command (scripts/test.sh)
#   scripts/reliability.sh --all        also the on-demand tests: the 30-minute soak
#                                       and the failover with a 60 s session timeout
#   scripts/reliability.sh -k broker    extra arguments go to pytest
#
# Environment: CRISISWATCH_RELIABILITY_FULL=1 and CRISISWATCH_SOAK=1 select the
# on-demand tests one by one (--all sets both); CRISISWATCH_SOAK_SECONDS,
# CRISISWATCH_SOAK_RATE tune the soak (see docs/reliability.md).
# Every test prints one line "reliability <scenario>: sent=N faults=K lost=L ...";
# they are repeated at the end and kept in .cache/reliability/last.log.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  case "$a" in
    --all) export CRISISWATCH_RELIABILITY_FULL=1 CRISISWATCH_SOAK=1 ;;
    *) args+=("$a") ;;
  esac
done
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p .cache/reliability
log=.cache/reliability/last.log
start=$SECONDS
set +e
python -m pytest -m reliability -s -p no:cacheprovider --durations=0 "${args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "== reliability summary ($((SECONDS - start)) s, exit $rc)"
grep -E '^reliability [a-z-]+.*: ' "$log" | sed 's/^.*\(reliability \)/\1/' || echo "(no summary lines)"
exit "$rc"
