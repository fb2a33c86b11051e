#!/usr/bin/python3
"""Cross-checks a committed lowbit-pretrained model (models/<name>/) with PyTorch.

Loads the exported Hugging Face folder (config.json + model.safetensors, F16) into
the plain PyTorch GPT-2 forward of scripts/fixtures/gen_hf_checkpoints.py (written
from transformers' GPT2LMHeadModel; transformers is not installed), tokenizes the
test split's first files with the reference GPT-2 encoder (npm gpt-3-encoder@1.1.4,
via node), maps the ids through compact_vocab.json, and scores the first 16 windows
of the model's context. Prints that NLL next to results.json's `test_head16`, which
lowbit computed from the same weights; exits 1 if they differ by more than 1e-4.

    /usr/bin/python3 scripts/check_pretrained_torch.py models/pd-1m [PYTHON_DOCS_ROOT]
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
from gen_hf_checkpoints import gpt2_encode, gpt2_forward, mean_nll  # noqa: E402

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = t.float()
    return out


def main():
    model = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/doc/python3.11/html/_sources"
    cfg = json.load(open(os.path.join(model, "config.json")))
    w = read_safetensors(os.path.join(model, "model.safetensors"))
    vocab = json.load(open(os.path.join(model, "compact_vocab.json")))
    to_compact = {g: i for i, g in enumerate(vocab["gpt2_ids"])}
    unk = vocab["unk"]
    ctx = cfg["n_positions"]
    need = 16 * ctx
    ids = []
    for rel in open(os.path.join(model, "splits", "test.txt")).read().split():
        if len(ids) >= need:
            break
        if ids:
            ids.append(50256)  # <|endoftext|> between files, as encode_python_docs does
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            ids += gpt2_encode(f.read())
    ids = [to_compact.get(i, unk) for i in ids[:need]]
    with torch.no_grad():
        nll, count = mean_nll(lambda win: gpt2_forward(w, cfg, win), ids, ctx)
    want = json.load(open(os.path.join(model, "results.json")))["test_head16"]
    print(f"{model}: PyTorch {torch.__version__} NLL {nll:.6f} over {count} tokens; "
          f"lowbit recorded {want['nll']:.6f} over {want['tokens']}; |diff| {abs(nll - want['nll']):.2e}")
    return 0 if count == want["tokens"] and abs(nll - want["nll"]) <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
