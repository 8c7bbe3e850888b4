#!/bin/bash
# Median seeds-to-first-failure of each planted bug over 20 disjoint ranges of 50 seeds.
# Usage: cargo build --release -p roomsim && ROOMSIM=$CARGO_TARGET_DIR/release/roomsim sim/scripts/median-seeds-to-failure.sh
R=${ROOMSIM:-target/release/roomsim}
for bug in "storm naive" "conflict naive" "storm rr-room-lock" "conflict rr-room-lock" "storm room-lock-unordered" "storm-no-idempotency exclusion"; do
  set -- $bug
  firsts=()
  for k in $(seq 0 19); do
    a=$((k*50)); b=$((a+50))
    f=$($R explore --scenario $1 --strategy $2 --seeds $a..$b --stop-on-failure --format json 2>/dev/null | python3 -c "import json,sys; r=json.load(sys.stdin); s=r['seeds_failed']; print(s[0]['seed']-$a+1 if s else 'none')")
    firsts+=($f)
  done
  sorted=$(printf "%s\n" "${firsts[@]}" | sort -n | tr '\n' ' ')
  echo "$2 on $1: seeds-to-first-failure over 20 ranges of 50: $sorted"
done
