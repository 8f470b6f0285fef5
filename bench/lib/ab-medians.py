#!/usr/bin/env python3
"""Medians of bench/rev-ab or bench/recv-queue-ab output.

    python3 bench/lib/ab-medians.py FILE...

For each run (a file may hold several, each starting with the script's
header line, "bench/...", or a "#" heading): the median of each side's rounds (rate, user and total
server CPU per request) and the paired ratio, the median over rounds of
B / A within the same round (the two builds ran back to back, so a round's
pair shares the machine's state; the paired ratio is the figure to quote).
"""
import re
import statistics
import sys

ROUND = re.compile(
    r"round (\d+) (\S+)\s+rate=(\d+)/s user=([\d.]+) sys=([\d.]+) total=([\d.]+)"
)


def runs(path):
    """(header, {side: {round: [rate, user, sys, total]}}) per run."""
    header, sides = path, {}
    for line in open(path):
        if line.startswith(("bench/", "#")):
            if sides:
                yield header, sides
            header, sides = line.strip(), {}
        m = ROUND.match(line)
        if m:
            r, side = int(m[1]), m[2]
            sides.setdefault(side, {})[r] = [float(x) for x in m.groups()[2:]]
    if sides:
        yield header, sides


def main(paths):
    for path in paths:
        for header, sides in runs(path):
            if len(sides) != 2:
                print(f"{header}: expected two sides, found {sorted(sides)}")
                continue
            ka, kb = sorted(sides)
            a, b = sides[ka], sides[kb]
            rounds = sorted(set(a) & set(b))
            med = lambda s, i: statistics.median(s[r][i] for r in rounds)
            paired = lambda i: statistics.median(b[r][i] / a[r][i] for r in rounds)
            print(
                f"{header}: {len(rounds)} rounds, {ka} -> {kb}; "
                f"rate {med(a, 0):.0f} -> {med(b, 0):.0f} (paired {paired(0):.3f}); "
                f"user {med(a, 1):.3f} -> {med(b, 1):.3f} (paired {paired(1):.3f}); "
                f"total {med(a, 3):.3f} -> {med(b, 3):.3f} (paired {paired(3):.3f})"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
