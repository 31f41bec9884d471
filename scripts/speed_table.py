#!/usr/bin/env python3
"""The README's speed-and-scale table, measured on the reference workload.

Usage: scripts/speed_table.py DIR [--sizes 10k,100k,1m,10m] [--bin target/release/iocmatch] [--repeat 3]
DIR is what `python3 ../shared/bench/make_speed.py DIR --mb 200 --10m` writes (logs.log, iocs_N.txt, literals_N.txt).
Per size: `iocmatch compile` (load + validate, build, peak RSS), `iocmatch scan --stats --output count --iocs` on 1
and 2 threads (best of --repeat, and the median on 1 thread; whole-process time and peak RSS of the 1-thread run),
the same scan from the compiled file (`--snapshot`: MB/s, peak RSS, and the whole process's user + system CPU
seconds, read-ahead thread included, so MB per CPU-second says what one core does), and grep -F, rg -F and Hyperscan on the literals (up to 1M: there are no 10M
literals, and rg needs 7.4 GB at 1M). Prints Markdown rows.
"""
import json
import os
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    """Runs cmd; returns (wall seconds, peak RSS bytes of the child, stdout+stderr text)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run(['/usr/bin/time', '-f', 'MAXRSS %M CPU %U %S'] + cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    out = p.stdout.decode(errors='replace')
    m = re.search(r'MAXRSS (\d+)', out)
    rss = int(m.group(1)) * 1024 if m else before
    if p.returncode not in (0, 1):
        raise SystemExit('failed (%d): %s\n%s' % (p.returncode, ' '.join(cmd), out[-2000:]))
    return wall, rss, out


def mb_s(out):
    return float(re.search(r'([\d.]+) MB/s', out).group(1))


def cpu(out):
    """User + system CPU seconds of the whole process, from /usr/bin/time."""
    m = re.search(r'CPU ([\d.]+) ([\d.]+)', out)
    return float(m.group(1)) + float(m.group(2))


def hits(out):
    return int(re.search(r'lines with hits: (\d+)', out).group(1))


def gb(b):
    return '%.2f GB' % (b / 1e9) if b >= 1e9 else '%.0f MB' % (b / 1e6)


def main(argv):
    d = argv[0]
    opt = lambda k, v: argv[argv.index(k) + 1] if k in argv else v
    sizes = opt('--sizes', '10k,100k,1m,10m').split(',')
    binary = opt('--bin', os.path.join(HERE, '..', 'target', 'release', 'iocmatch'))
    repeat = int(opt('--repeat', '3'))
    logs = os.path.join(d, 'logs.log')
    size_mb = os.path.getsize(logs) / 1e6
    print('| indicators | load + validate, build (compile) | compile peak RSS | scan 1 thread (median) | '
          '1 thread: CPU of the whole process | scan 2 threads | lines with hits | `scan --iocs` whole process, peak RSS | '
          '`scan --snapshot` 1 thread, peak RSS | grep -F | rg -F | Hyperscan (compile) |')
    print('|' + '---|' * 12)
    for n in sizes:
        iocs = os.path.join(d, 'iocs_%s.txt' % n)
        count = sum(1 for _ in open(iocs))
        snap = os.path.join(d, 'table_%s.snap' % n)
        _, c_rss, c_out = run([binary, 'compile', '--iocs', iocs, '--out', snap])
        m = re.search(r'loaded and validated in (\d+) ms, compiled in (\d+) ms', c_out)
        load_s, build_s = int(m.group(1)) / 1e3, int(m.group(2)) / 1e3
        scan = lambda threads, src: [binary, 'scan', '--threads', str(threads), '--stats', '--output', 'count'] + src + [logs]
        one = [run(scan(1, ['--iocs', iocs])) for _ in range(repeat)]
        two = [run(scan(2, ['--iocs', iocs])) for _ in range(repeat)]
        snap_runs = [run(scan(1, ['--snapshot', snap])) for _ in range(repeat)]
        best1 = max(mb_s(o) for _, _, o in one)
        med1 = sorted(mb_s(o) for _, _, o in one)[len(one) // 2]
        # The snapshot runs have no load or build in them: their CPU time is the scan's (plus the mapped file's
        # checksum at open), with the read-ahead thread counted, so it says what a core does.
        s_cpu = min(cpu(o) for _, _, o in snap_runs)
        s_best = max(mb_s(o) for _, _, o in snap_runs)
        best2 = max(mb_s(o) for _, _, o in two)
        whole = min(w for w, _, _ in one)
        peak = max(r for _, r, _ in one)
        s_rss = max(r for _, r, _ in snap_runs)
        h = {hits(o) for _, _, o in one + two + snap_runs}
        tools = []
        lits = os.path.join(d, 'literals_%s.txt' % n)
        if os.path.exists(lits):
            for tool in ('grep', 'rg'):
                w, r, _ = run([tool, '-F', '-c', '-f', lits, logs])
                tools.append('%.0f MB/s, %s' % (size_mb / w, gb(r)))
            p = subprocess.run(['python3', os.path.join(HERE, 'hyperscan_scan.py'), lits, logs], stdout=subprocess.PIPE)
            if p.returncode == 0:
                j = json.loads(p.stdout)
                tools.append('%.0f MB/s (%.1f s), %s' % (size_mb / j['scan_seconds'], j['compile_seconds'],
                                                        gb(j['max_rss_bytes'])))
            else:
                tools.append('not installed')
        else:
            tools = ['no literals'] * 3
        print('| %s (%d) | %.2f s + %.2f s | %s (%.0f B/ind.) | %.0f MB/s (%.0f) | `--snapshot`: %.2f CPU-s, %.0f MB per CPU-s | '
              '%.0f MB/s | %s | %.1f s, %s (%.0f B/ind.) | %.0f MB/s, %s | %s |'
              % (n, count, load_s, build_s, gb(c_rss), c_rss / count, best1, med1, s_cpu, size_mb / s_cpu, best2,
                 '/'.join(map(str, sorted(h))), whole, gb(peak), peak / count, s_best, gb(s_rss), ' | '.join(tools)),
              flush=True)
        os.remove(snap)


if __name__ == '__main__':
    main(sys.argv[1:])
