// lowbit-study's flags: defaults, parsing, and a clear UsageError for each mistake.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lowbit/study/options.hpp"

using namespace lowbit::study;

TEST_CASE("study options: the study's defaults and a full command line") {
  const auto d = parse_study_options({});
  CHECK(d.bits == std::vector<int>{8, 6, 4, 3, 2});
  CHECK(d.calib == 128);
  CHECK(d.scheme.str() == "int4:hist");
  CHECK(d.scheme.granularity == lowbit::ScaleLayout::Kind::tensor);
  CHECK(d.damp_grid.size() == 8);
  // The paper's QAFT: 8 epochs, one sequence a step (1,024 steps over 128 sequences),
  // the four learning rates 1e-6 … 1e-3, linear decay to a tenth.
  CHECK(d.qaft_epochs == 8);
  CHECK(d.qaft_batch == 1);
  CHECK(d.lr_grid == std::vector<double>{1e-6, 1e-5, 1e-4, 1e-3});
  CHECK(d.lr_decay == doctest::Approx(0.1));
  const auto o = parse_study_options({"--bits", "4,2", "--methods", "gptq,qaft", "--granularity", "group:64",
                                      "--scale", "hist-true", "--damp-grid", "1e-2:1e1", "--lr-grid", "1e-5,1e-4",
                                      "--calib", "16", "--seq-len", "256", "--seed", "7", "--threads", "2",
                                      "--landscape", "--save", "--out", "/tmp/x"});
  CHECK(o.bits == std::vector<int>{4, 2});
  CHECK(o.methods == std::vector<Method>{Method::gptq, Method::qaft});
  CHECK(o.scheme.str() == "int4:g64:hist-true");
  REQUIRE(o.damp_grid.size() == 4);
  CHECK(o.damp_grid.front() == doctest::Approx(1e-2));
  CHECK(o.damp_grid.back() == doctest::Approx(10.0));
  CHECK(o.lr_grid == std::vector<double>{1e-5, 1e-4});
  CHECK(o.seed == 7);
  CHECK(o.landscape);
  CHECK(o.save);
  const auto q = parse_study_options({"--quick"});
  CHECK(q.bits.size() < d.bits.size());
  CHECK(q.damp_grid.size() < d.damp_grid.size());
  CHECK(q.qaft_epochs == 1);
  CHECK(q.qaft_batch == 8);
  const auto q3 = parse_study_options({"--quick", "--qaft-epochs", "3", "--qaft-batch", "2"});
  CHECK(q3.qaft_epochs == 3);
  CHECK(q3.qaft_batch == 2);
}

TEST_CASE("study options: each mistake names the flag") {
  const auto message = [](std::vector<std::string> args) {
    try {
      (void)parse_study_options(args);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message({"--bits", "4,9"}).find("--bits 4,9: bit widths must be 2..8") == 0);
  CHECK(message({"--bits", "four"}).find("--bits") == 0);
  CHECK(message({"--methods", "rtn,awq"}).find("--methods") == 0);
  CHECK(message({"--granularity", "group:0"}).find("--granularity") == 0);
  CHECK(message({"--granularity", "row"}).find("--granularity") == 0);
  CHECK(message({"--scale", "max"}).find("--scale") == 0);
  CHECK(message({"--calib", "-3"}).find("--calib") == 0);
  CHECK(message({"--calib"}).find("--calib") == 0);
  CHECK(message({"--damp-grid", "1e4:1e-3"}).find("--damp-grid") == 0);
  CHECK(message({"--lr-grid", "1e-4,0"}).find("--lr-grid") == 0);
  CHECK(message({"--lr-decay", "2"}).find("--lr-decay") == 0);
  CHECK(message({"--frobnicate"}).find("--frobnicate") == 0);
  // --streaming holds one block at a time: what needs the whole model is refused.
  CHECK(message({"--streaming", "--methods", "rtn,qaft"}).find("--methods qaft: QAFT trains the whole model") == 0);
  CHECK(message({"--streaming", "--landscape"}).find("--landscape with --streaming:") == 0);
  CHECK(message({"--streaming", "--save"}).find("--save with --streaming:") == 0);
}

TEST_CASE("study options: --streaming runs RTN and GPTQ unless told otherwise") {
  const auto o = parse_study_options({"--streaming"});
  CHECK(o.streaming);
  CHECK(o.methods == std::vector<Method>{Method::rtn, Method::gptq});
  CHECK(parse_study_options({"--streaming", "--quick", "--methods", "gptq"}).methods == std::vector<Method>{Method::gptq});
  CHECK(!parse_study_options({}).streaming);
}

TEST_CASE("study options: --heldout needs the weights --landscape keeps, and not --streaming") {
  CHECK(parse_study_options({"--heldout", "--landscape"}).heldout);
  CHECK(!parse_study_options({}).heldout);
  CHECK_THROWS_WITH_AS(parse_study_options({"--heldout"}), doctest::Contains("--heldout without --landscape"), UsageError);
  CHECK_THROWS_WITH_AS(parse_study_options({"--streaming", "--heldout"}), doctest::Contains("--heldout with --streaming"),
                       UsageError);
}

TEST_CASE("study options: a llama.cpp block format is one bit width with llama.cpp's own scales") {
  const auto k = parse_study_options({"--scheme", "q4_k"});
  CHECK(k.scheme.is_block());
  CHECK(k.bits == std::vector<int>{4});
  CHECK(parse_study_options({"--scheme", "q2_k"}).bits == std::vector<int>{2});
  CHECK(parse_study_options({"--scheme", "tq2_0", "--bits", "2"}).bits == std::vector<int>{2});
  CHECK(parse_study_options({"--scheme", "q8_0", "--quick"}).bits == std::vector<int>{8});
  using V = std::vector<std::string>;
  for (const auto& [args, flag] : {std::pair{V{"--scheme", "q4_k", "--bits", "3"}, "--bits 3: does not apply to q4_k, which has 4 bits"},
                                   std::pair{V{"--scheme", "q4_0", "--save"}, "--save with --scheme q4_0"},
                                   std::pair{V{"--scheme", "q4_0", "--granularity", "channel"}, "--granularity with --scheme q4_0"},
                                   std::pair{V{"--scheme", "q3_k", "--scale", "mse"}, "--scale with --scheme q3_k"},
                                   std::pair{V{"--scheme", "q4_k", "--streaming"}, "--streaming with --scheme q4_k"}}) {
    INFO(flag);
    CHECK_THROWS_WITH_AS(parse_study_options(args), doctest::Contains(flag), UsageError);
  }
}
