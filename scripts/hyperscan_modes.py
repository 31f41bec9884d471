#!/usr/bin/env python3
"""Hyperscan on the same literals and log three ways, to say which figure a comparison uses.

Usage: scripts/hyperscan_modes.py LITERALS LOGS
Literal, caseless, block mode, as scripts/hyperscan_scan.py: the whole file in one scan call with and without
HS_FLAG_SINGLEMATCH (best of 3 each), then one scan call per line with every match reported, as a line matcher must
report lines (once: the Python loop around the call is most of that figure), timed with the split into lines and
again with the lines split before the clock starts. Prints one line per way: MB/s and the
callbacks seen. Exits 3 when the `hyperscan` package is missing.
"""
import sys
import time

try:
    import hyperscan
except ImportError:
    sys.exit(3)


def build(lits, single):
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = hyperscan.HS_FLAG_CASELESS | (hyperscan.HS_FLAG_SINGLEMATCH if single else 0)
    db.compile(expressions=lits, ids=list(range(len(lits))), elements=len(lits), flags=[flags] * len(lits),
               literal=True)
    return db


def main(lits_path, logs_path):
    with open(lits_path, 'rb') as f:
        lits = [l.rstrip(b'\r\n') for l in f if l.strip()]
    with open(logs_path, 'rb') as f:
        data = f.read()
    seen = [0]

    def on_match(*_):
        seen[0] += 1

    for single in (True, False):
        db = build(lits, single)
        best = None
        for _ in range(3):
            seen[0] = 0
            t = time.perf_counter()
            db.scan(data, match_event_handler=on_match)
            s = time.perf_counter() - t
            best = s if best is None else min(best, s)
        print('whole file, SINGLEMATCH %s: %.0f MB/s, %d callbacks' % (single, len(data) / best / 1e6, seen[0]))
    db = build(lits, False)
    seen[0] = 0
    t = time.perf_counter()
    for line in data.split(b'\n'):
        db.scan(line, match_event_handler=on_match)
    s = time.perf_counter() - t
    print('a line at a time, every match: %.0f MB/s, %d callbacks' % (len(data) / s / 1e6, seen[0]))
    lines = data.split(b'\n')
    seen[0] = 0
    t = time.perf_counter()
    for line in lines:
        db.scan(line, match_event_handler=on_match)
    s = time.perf_counter() - t
    print('a line at a time, lines split before the clock: %.0f MB/s, %d callbacks' % (len(data) / s / 1e6, seen[0]))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
