#!/usr/bin/env bash
# multi.sh ROUNDS SECS REV... : interleaved rounds of echo 64 over several server builds
set -euo pipefail
cd /work/main
rounds=$1; secs=$2; shift 2
WORK=/work/tmp/ab/w; mkdir -p $WORK
T=target/release
. bench/lib/ab.sh
ab_setup
revs=("$@")
for r in $(seq $rounds); do
  n=${#revs[@]}
  for i in $(seq 0 $((n-1))); do
    # rotate the order each round
    j=$(( (i + r) % n )); [ $((r % 2)) = 0 ] && j=$(( (n - 1 - i + r) % n ))
    ab_round "${revs[$j]}" "$r" echo 64 "$secs" /work/tmp/ab/server-${revs[$j]} --driver uring
  done
done
