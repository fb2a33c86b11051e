// lowbit/analysis: tools for looking at a model's loss and drawing what was measured —
// loss-landscape probes (radial profiles, segments, the basin radius R(w)) and SVG
// plots. The study (lowbit/study) and lowbit_pretrain both use them.
#pragma once

#include "lowbit/analysis/landscape.hpp"
#include "lowbit/analysis/predictor.hpp"
#include "lowbit/analysis/svg_plot.hpp"
