// lowbit/study: the study of Xu et al. (2024) as a library — options, data split,
// QAFT, the units and the runner behind lowbit-study, results and report (the
// landscape probes and plots it draws with are lowbit/analysis).
// Part of <lowbit/lowbit.hpp>: the runner takes its scheme as a run-time QuantSpec.
#pragma once

#include "lowbit/analysis.hpp"
#include "lowbit/study/compare.hpp"
#include "lowbit/study/data.hpp"
#include "lowbit/study/heldout.hpp"
#include "lowbit/study/metrics.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/predict.hpp"
#include "lowbit/study/progress.hpp"
#include "lowbit/study/qaft.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/results_json.hpp"
#include "lowbit/study/runner.hpp"
#include "lowbit/study/setup.hpp"
#include "lowbit/study/unit_context.hpp"
