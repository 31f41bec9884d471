#!/usr/bin/env python3
"""Times Hyperscan on a literal list and a log file, for `iocmatch bench --compare`.

Usage: hyperscan_scan.py LITERALS LOGS
Literal, caseless, block mode, with HS_FLAG_SINGLEMATCH (each literal reported once per scan, so the Python
callback does not dominate the time): the strongest literal engine, as the Python `hyperscan` package ships it.
Prints one JSON object: compile seconds, scan seconds (best of 3 over the file in memory), peak RSS. Match counts
are not reported: with SINGLEMATCH they are not line counts. Exits 3 when the package is missing, so the caller reports "not available" instead of a failure.
"""
import json
import resource
import sys
import time

try:
    import hyperscan
except ImportError:
    sys.exit(3)


def main(lits_path, logs_path):
    with open(lits_path, 'rb') as f:
        lits = [l.rstrip(b'\r\n') for l in f if l.strip()]
    with open(logs_path, 'rb') as f:
        data = f.read()
    started = time.perf_counter()
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
    db.compile(expressions=lits, ids=list(range(len(lits))), elements=len(lits), flags=[flags] * len(lits),
               literal=True)
    compile_s = time.perf_counter() - started
    def on_match(_id, _start, _end, _flags, _ctx):
        return None

    best = None
    for _ in range(3):
        t = time.perf_counter()
        db.scan(data, match_event_handler=on_match)
        s = time.perf_counter() - t
        best = s if best is None else min(best, s)
    print(json.dumps({
        'compile_seconds': compile_s,
        'scan_seconds': best,
        'bytes': len(data),
        'max_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
