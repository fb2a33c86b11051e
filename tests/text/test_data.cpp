// WikiText-2 joining and windows, calibration sampling, TinyStories split and
// windows, the NLL tally, and the data-directory lookup.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/text/tinystories.hpp"
#include "lowbit/text/wikitext.hpp"
#include "lowbit/text/windows.hpp"
#include "../io/shared_data.hpp"

using lowbit::Error;
namespace text = lowbit::text;

TEST_CASE("wikitext: Hugging Face rows joined with blank lines") {
  // Rows: "", " = T = \n", "", " body\n"  (whitespace-only lines become "").
  CHECK(text::wikitext_hf_join(" \n = T = \n \n body\n") == "\n\n = T = \n\n\n\n\n body\n");
  CHECK(text::wikitext_hf_join("") == "");
  CHECK(text::wikitext_hf_join("a") == "a");
}

TEST_CASE("windows: evaluation windows are non-overlapping and drop the tail") {
  std::vector<int> t(10);
  std::iota(t.begin(), t.end(), 0);
  const auto w = text::eval_windows(t, 4);
  REQUIRE(w.size() == 2);
  CHECK(w[0].front() == 0);
  CHECK(w[1].front() == 4);
  CHECK(w[1].back() == 7);
  CHECK(text::eval_windows(t, 11).empty());
  CHECK_THROWS_AS((void)text::eval_windows(t, 1), Error);
}

TEST_CASE("windows: calibration sampling is seeded, in range and spread out") {
  std::vector<int> t(1000);
  std::iota(t.begin(), t.end(), 0);
  const auto a = text::calibration_windows(t, 128, 50, 7);
  const auto b = text::calibration_windows(t, 128, 50, 7);
  const auto c = text::calibration_windows(t, 128, 50, 8);
  REQUIRE(a.size() == 128);
  std::set<int> starts;
  bool same = true, differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].size() == 50);
    CHECK(a[i].front() >= 0);
    CHECK(a[i].back() <= 999);
    CHECK(a[i].back() - a[i].front() == 49);
    same = same && a[i].data() == b[i].data();
    differs = differs || a[i].data() != c[i].data();
    starts.insert(a[i].front());
  }
  CHECK(same);
  CHECK(differs);
  CHECK(starts.size() > 100);  // 128 draws from 951 starts rarely collide much
  CHECK(*starts.rbegin() > 600);
  CHECK(*starts.begin() < 300);
  CHECK(text::calibration_windows(t, 3, 1000, 1)[2].front() == 0);  // the only start
  CHECK_THROWS_AS((void)text::calibration_windows(t, 1, 1001, 1), Error);
  const auto [head, tail] = text::split_fraction(t, 0.8);
  CHECK(head.size() == 800);
  CHECK(tail.front() == 800);
}

TEST_CASE("tinystories: stories, split and windows that start with the previous last token") {
  const auto s = text::tinystories_stories(" A story.\n<|endoftext|>\n\nB\n\n<|endoftext|>\n \n<|endoftext|>\nC");
  CHECK(s == std::vector<std::string>{"A story.", "B", "C"});
  CHECK(text::tinystories_calibration.end - text::tinystories_calibration.begin == 128);
  CHECK(text::tinystories_validation.begin == 128);
  CHECK(text::tinystories_test.begin == 166);
  CHECK(text::tinystories_test.end == 246);

  std::vector<int> t(1200);
  std::iota(t.begin(), t.end(), 0);
  const auto w = text::story_windows(t, 512);
  REQUIRE(w.size() == 3);
  CHECK(w[0].size() == 512);
  CHECK(w[1].front() == w[0].back());
  CHECK(w[2].front() == w[1].back());
  CHECK(w[2].back() == 1199);
  std::size_t predicted = 0;
  for (const auto& x : w) predicted += x.size() - 1;
  CHECK(predicted == t.size() - 1);
  CHECK(text::story_windows(std::span<const int>(t).first(512), 512).size() == 1);
  CHECK(text::story_windows(std::span<const int>(t).first(1), 512).empty());
}

TEST_CASE("tinystories: the study's files give the shared README's token counts") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const auto tok = text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", 512);
  for (const auto& [file, stories, predicted] :
       {std::tuple{"TinyStories-valid.head.txt", 46u, 14829u}, std::tuple{"TinyStories-valid.first246.txt", 246u, 106439u}}) {
    const auto s = text::tinystories_stories(lowbit::io::read_file(data / "tinystories" / file));
    CHECK(s.size() == stories);
    std::size_t n = 0, from_windows = 0;
    for (const auto& story : s) {
      const auto ids = text::tinystories_tokens(tok, story);
      CHECK(ids.front() == 1);
      n += ids.size() - 1;
      for (const auto& w : text::story_windows(ids, 512)) {
        CHECK(w.size() <= 512);
        from_windows += w.size() - 1;
      }
    }
    CHECK(n == predicted);
    CHECK(from_windows == predicted);
  }
}

TEST_CASE("nll tally: mean over predicted tokens and perplexity") {
  text::NllTally t;
  t.add(10.0, 4);
  t.add(2.0, 2);
  CHECK(t.tokens() == 6);
  CHECK(t.mean_nll() == doctest::Approx(2.0));
  CHECK(t.perplexity() == doctest::Approx(std::exp(2.0)));
  CHECK_THROWS_AS(t.add(std::nan(""), 1), Error);
  CHECK_THROWS_AS((void)text::NllTally{}.mean_nll(), Error);
}

TEST_CASE("data_dir: flag, then LOWBIT_DATA, then ../shared/data, else a clear error") {
  const auto tmp = std::filesystem::temp_directory_path();
  CHECK(lowbit::io::data_dir(tmp) == tmp);
  CHECK_THROWS_WITH_AS((void)lowbit::io::data_dir(std::filesystem::path("/nonexistent/lowbit")),
                       doctest::Contains("/nonexistent/lowbit"), Error);
  const char* old = std::getenv("LOWBIT_DATA");
  const std::string saved = old ? old : "";
  ::setenv("LOWBIT_DATA", tmp.c_str(), 1);
  CHECK(lowbit::io::data_dir() == tmp);
  ::setenv("LOWBIT_DATA", "/nonexistent/env", 1);
  CHECK_THROWS_WITH_AS((void)lowbit::io::data_dir(), doctest::Contains("LOWBIT_DATA"), Error);
  ::unsetenv("LOWBIT_DATA");
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path("/");
  CHECK_THROWS_WITH_AS((void)lowbit::io::data_dir(), doctest::Contains("LOWBIT_DATA"), Error);
  std::filesystem::current_path(cwd);
  if (old) ::setenv("LOWBIT_DATA", saved.c_str(), 1);
}
