#!/usr/bin/python3
"""Write a Hugging Face Llama checkpoint shaped like TinyLlama-1.1B, with random
weights, for loader / quantizer benchmarks (no pretrained checkpoint can be
downloaded on lowbit's machines).

Defaults give TinyLlama-1.1B's shapes: LlamaForCausalLM, 22 layers, hidden 2048,
intermediate 5632, 32 heads, 4 KV heads, vocab 32000, 2048 positions, RMSNorm eps
1e-5, RoPE theta 10000, untied lm_head (about 1.1e9 parameters, 2.2 GB). Weights
follow the published initialisation (LlamaPreTrainedModel: every Linear and the
embedding normal(0, initializer_range = 0.02), RMSNorm weights 1), rounded from
float32 to BF16 with round-to-nearest-even.

The folder is save_pretrained's sharded layout: config.json,
model-0000i-of-0000N.safetensors (tensors split in state-dict order by a size
limit, the smallest that gives N shards; inside a file, tensors sorted by name and
`__metadata__` {"format": "pt"} first, as safetensors' save_file writes), and
model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map"}); with
--shards 1, a single model.safetensors and no index, as save_pretrained does.

Streaming: every shard's header is written first (all shapes are known), then the
tensors are generated and written one at a time in chunks, so memory stays at
about one chunk. Each tensor has its own random stream, seeded from (--seed, its
name), so its values do not depend on the shard count. Files are written under
temporary names and renamed once everything is written (the index last).

    /usr/bin/python3 scripts/make_tinyllama_shaped.py OUT_DIR            # TinyLlama-1.1B
    /usr/bin/python3 scripts/make_tinyllama_shaped.py OUT_DIR --layers 1 --hidden 4096 \\
        --intermediate 11008 --heads 32 --kv-heads 32 --shards 1     # one Llama-2-7B block
Needs only numpy.
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

import numpy as np

CHUNK = 1 << 24  # elements generated at a time (64 MiB of float32)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--max-positions", type=int, default=2048)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.hidden % a.heads or a.heads % a.kv_heads:
        ap.error("hidden must be a multiple of heads, and heads of kv-heads")
    if a.shards < 1 or a.layers < 1:
        ap.error("need at least one layer and one shard")
    return a


def config(a):
    return {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": a.hidden,
            "initializer_range": 0.02, "intermediate_size": a.intermediate,
            "max_position_embeddings": a.max_positions, "mlp_bias": False, "model_type": "llama",
            "num_attention_heads": a.heads, "num_hidden_layers": a.layers, "num_key_value_heads": a.kv_heads,
            "pretraining_tp": 1, "rms_norm_eps": 1e-5, "rope_scaling": None, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": a.vocab}


def tensors(a):
    """(name, shape, kind) in LlamaForCausalLM's state-dict order; kind 'normal' or 'ones'."""
    d, f, kv = a.hidden, a.intermediate, a.hidden // a.heads * a.kv_heads
    out = [("model.embed_tokens.weight", (a.vocab, d), "normal")]
    for l in range(a.layers):
        p = f"model.layers.{l}."
        out += [(p + "self_attn.q_proj.weight", (d, d), "normal"),
                (p + "self_attn.k_proj.weight", (kv, d), "normal"),
                (p + "self_attn.v_proj.weight", (kv, d), "normal"),
                (p + "self_attn.o_proj.weight", (d, d), "normal"),
                (p + "mlp.gate_proj.weight", (f, d), "normal"),
                (p + "mlp.up_proj.weight", (f, d), "normal"),
                (p + "mlp.down_proj.weight", (d, f), "normal"),
                (p + "input_layernorm.weight", (d,), "ones"),
                (p + "post_attention_layernorm.weight", (d,), "ones")]
    out += [("model.norm.weight", (d,), "ones"), ("lm_head.weight", (a.vocab, d), "normal")]
    return out


def nbytes(shape):
    return 2 * int(np.prod(shape, dtype=np.int64))


def split(specs, n_shards):
    """save_pretrained's rule: a new shard starts when the next tensor would push the
    current one past the limit; the limit is the smallest giving n_shards shards."""
    def run(limit):
        shards, cur, size = [], [], 0
        for s in specs:
            if cur and size + nbytes(s[1]) > limit:
                shards.append(cur)
                cur, size = [], 0
            cur.append(s)
            size += nbytes(s[1])
        return shards + [cur]

    lo, hi = max(nbytes(s[1]) for s in specs), sum(nbytes(s[1]) for s in specs)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if len(run(mid)) > n_shards else (lo, mid)
    shards = run(lo)
    if len(shards) != n_shards:
        sys.exit(f"cannot split {len(specs)} tensors into {n_shards} shards")
    return shards


def to_bf16(x):
    """float32 array -> uint16 BF16 bits, round to nearest even (finite inputs)."""
    u = x.view(np.uint32)
    u += ((u >> 16) & 1) + np.uint32(0x7FFF)
    return (u >> 16).astype(np.uint16)


def write_tensor(f, name, shape, kind, seed):
    n = int(np.prod(shape, dtype=np.int64))
    if kind == "ones":
        f.write(np.full(n, 0x3F80, dtype=np.uint16).data)  # 1.0 in BF16
        return
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    for start in range(0, n, CHUNK):
        x = rng.standard_normal(min(CHUNK, n - start), dtype=np.float32)
        x *= np.float32(0.02)
        f.write(to_bf16(x).data)


def main(argv):
    a = parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    t0 = time.time()
    shards = split(tensors(a), a.shards)
    names = [f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors" for i in range(a.shards)] \
        if a.shards > 1 else ["model.safetensors"]  # save_pretrained writes no index for one file
    final = [(os.path.join(a.out_dir, "config.json"), json.dumps(config(a), indent=2, sort_keys=True) + "\n")]
    weight_map, total = {}, 0
    for fname, shard in zip(names, shards):
        shard = sorted(shard)  # safetensors' save_file orders a file's tensors by name (one dtype)
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, _ in shard:
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes(shape)]}
            off += nbytes(shape)
            weight_map[name] = fname
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        path = os.path.join(a.out_dir, fname)
        with open(path + ".tmp", "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for name, shape, kind in shard:
                write_tensor(f, name, shape, kind, a.seed)
            assert f.tell() == 8 + len(h) + off
        total += off
        print(f"{fname}: {len(shard)} tensors, {off / 1e6:.1f} MB ({time.time() - t0:.1f} s)", flush=True)
    if a.shards > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        final.append((os.path.join(a.out_dir, "model.safetensors.index.json"),
                      json.dumps(index, indent=2, sort_keys=True) + "\n"))
    for path, text in final:
        with open(path + ".tmp", "w") as f:
            f.write(text)
    for fname in names:
        os.replace(os.path.join(a.out_dir, fname + ".tmp"), os.path.join(a.out_dir, fname))
    for path, _ in final:  # config, then the index last: a folder with an index is complete
        os.replace(path + ".tmp", path)
    print(f"{a.out_dir}: {total // 2} parameters, {total / 1e9:.2f} GB in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
