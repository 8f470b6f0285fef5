#!/usr/bin/env python3
"""Self cost per function of a callgrind output file, per request.

    callgrind-self.py FILE REQUESTS [TOP]

Prints the total instructions (Ir) per request, then the TOP (default 30)
functions by self cost (inlined code counts towards the function it was
inlined into), per request and as a share of the total.
"""
import collections
import re
import sys


def self_costs(path):
    names = {}
    costs = collections.Counter()
    cur = None
    skip_next = False

    def name(tok):
        # Compressed names: "(id) name" defines, "(id)" refers.
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            return names.get(m.group(1), tok)
        return tok

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                cur = name(line[3:])
            elif line.startswith(("cfn=", "fl=", "fi=", "fe=", "ob=", "cob=", "cfi=", "cfl=")):
                name(line.split("=", 1)[1])
            elif line.startswith("calls="):
                # The next cost line is the call's inclusive cost.
                skip_next = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) >= 2:
                    if skip_next:
                        skip_next = False
                    else:
                        costs[cur] += int(parts[1])
    return costs


def main():
    path, requests = sys.argv[1], float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    costs = self_costs(path)
    total = sum(costs.values())
    print(f"total {total / requests:.0f} instructions per request")
    for fn, c in costs.most_common(top):
        print(f"{c / requests:8.1f} {100 * c / total:5.1f}%  {fn[:150]}")


if __name__ == "__main__":
    main()
