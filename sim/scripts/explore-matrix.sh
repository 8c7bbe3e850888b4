#!/bin/bash
# Every scenario × every safe strategy over a seed range: invariant violations, seeds/s.
# Usage: cargo build --release -p roomsim &&
#   SEEDS=0..10000 JOBS=2 ROOMSIM=target/release/roomsim sim/scripts/explore-matrix.sh [OUT_DIR]
# Writes OUT_DIR/<scenario>.<strategy>.json (explore --format json) and prints one line each:
#   scenario strategy seeds violations(seeds failed) seeds/s wall-s.
# Exit 1 when any safe strategy failed a seed.
set -u
R=${ROOMSIM:-target/release/roomsim}
SEEDS=${SEEDS:-0..10000}
JOBS=${JOBS:-2}
OUT=${1:-explore-matrix}
SCENARIOS=${SCENARIOS:-"storm conflict rules all storm-partition storm-loss storm-backend-crash storm-db-crash"}
STRATEGIES=${STRATEGIES:-$($R strategies | grep -v BROKEN | tr '\n' ' ')}
mkdir -p "$OUT"
status=0
printf '%-22s %-13s %-12s %-14s %-9s %s\n' scenario strategy seeds seeds_failed seeds/s wall_s
for scenario in $SCENARIOS; do
  for strategy in $STRATEGIES; do
    file="$OUT/$scenario.$strategy.json"
    $R explore --scenario "$scenario" --strategy "$strategy" --seeds "$SEEDS" --jobs "$JOBS" \
      --format json > "$file" 2>/dev/null
    rc=$?
    line=$(python3 - "$file" "$rc" <<'PY'
import json, sys
path, rc = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"unreadable({rc})"); sys.exit(0)
print(f"{r['seeds_run']:<12} {len(r['seeds_failed']):<14} {r['seeds_per_second']:<9} {r['wall_s']}")
PY
)
    printf '%-22s %-13s %s\n' "$scenario" "$strategy" "$line"
    [ "$rc" -ne 0 ] && status=1
  done
done
exit $status
