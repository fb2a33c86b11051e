// lowbit/study: the study of Xu et al. (2024) as a library — options, data split,
// QAFT, the runner behind lowbit-study, landscape probes, results and report.
// Part of <lowbit/lowbit.hpp>: the runner takes its scheme as a run-time QuantSpec.
#pragma once

#include "lowbit/study/data.hpp"
#include "lowbit/study/landscape.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/progress.hpp"
#include "lowbit/study/qaft.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/results_json.hpp"
#include "lowbit/study/runner.hpp"
#include "lowbit/study/svg_plot.hpp"
