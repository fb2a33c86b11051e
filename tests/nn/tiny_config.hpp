// The tiny transformer shape the nn tests build with random weights: 2 blocks,
// d = 16, 4 heads (2 key/value heads for Llama), vocabulary 23, context 12.
#pragma once

#include "lowbit/nn/config.hpp"

namespace lowbit::test {

inline nn::TransformerConfig tiny_config(nn::Architecture arch) {
  nn::TransformerConfig c;
  c.arch = arch;
  c.dim = 16;
  c.hidden = 40;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = arch == nn::Architecture::gpt2 ? 4 : 2;
  c.vocab = 23;
  c.context = 12;
  c.tied_head = arch == nn::Architecture::gpt2;
  return c;
}

}  // namespace lowbit::test
