#!/usr/bin/python3
"""PyTorch 1.13 CPU baseline for benchmarks/bench_autograd.cpp.

Forward + backward (loss = output.sum()) of a GPT-2-small block (d=768, 12 heads,
T=256, batch 1; LayerNorm, fused qkv Linear, causal softmax attention, GELU tanh)
and of a 12-block stack, float32, with torch.set_num_threads(N).  Prints the
median time and the model FLOP rate (3 x forward FLOPs, same count as the C++
benchmark).  Usage: /usr/bin/python3 scripts/bench/torch_block.py [threads...]
"""

import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_threads import configurations, describe, set_threads

D, H, T, B = 768, 12, 256, 1


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc, self.out = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        a = torch.softmax(s.masked_fill(self.mask, float("-inf")), dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, D))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


def flops(layers):
    linear = 2 * B * T * (D * 3 * D + D * D + 2 * D * 4 * D)
    attention = 2 * 2 * B * T * T * D
    return 3 * (linear + attention) * layers


def bench(layers, reps):
    torch.manual_seed(0)
    model = nn.Sequential(*[Block() for _ in range(layers)])
    x = torch.randn(B, T, D, requires_grad=True)
    times = []
    for i in range(reps + 2):
        model.zero_grad(set_to_none=False)
        t0 = time.perf_counter()
        model(x).sum().backward()
        if i >= 2:  # two warm-up passes
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    threads = [int(a) for a in sys.argv[1:]] or [1, 2]
    print(describe())
    for n in threads:
        for torch_n, blas_n in configurations(n):
            set_threads(torch_n, blas_n)
            for layers, reps in ((1, 9), (12, 3)):
                t = bench(layers, reps)
                print("threads=%d (torch %d, OpenBLAS %d) layers=%2d  %.1f ms  %.1f GFLOP/s"
                      % (n, torch_n, blas_n, layers, t * 1e3, flops(layers) / t / 1e9))


if __name__ == "__main__":
    main()
