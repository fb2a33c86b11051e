// lowbit text: GPT-2 BPE and llama2.c tokenizers, WikiText-2, TinyStories and the
// Python-docs corpus, compact vocabularies, the unigram baseline.
#pragma once

#include "lowbit/text/compact_vocab.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"
#include "lowbit/text/python_docs.hpp"
#include "lowbit/text/tinystories.hpp"
#include "lowbit/text/unigram.hpp"
#include "lowbit/text/utf8.hpp"
#include "lowbit/text/wikitext.hpp"
#include "lowbit/text/windows.hpp"
