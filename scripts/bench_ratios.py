#!/usr/bin/env python3
"""Turns Google Benchmark JSON into a Markdown table of times and ratios.

Usage:
  build/release/benchmarks/bench_quant --benchmark_format=json > q.json
  scripts/bench_ratios.py q.json --baseline BM_Memcpy

Each row's ratio is its real time over the baseline's real time from the same run.
A benchmark can name its own baseline with --pair PATTERN=BASELINE (regex on names).
Standard library only.
"""
import argparse
import json
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="Google Benchmark --benchmark_format=json output ('-' for stdin)")
    ap.add_argument("--baseline", help="name of the baseline benchmark for every row")
    ap.add_argument("--pair", action="append", default=[],
                    help="REGEX=BASELINE: rows matching REGEX use BASELINE (first match wins)")
    args = ap.parse_args()
    data = json.load(sys.stdin if args.json == "-" else open(args.json))
    # With --benchmark_repetitions, use each benchmark's median.
    medians = [dict(b, name=b["run_name"]) for b in data["benchmarks"] if b.get("aggregate_name") == "median"]
    rows = medians or [b for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    times = {b["name"]: b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
             for b in rows}
    pairs = [(re.compile(p.split("=", 1)[0]), p.split("=", 1)[1]) for p in args.pair]
    ctx = data.get("context", {})
    print(f"<!-- {ctx.get('date', '')} {ctx.get('num_cpus', '?')} CPUs @ {ctx.get('mhz_per_cpu', '?')} MHz -->")
    print("| benchmark | time (ms) | baseline | ratio |")
    print("|---|---:|---|---:|")
    for name, t in times.items():
        base = next((b for rx, b in pairs if rx.search(name)), args.baseline)
        if base is None or base not in times or base == name:
            print(f"| {name} | {t:.3f} | | |")
        else:
            print(f"| {name} | {t:.3f} | {base} | {t / times[base]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
