#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets under tests/fuzz/corpus/<name>/.

Every seed is tiny and synthetic (never a copy of real model or tokenizer files),
and the output is deterministic, so rerunning this script reproduces the committed
seeds byte for byte. corpus/safetensors_header/ is hand-made and not written here.

Usage: python3 tests/fuzz/gen_seeds.py
"""
import json
import random
import struct
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "fixtures"))
from safetensors_bytes import safetensors  # noqa: E402  (the one writer of the fixture scripts)


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --- llama2.c checkpoints (io/llama2c.hpp) --------------------------------------

def llama2c_floats(dim, hid, layers, heads, kv, vocab, seq, shared=True):
    """Floats after the 28-byte header, in run.c's layout (RoPE block included)."""
    hs = dim // heads
    q, kvo = heads * hs, kv * hs
    layer = 2 * dim + q * dim + 2 * kvo * dim + dim * q + 3 * hid * dim
    return vocab * dim + layers * layer + dim + seq * hs + (0 if shared else vocab * dim)


def llama2c_header(dim, hid, layers, heads, kv, vocab, seq, shared=True):
    return struct.pack("<7i", dim, hid, layers, heads, kv, vocab if shared else -vocab, seq)


def llama2c(rng, dim, hid, layers, heads, kv, vocab, seq, shared=True):
    n = llama2c_floats(dim, hid, layers, heads, kv, vocab, seq, shared)
    values = [round(rng.uniform(-1, 1), 3) for _ in range(n)]
    return llama2c_header(dim, hid, layers, heads, kv, vocab, seq, shared) + struct.pack(f"<{n}f", *values)


def size_wrap_header():
    """A header whose byte count 28 + 4 * floats is 36 modulo 2^64.

    With head size 2 (dim = 2 * heads) the float count is 2 * Z with
    Z = heads * (vocab + layers * c + 1) + seq, c = 2 + 2 dim + 2 kv_out + 3 hidden;
    Z = 2^61 + 1 makes 4 * floats = 2^64 + 8. seq and vocab absorb the remainders,
    and the largest hidden size that leaves vocab in [1, 2^24] keeps layers small
    (a few thousand, so the header is about the wrap, not about huge layer counts).
    """
    lim = 1 << 24
    heads = kv = 1 << 23
    dim = 2 * heads
    z = (1 << 61) + 1
    seq = z % heads or heads
    w = (z - seq) // heads
    for hid in range(lim, 0, -1):
        c = 2 + 2 * dim + 2 * (kv * 2) + 3 * hid
        layers = (w - 2) // c
        vocab = w - 1 - layers * c
        if 1 <= layers <= lim and 1 <= vocab <= lim:
            args = (dim, hid, layers, heads, kv, vocab, seq)
            assert (28 + 4 * llama2c_floats(*args)) % (1 << 64) == 36
            return llama2c_header(*args)
    raise AssertionError("no wrapping header found")


def llama2c_seeds():
    rng = random.Random(1)
    t = "llama2c_checkpoint"
    shared = llama2c(rng, 8, 16, 2, 2, 2, 16, 4)
    put(t, "valid_shared", shared)
    put(t, "valid_gqa_separate_classifier", llama2c(rng, 8, 16, 2, 2, 1, 16, 4, shared=False))
    put(t, "valid_tiny", llama2c(rng, 4, 2, 1, 2, 1, 3, 1))
    put(t, "truncated_by_one_float", shared[:-4])
    put(t, "truncated_header", shared[:20])
    put(t, "header_only", shared[:28])
    put(t, "extra_byte", shared + b"\0")
    put(t, "odd_head_size", llama2c(rng, 6, 4, 1, 2, 1, 2, 1))
    put(t, "bad_vocab_int32_min", llama2c_header(8, 16, 2, 2, 2, 16, 4)[:20] + struct.pack("<i", -2**31) + struct.pack("<i", 4))
    # Regressions: sizes that wrap 64-bit arithmetic, and a layer count whose
    # tensor list alone would take gigabytes if built before the size check.
    put(t, "regress_size_wrap", size_wrap_header() + struct.pack("<2f", 0.5, -0.5))
    put(t, "regress_huge_layers", llama2c_header(8, 16, 1 << 24, 2, 2, 16, 4))


# --- JSON (io/json.hpp) ---------------------------------------------------------

def json_seeds():
    t = "json"
    put(t, "config_llama", json.dumps({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
        "num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 5,
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": True,
        "torch_dtype": "float32", "vocab_size": 512, "bos_token_id": 1, "eos_token_id": 2,
        "rope_scaling": None}, indent=2))
    put(t, "config_gpt2", json.dumps({
        "activation_function": "gelu_new", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12,
        "layer_norm_epsilon": 1e-5, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}}}))
    put(t, "escapes", r'{"q":"\"\\\/\b\f\n\r\t","u":"\u0000\u001f\u00e9\u4e2d\ud83d\ude00","raw":"é中😀","":""}')
    put(t, "numbers", "[0,-0,1,-1,0.5,-0.25e-3,1E+2,6.02e23,18446744073709551615,-9223372036854775808,"
                      "9223372036854775808,1e999,-1e-999,123456789012345678901234567890]")
    put(t, "deep_nesting", "[" * 256 + "]" * 256)
    put(t, "too_deep", "[" * 258 + "]" * 258)
    put(t, "deep_objects", '{"a":' * 100 + "null" + "}" * 100)
    put(t, "literals", ' \t\r\n[true,false,null,{},[],"x"] \n')
    put(t, "duplicate_key", '{"a":1,"\\u0061":2}')
    put(t, "bad_surrogate", '["\\ud800x"]')
    put(t, "bad_utf8", b'["\xc0\xaf\xed\xa0\x80"]')
    put(t, "trailing_comma", '{"a":[1,2,],}')
    put(t, "safetensors_header", '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}')


# --- quantized safetensors (io/quantized_export.hpp) ------------------------------

def fmt_range(fmt, bits):
    half = 1 << (bits - 1)
    return (-(half - 1), half - 1) if fmt == "int" else (-half, half - 1)


def pack_row(stored, bits):
    """Stored (unsigned) codes as a little-endian bit stream, padding bits zero."""
    acc = 0
    for i, u in enumerate(stored):
        acc |= u << (i * bits)
    return acc.to_bytes((len(stored) * bits + 7) // 8, "little")


def quantized(name, rows, cols, bits, fmt="int", gran="channel", group=None, method="rtn", stored=None,
              meta_override=None):
    """(tensors, metadata) of one quantized weight; stored[r][c] overrides the codes."""
    qmin, qmax = fmt_range(fmt, bits)
    off = 1 << (bits - 1)
    if stored is None:
        span = qmax - qmin + 1
        stored = [[qmin + (r * 7 + c * 3) % span + off for c in range(cols)] for r in range(rows)]
    qweight = b"".join(pack_row(row, bits) for row in stored)
    row_bytes = (cols * bits + 7) // 8
    if gran == "tensor":
        scale_shape = [1]
    elif gran == "channel":
        scale_shape = [rows, 1]
    else:
        scale_shape = [rows, (cols + group - 1) // group]
    n_scales = 1
    for d in scale_shape:
        n_scales *= d
    scales = struct.pack(f"<{n_scales}f", *[0.01 * (i + 1) for i in range(n_scales)])
    k = name + ".lowbit."
    meta = {
        "lowbit.format_version": "1", "format": "pt",
        k + "bits": str(bits), k + "format": fmt, k + "granularity": gran,
        k + "group_size": str(group if gran == "group" else cols), k + "method": method,
        k + "shape": f"{rows},{cols}", k + "qmin": str(qmin), k + "qmax": str(qmax), k + "code_offset": str(off),
    }
    meta.update({k + key: v for key, v in (meta_override or {}).items()})
    tensors = [(name + ".qweight", "U8", [rows, row_bytes], qweight), (name + ".scales", "F32", scale_shape, scales)]
    return tensors, meta


def quantized_file(*weights, extra=()):
    tensors, meta = list(extra), {}
    for t, m in weights:
        tensors += t
        meta.update(m)
    return safetensors(tensors, meta)


def quantized_seeds():
    t = "quantized"
    w = "model.layers.0.mlp.down_proj.weight"
    put(t, "valid_int4_channel", quantized_file(quantized(w, 3, 5, 4)))
    put(t, "valid_int3_group", quantized_file(quantized(w, 2, 10, 3, gran="group", group=4, method="gptq")))
    put(t, "valid_int8_tensor", quantized_file(quantized(w, 2, 3, 8, fmt="int_full", gran="tensor")))
    put(t, "valid_int2_gptq_group", quantized_file(quantized(w, 4, 7, 2, fmt="gptq", gran="group", group=3)))
    bias = ("model.norm.weight", "F32", [2], struct.pack("<2f", 1.0, 0.5))
    put(t, "valid_two_weights", quantized_file(quantized("a.weight", 2, 4, 6), quantized(
        "b.weight", 3, 6, 5, gran="group", group=4, method="qaft"), extra=[bias]))
    put(t, "bad_padding", quantized_file(quantized(w, 1, 3, 4, stored=[[8, 8, 8 | (1 << 4)]])))
    bad_version = quantized(w, 2, 2, 4)
    bad_version[1]["lowbit.format_version"] = "2"
    put(t, "bad_version", quantized_file(bad_version))
    put(t, "bad_qmin", quantized_file(quantized(w, 2, 2, 4, meta_override={"qmin": "-8"})))
    put(t, "bad_bits", quantized_file(quantized(w, 2, 2, 4, meta_override={"bits": "9"})))
    # Regressions. A 2^62-column shape: its packed row size overflows 64 bits.
    tensors, meta = quantized(w, 1, 2, 4)
    meta[w + ".lowbit.shape"] = "1,4611686018427387904"
    meta[w + ".lowbit.group_size"] = "4611686018427387904"
    put(t, "regress_shape_2pow62", quantized_file((tensors, meta)))
    # Narrow int4 ("int", codes -7..7): a stored nibble 0 is the code -8 < qmin.
    put(t, "regress_code_below_qmin", quantized_file(quantized(w, 1, 2, 4, stored=[[0, 9]])))
    # A group size on a per-channel weight (the writer stores cols there).
    put(t, "regress_group_size_on_channel", quantized_file(quantized(w, 2, 4, 4, meta_override={"group_size": "2"})))


# --- llama2.c tokenizers (text/llama2c_tokenizer.hpp) -----------------------------

TOK_EXTRA = [" ", "a", "b", "c", "e", "h", "i", "n", "o", "r", "s", "t", "u", "m", "p", "d", "y", ",",
             "\u4e2d", "ab", " a", "th", "he", "the", " the", "on", "ce", "On", "Once", " u", "up", "upon", " upon",
             " t", "ti", "im", "me", "time", " time", "in", " tin", "iny", " tiny", "bi", "ird", " bird",
             "sa", "aid", " said", " hi", "hi"]


def llama2c_tokenizer(pieces, scores, max_len=None):
    raw = [p.encode() for p in pieces]
    out = struct.pack("<i", max_len if max_len is not None else max(len(r) for r in raw))
    for r, s in zip(raw, scores):
        out += struct.pack("<fi", s, len(r)) + r
    return out


def base_pieces():
    return ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]


def with_text(file, text):
    """The fuzz target's layout: file, text, one byte with the text's length."""
    t = text.encode()
    assert len(t) < 256
    return file + t + bytes([len(t)])


def llama2c_tokenizer_seeds():
    t = "llama2c_tokenizer"
    pieces = base_pieces() + TOK_EXTRA
    # sentencepiece-like scores: byte tokens 0, then later (longer) pieces score lower.
    scores = [0.0] * 259 + [-float(i) for i in range(len(TOK_EXTRA))]
    good = llama2c_tokenizer(pieces, scores)
    put(t, "valid_small", with_text(good, "Once upon a time, a tiny bird said hi"))
    put(t, "valid_empty_text", with_text(good, ""))
    put(t, "valid_bytes_text", with_text(good, "\u4e2d\u00e9 \U0001F600 x"))
    put(t, "valid_ties", with_text(llama2c_tokenizer(pieces, [0.0] * len(pieces)), "the the tiny time"))
    put(t, "valid_duplicate_pieces", with_text(llama2c_tokenizer(pieces + ["ab", " the"], scores + [5.0, 6.0]),
                                               "ab the"))
    put(t, "valid_longer_max_len", with_text(llama2c_tokenizer(pieces, scores, max_len=64), "upon"))
    put(t, "no_space_token", with_text(llama2c_tokenizer([p for p in pieces if p != " "], scores[:-1]), "a"))
    put(t, "too_few_tokens", with_text(llama2c_tokenizer(base_pieces()[:-1], [0.0] * 258), "a"))
    put(t, "truncated", with_text(good[:-3], "a"))
    put(t, "long_piece", with_text(llama2c_tokenizer(pieces, scores, max_len=3), "a"))
    # Regressions: run.c merges a pair only when it scores above -1e10 (its starting
    # best), so "ab" scored -2e10 or NaN must stay "a" "b"; the heap encoder merged it.
    ab = pieces.index("ab")
    for name, score in (("regress_merge_score_below_floor", -2e10), ("regress_merge_score_nan", float("nan"))):
        low = list(scores)
        low[ab] = score
        put(t, name, with_text(llama2c_tokenizer(pieces, low), "ab cab"))


# --- GPT-2 BPE (text/gpt2_bpe.hpp) ----------------------------------------------

def byte_chars():
    """GPT-2's byte → printable character map (encoder.py's bytes_to_unicode)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    m, extra = {}, 0
    for b in range(256):
        if b in keep:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + extra)
            extra += 1
    return m


def gpt2_mapped(s):
    m = byte_chars()
    return "".join(m[b] for b in s.encode())


GPT2_MERGES = [("h", "e"), ("l", "l"), ("o", "r"), (" ", "t"), (" t", "he"), (" ", "w"), (" w", "or"),
               ("l", "d"), (" wor", "ld"), ("he", "ll"), ("hell", "o"), ("'", "s"), ("e", "s"), ("t", "es"),
               ("tes", "t"), (" ", "a"), ("a", "b"), ("1", "2"), ("\n", "\n"), (" ", " ")]


def gpt2_vocab(merges, eos=True, extra_tokens=()):
    vocab = {}
    for b in range(256):
        vocab[byte_chars()[b]] = b
    for a, b in merges:
        vocab.setdefault(gpt2_mapped(a + b), len(vocab))
    for tok in extra_tokens:
        vocab.setdefault(tok, len(vocab))
    if eos:
        vocab["<|endoftext|>"] = len(vocab)
    return json.dumps(vocab, ensure_ascii=False)


def gpt2_merges(merges, eol="\n"):
    lines = ["#version: 0.2"] + [gpt2_mapped(a) + " " + gpt2_mapped(b) for a, b in merges]
    return eol.join(lines) + eol


def gpt2_input(vocab, merges, text):
    return vocab.encode() + b"\0" + merges.encode() + b"\0" + text.encode()


def gpt2_seeds():
    t = "gpt2_bpe"
    vocab, merges = gpt2_vocab(GPT2_MERGES), gpt2_merges(GPT2_MERGES)
    put(t, "valid_small", gpt2_input(vocab, merges, "hello world's test 12  ab\n\n"))
    put(t, "valid_empty_text", gpt2_input(vocab, merges, ""))
    put(t, "valid_unicode_text", gpt2_input(vocab, merges, "caf\u00e9 \u4e2d\u6587 \U0001F600 \u00a0 x"))
    put(t, "valid_crlf_no_eos", gpt2_input(gpt2_vocab(GPT2_MERGES, eos=False), gpt2_merges(GPT2_MERGES, "\r\n"),
                                           "the world"))
    put(t, "valid_escaped_json", gpt2_input(json.dumps(json.loads(vocab)), merges, "hello"))
    put(t, "missing_merge_token", gpt2_input(vocab, merges + "x q\n", "x"))
    put(t, "repeated_merge", gpt2_input(vocab, merges + "h e\n", "he"))
    put(t, "no_merges", gpt2_input(vocab, "#version: 0.2\n", "he"))
    ids = json.loads(vocab)
    ids["h"] = 0
    put(t, "repeated_id", gpt2_input(json.dumps(ids, ensure_ascii=False), merges, "h"))
    put(t, "missing_byte", gpt2_input(json.dumps({"a": 0}), "a a\n", "a"))


# --- GGUF (io/gguf.hpp) -----------------------------------------------------------

def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_file(kvs, tensors, alignment=32, version=3):
    """kvs: [(key, type id, value bytes)]; tensors: [(name, ne, ggml type, data)]."""
    head = struct.pack("<IIQQ", 0x46554747, version, len(tensors), len(kvs))
    for key, t, value in kvs:
        head += gguf_string(key) + struct.pack("<I", t) + value
    offset, body = 0, b""
    for name, ne, t, data in tensors:
        head += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", t, offset)
        padded = data + b"\0" * ((-len(data)) % alignment)
        body += padded
        offset += len(padded)
    return head + b"\0" * ((-len(head)) % alignment) + body


def gguf_seeds():
    t = "gguf"
    arch = ("general.architecture", 8, gguf_string("llama"))
    vocab = ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + b"".join(gguf_string(x) for x in ["a", "b", "c"]))
    scores = ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0.0, -1.0, -2.0))
    f32 = ("tok.f32", [4, 2], 0, struct.pack("<8f", *[0.5 * i for i in range(8)]))
    q8 = ("w.q8_0", [32, 1], 8, struct.pack("<e", 0.25) + bytes(range(32)))
    put(t, "valid_f32", gguf_file([arch], [f32]))
    put(t, "valid_mixed", gguf_file([arch, vocab, scores], [f32, q8]))
    put(t, "valid_aligned_64", gguf_file([arch, ("general.alignment", 4, struct.pack("<I", 64))], [f32, q8], 64))
    put(t, "valid_empty", gguf_file([], []))
    put(t, "version_2", gguf_file([arch], [f32], version=2))
    put(t, "truncated", gguf_file([arch], [f32, q8])[:-20])
    put(t, "bad_type", gguf_file([("x", 13, b"")], []))


# --- GPTQ checkpoints (io/gptq_checkpoint.hpp) --------------------------------------

def gptq_linear(name, bits, inp, out, group, zero=None, g_idx=None, scale_dtype="F16"):
    """The four tensors of one packed linear: codes k % 2^bits, zero points `zero`
    (default 2^(bits-1)), scales 0.01·(1 + o/out), g_idx c // group (or `g_idx`)."""
    maxq = (1 << bits) - 1
    groups = 1 if group <= 0 else -(-inp // group)
    zero = (1 << (bits - 1)) if zero is None else zero

    def pack(values, count):  # a stream of `bits`-bit values, low bits first, into 32-bit words
        words, acc, nbits = [], 0, 0
        for v in values[:count]:
            acc |= (v & maxq) << nbits
            nbits += bits
            while nbits >= 32:
                words.append(acc & 0xFFFFFFFF)
                acc >>= 32
                nbits -= 32
        return words

    qweight = []  # [inp*bits/32, out]: column o packs input rows c
    cols = [pack([(c * 7 + o) % (maxq + 1) for c in range(inp)], inp) for o in range(out)]
    for r in range(inp * bits // 32):
        qweight += [cols[o][r] for o in range(out)]
    qzeros = []
    for g in range(groups):
        qzeros += pack([zero - 1] * out, out)
    scales = [0.01 * (1 + o / out) for g in range(groups) for o in range(out)]
    g_idx = g_idx or [c // group if group > 0 else 0 for c in range(inp)]
    fmt = {"F16": "e", "F32": "f"}[scale_dtype]
    return [
        (name + ".qweight", "I32", [inp * bits // 32, out], struct.pack("<%dI" % len(qweight), *qweight)),
        (name + ".qzeros", "I32", [groups, out * bits // 32], struct.pack("<%dI" % len(qzeros), *qzeros)),
        (name + ".scales", scale_dtype, [groups, out], struct.pack("<%d%s" % (len(scales), fmt), *scales)),
        (name + ".g_idx", "I32", [inp], struct.pack("<%di" % inp, *g_idx)),
    ]


def gptq_checkpoint_seeds():
    t = "gptq_checkpoint"
    # Byte 0 chooses the bits (index into 2, 3, 4, 8), byte 1 the group size (-1, 16, 32, 64, 128).
    w = "model.layers.0.self_attn.q_proj"
    put(t, "valid_int4_g16", bytes([2, 1]) + safetensors(gptq_linear(w, 4, 32, 32, 16)))
    put(t, "valid_int3_g32", bytes([1, 2]) + safetensors(gptq_linear(w, 3, 64, 32, 32)))
    put(t, "valid_int2_channel", bytes([0, 0]) + safetensors(gptq_linear(w, 2, 32, 32, -1)))
    put(t, "valid_int8_g16_f32_scales", bytes([3, 1]) + safetensors(gptq_linear(w, 8, 32, 32, 16, scale_dtype="F32")))
    put(t, "act_order", bytes([2, 1]) + safetensors(gptq_linear(w, 4, 32, 32, 16, g_idx=[(c * 5) % 2 for c in range(32)])))
    put(t, "bad_g_idx", bytes([2, 1]) + safetensors(gptq_linear(w, 4, 32, 32, 16, g_idx=[7] * 32)))
    put(t, "wrong_bits", bytes([3, 1]) + safetensors(gptq_linear(w, 4, 32, 32, 16)))


if __name__ == "__main__":
    llama2c_seeds()
    json_seeds()
    quantized_seeds()
    llama2c_tokenizer_seeds()
    gpt2_seeds()
    gguf_seeds()
    gptq_checkpoint_seeds()
