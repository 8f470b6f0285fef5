#!/usr/bin/env bash
# bufs.sh ROUNDS SECS KIND COUNT... : one build of tcp_echo_server, --recv-buffers COUNT per variant, interleaved rounds
set -euo pipefail
cd /work/main
rounds=$1; secs=$2; kind=$3; shift 3
WORK=/work/tmp/ab/w; mkdir -p $WORK
T=target/release
. bench/lib/ab.sh
ab_setup
counts=("$@")
for r in $(seq $rounds); do
  n=${#counts[@]}
  for i in $(seq 0 $((n-1))); do
    j=$(( (i + r) % n ))
    ab_round "bufs${counts[$j]}" "$r" "$kind" 64 "$secs" /work/tmp/ab/echo-srv --driver uring --recv-buffers "${counts[$j]}"
  done
done
