// lowbit — header-only low-bit weight quantization of LLMs. Include this for everything.
#pragma once

#include "lowbit/core/checked.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/fnv1a.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/core/tool_main.hpp"
#include "lowbit/autograd.hpp"
#include "lowbit/gptq.hpp"
#include "lowbit/io.hpp"
#include "lowbit/nn.hpp"
#include "lowbit/quant.hpp"
#include "lowbit/study.hpp"
#include "lowbit/text.hpp"
#include "lowbit/train.hpp"
#include "lowbit/version.hpp"
