// CompactVocab: mapping on a hand-made stream, round trips, save / load, and the
// refusals of corrupt files.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/text/compact_vocab.hpp"

using lowbit::Error;
namespace fs = std::filesystem;
namespace text = lowbit::text;

TEST_CASE("compact vocab: kept ids sorted, <|endoftext|> kept, everything else unknown") {
  const std::vector<int> train = {1000, 7, 50, 7, 1000, 50};
  const auto v = text::CompactVocab::from_tokens(train);
  CHECK(v.gpt2_ids() == std::vector<int>{7, 50, 1000, 50256});
  CHECK(v.size() == 5);
  CHECK(v.unk_id() == 4);
  CHECK(v.gpt2_vocab_size() == 50257);
  CHECK(v.to_compact(7) == 0);
  CHECK(v.to_compact(50) == 1);
  CHECK(v.to_compact(1000) == 2);
  CHECK(v.to_compact(50256) == 3);
  CHECK(v.to_compact(8) == 4);
  CHECK(v.to_compact(0) == 4);
  CHECK(v.contains(50));
  CHECK_FALSE(v.contains(51));

  const std::vector<int> stream = {50, 50256, 1, 7, 1000, 49999};
  const auto c = v.to_compact(stream);
  CHECK(c == std::vector<int>{1, 3, 4, 0, 2, 4});
  CHECK(v.to_gpt2(c, -1) == std::vector<int>{50, 50256, -1, 7, 1000, -1});
  const std::vector<int> known = {1, 3, 0, 2};
  CHECK(v.to_compact(v.to_gpt2(known)) == known);
  CHECK_THROWS_WITH_AS((void)v.to_gpt2(c), doctest::Contains("unknown token"), Error);
  CHECK_THROWS_WITH_AS((void)v.to_gpt2(5), doctest::Contains("outside [0, 5)"), Error);
  CHECK_THROWS_WITH_AS((void)v.to_compact(50257), doctest::Contains("outside the GPT-2 vocabulary"), Error);
  CHECK_THROWS_WITH_AS((void)v.to_compact(-1), doctest::Contains("outside the GPT-2 vocabulary"), Error);
  CHECK_THROWS_WITH_AS((void)text::CompactVocab::from_tokens(std::vector<int>{3, 60000}),
                       doctest::Contains("training token 1 has id 60000"), Error);

  // A smaller vocabulary with nothing extra kept.
  const auto small = text::CompactVocab::from_tokens(std::vector<int>{3, 1}, 4, {});
  CHECK(small.gpt2_ids() == std::vector<int>{1, 3});
  CHECK(small.to_compact(std::vector<int>{0, 1, 2, 3}) == std::vector<int>{2, 0, 2, 1});
}

TEST_CASE("compact vocab: save and load round-trip; corrupt files are refused with the file named") {
  const fs::path dir = fs::temp_directory_path() / ("lowbit_cvocab_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto v = text::CompactVocab::from_tokens(std::vector<int>{220, 13, 50255, 13});
  const fs::path path = dir / "vocab.json";
  v.save(path);
  const auto back = text::CompactVocab::load(path);
  CHECK(back == v);
  CHECK(back.gpt2_ids() == std::vector<int>{13, 220, 50255, 50256});
  CHECK(back.unk_id() == 4);
  // The file is the documented JSON.
  const auto j = lowbit::io::Json::parse(lowbit::io::read_file(path));
  CHECK(j.at("format").as_string() == "lowbit-compact-vocab-v1");
  CHECK(j.at("unk").as_int64() == 4);
  CHECK(j.at("gpt2_vocab_size").as_int64() == 50257);
  CHECK(j.at("gpt2_ids").size() == 4);
  CHECK(j.at("gpt2_ids")[1].as_int64() == 220);

  const auto refuses = [&](const std::string& body, const char* why) {
    const fs::path bad = dir / "bad.json";
    lowbit::io::write_file_atomic(bad, body);
    INFO("body: ", body);
    try {
      (void)text::CompactVocab::load(bad);
      FAIL("accepted");
    } catch (const Error& e) {
      const std::string m = e.what();
      CHECK(m.find(bad.string()) != std::string::npos);
      CHECK(m.find(why) != std::string::npos);
    }
  };
  const std::string head = R"({"format":"lowbit-compact-vocab-v1","gpt2_vocab_size":50257,)";
  refuses(head + R"("unk":2,"gpt2_ids":[1,2])", "");                              // truncated JSON
  refuses(head + R"("unk":3,"gpt2_ids":[5,3,9]})", "sorted ascending and unique");  // unsorted
  refuses(head + R"("unk":3,"gpt2_ids":[3,3,9]})", "sorted ascending and unique");  // repeated
  refuses(head + R"("unk":2,"gpt2_ids":[3,50257]})", "outside the GPT-2 vocabulary");
  refuses(head + R"("unk":2,"gpt2_ids":[-1,3]})", "outside the GPT-2 vocabulary");
  refuses(head + R"("unk":1,"gpt2_ids":[3,4]})", "unk = 1, expected the number of gpt2_ids (2)");
  refuses(head + R"("unk":2,"gpt2_ids":[3,4.5]})", "gpt2_ids[1] = 4.5 is not an integer");
  refuses(head + R"("unk":2,"gpt2_ids":[3,"4"]})", "gpt2_ids[1] is a string");
  refuses(head + R"("unk":2,"gpt2_ids":[3,99999999999]})", "does not fit an int");
  refuses(head + R"("gpt2_ids":[3,4]})", "missing key \"unk\"");
  refuses(head + R"("unk":"2","gpt2_ids":[3,4]})", "\"unk\" is a string, expected a number");
  refuses(R"({"format":"other","gpt2_vocab_size":50257,"unk":0,"gpt2_ids":[]})", "format is \"other\"");
  refuses(R"({"format":"lowbit-compact-vocab-v1","gpt2_vocab_size":0,"unk":0,"gpt2_ids":[]})",
          "vocabulary size must be positive");
  refuses("[1,2,3]", "expected a JSON object");
  std::error_code ec;
  fs::remove_all(dir, ec);
}
