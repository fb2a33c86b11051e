#!/usr/bin/python3
"""PyTorch 1.13 CPU baseline for benchmarks/bench_pretrain.cpp.

Whole GPT-2 training steps — token + position embedding, L pre-LN blocks (as in
torch_block.py), final LayerNorm, classifier tied to the embedding, cross-entropy,
backward, gradient clipping to norm 1, AdamW — on 16 windows of 128 tokens drawn
from a Zipf-like stream over 21,750 ids, the same work bench_pretrain's
BM_PretrainStep/L/d/heads/128/16/threads does. Prints the median step time and
tokens/s, and the BLAS this torch runs on (install libopenblas0-pthread: Debian's
default generic BLAS makes torch 10-20x slower and is not a fair peer).
Usage: /usr/bin/python3 scripts/bench/torch_pretrain.py [threads...]
       (env SHAPES="4x256x4 6x256x8": layers x dim x heads)
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

V, T, B = 21750, 128, 16


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.d, self.h = d, h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (u.view(b, t, self.h, d // self.h).transpose(1, 2) for u in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.h)
        a = torch.softmax(s.masked_fill(self.mask, float("-inf")), dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, layers, d, h):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
        self.blocks = nn.Sequential(*[Block(d, h) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        return self.ln_f(self.blocks(x)) @ self.wte.weight.t()


def stream(n):
    g = torch.Generator().manual_seed(7)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return (torch.pow(float(V), u).long() - 1).clamp(0, V - 1)


def bench(layers, d, h, steps=8):
    torch.manual_seed(0)
    model = Gpt2(layers, d, h)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    data = stream(1 << 20)
    g = torch.Generator().manual_seed(1)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        starts = torch.randint(0, data.numel() - T - 1, (B,), generator=g)
        batch = torch.stack([data[s:s + T + 1] for s in starts.tolist()])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    threads = [int(a) for a in sys.argv[1:]] or [1, 2]
    shapes = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("SHAPES", "4x256x4").split()]
    print(describe())
    for n in threads:
        for torch_n, blas_n in configurations(n):
            set_threads(torch_n, blas_n)
            for layers, d, h in shapes:
                t = bench(layers, d, h)
                print("threads=%d (torch %d, OpenBLAS %d) layers=%d d=%d heads=%d  %.1f ms/step  %.0f tokens/s"
                      % (n, torch_n, blas_n, layers, d, h, t * 1e3, B * T / t))


if __name__ == "__main__":
    main()
