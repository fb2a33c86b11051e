#!/usr/bin/env python3
"""Markdown tables for docs/results/llama.cpp.md from scripts/llama_cpp_results.sh's output.

  scripts/llama_cpp_results.sh > judge.log; scripts/llama_cpp_table.py judge.log [qaft.log ...]

Per model: each type's file size and the NLL llama.cpp measures for (a) llama.cpp's own
quantizer without an importance matrix (= lowbit's RTN file, tensor for tensor), (b) with
one, (d) lowbit's GPTQ file and (e) lowbit's QAFT file, and the better of (d) and (e)
against (b); then how closely lowbit's evaluator agrees with llama.cpp on every file.
Several logs are merged (a later run of a model adds its lines to the earlier one's).
"""
import re
import sys

line_re = re.compile(r"^(\S+)\s+(\d+) bytes\s+lowbit (\S+) \(float activations (\S+)\)\s+llama\.cpp (\S+)\s+diff (\S+)\s+(\S+)(.*)$")
# the judge's check of the file above it: llama.cpp's own dequantization, scored in F32
dequantized_re = re.compile(r"^dequantized: weights (.*?)\s+llama\.cpp (\S+)\s+lowbit (\S+)\s+diff (\S+)\s+(\S+)$")


def parse(paths):
    models, cur, last = {}, None, None
    for raw in (line for path in paths for line in open(path, encoding="utf-8")):
        raw = raw.strip()
        if raw.startswith("judge ") and raw.endswith(":"):
            cur = raw[len("judge "):-1].rsplit("/", 1)[-1]
            models.setdefault(cur, {})
            continue
        m = dequantized_re.match(raw)
        if m and last is not None:
            last["dequantized"] = dict(same=m.group(1).startswith("="), llama=float(m.group(2)),
                                       lowbit=float(m.group(3)), ok=m.group(5))
            continue
        m = line_re.match(raw)
        if m and cur is not None:
            spec = m.group(1)
            typ, _, how = spec.partition("/")
            last = models[cur][(typ, how or "rtn")] = dict(bytes=int(m.group(2)), lowbit=float(m.group(3)),
                                                   plain=float(m.group(4)), llama=float(m.group(5)),
                                                   diff=float(m.group(6)), ok=m.group(7), same=m.group(8).strip())
    return models


def main():
    models = parse(sys.argv[1:])
    for name, rows in models.items():
        types = []
        for (t, _h) in rows:
            if t not in types:
                types.append(t)
        print(f"\n### {name}\n")
        print("| type | bytes | (a) llama.cpp RTN = lowbit RTN | (b) llama.cpp imatrix | (d) lowbit GPTQ "
              "| (e) lowbit QAFT | best of (d), (e) − (b) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for t in types:
            a, b = rows.get((t, "rtn")), rows.get((t, "llama.cpp-imatrix"))
            d, e = rows.get((t, "gptq")), rows.get((t, "qaft"))
            cell = lambda r: f"{r['llama']:.6f}" if r else ""
            ours = [r["llama"] for r in (d, e) if r]
            delta = f"{min(ours) - b['llama']:+.4f}" if b and ours else ""
            same = "" if not a or not a["same"] or a["same"].startswith("tensors =") else " (differs!)"
            lr = re.search(r"qaft lr (\S+)", e["same"]) if e else None
            qaft = f"{cell(e)} (lr {lr.group(1)})" if lr else cell(e)
            print(f"| {t} | {a['bytes'] if a else ''} | {cell(a)}{same} | {cell(b)} | {cell(d)} | {qaft} | {delta} |")
        ft, f32 = rows.get(("f32", "finetune")), rows.get(("f32", "rtn"))
        if ft and f32:
            lr = re.search(r"fine-tuned lr (\S+)", ft["same"])
            print(f"\nQAFT's control, the F32 model fine-tuned the same way without quantization"
                  f"{' (lr ' + lr.group(1) + ')' if lr else ''}: {ft['llama']:.6f} "
                  f"({ft['llama'] - f32['llama']:+.4f} against F32).")
        diffs = [abs(r["diff"]) for (t, _h), r in rows.items() if t != "f32"]
        plain = [abs(r["llama"] - r["plain"]) for (t, _h), r in rows.items() if t != "f32"]
        if diffs:
            print(f"\nlowbit vs llama.cpp on the {len(diffs)} quantized files: |diff| mean {sum(diffs)/len(diffs):.1e}, "
                  f"max {max(diffs):.1e} with llama.cpp's activation rounding emulated; "
                  f"mean {sum(plain)/len(plain):.1e}, max {max(plain):.1e} with float activations.")
        deq = [r["dequantized"] for r in rows.values() if "dequantized" in r]
        if deq:
            gaps = [abs(x["llama"] - x["lowbit"]) for x in deq]
            print(f"\nThe same weights in F32 (each file dequantized by llama.cpp's quantizer, {len(deq)} files): "
                  f"bit for bit lowbit's decoded weights in {sum(x['same'] for x in deq)}; llama.cpp − lowbit "
                  f"|diff| mean {sum(gaps)/len(gaps):.1e}, max {max(gaps):.1e}.")


if __name__ == "__main__":
    main()
