// Python-docs corpus: listing, split python-docs-split-v1 and fingerprint on
// synthetic folders, checked against the documented hash computed here
// independently; GPT-2 streams; and, when python3.11-doc is installed, the real
// corpus against figures computed by scripts/fixtures/gen_python_docs_fixtures.py
// (os.walk + the reference JS GPT-2 encoder + Python arithmetic).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/text/compact_vocab.hpp"
#include "lowbit/text/python_docs.hpp"
#include "lowbit/text/unigram.hpp"
#include "../io/shared_data.hpp"
#include "text_fixture.hpp"

using lowbit::Error;
namespace fs = std::filesystem;
namespace text = lowbit::text;

namespace {

// FNV-1a 64 written out again from its definition (not the library's function).
std::uint64_t reference_fnv(const std::string& s, std::uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

const char* reference_split(const std::string& rel) {
  const auto b = reference_fnv(rel) % 100;
  return b < 90 ? "train" : b < 95 ? "validation" : "test";
}

struct TempDir {
  fs::path path;
  explicit TempDir(const char* tag) {
    path = fs::temp_directory_path() / ("lowbit_" + std::string(tag) + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    lowbit::io::write_file_atomic(path / rel, text);
  }
};

}  // namespace

TEST_CASE("python docs: FNV-1a 64 matches the published test vectors") {
  CHECK(text::fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(text::fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(text::fnv1a64("foobar") == 0x85944171f73967e8ull);
  // Hashing in pieces continues the same hash.
  CHECK(text::fnv1a64("bar", text::fnv1a64("foo")) == text::fnv1a64("foobar"));
}

TEST_CASE("python docs: the split follows the documented hash, with the documented fractions") {
  // 20,000 synthetic paths: every one in the split the hash says, and the counts
  // within binomial bounds (5 sigma) of 90 / 5 / 5 %.
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 20000; ++i) {
    const std::string rel = "lib" + std::to_string(i % 7) + "/module_" + std::to_string(i) + ".rst.txt";
    const text::Split s = text::python_docs_split_of(rel);
    CHECK(std::string(text::split_name(s)) == reference_split(rel));
    ++counts[static_cast<int>(s)];
  }
  CHECK(std::abs(counts[0] - 18000) < 5 * std::sqrt(20000 * 0.9 * 0.1));
  CHECK(std::abs(counts[1] - 1000) < 5 * std::sqrt(20000 * 0.05 * 0.95));
  CHECK(std::abs(counts[2] - 1000) < 5 * std::sqrt(20000 * 0.05 * 0.95));
  // Buckets at the boundaries: find paths hashing to 89, 90, 94, 95 and check each side.
  std::set<std::uint64_t> found;
  for (int i = 0; found.size() < 4 && i < 100000; ++i) {
    const std::string rel = "b/" + std::to_string(i) + ".rst.txt";
    const auto b = reference_fnv(rel) % 100;
    if ((b == 89 || b == 90 || b == 94 || b == 95) && found.insert(b).second) {
      const text::Split want = b == 89 ? text::Split::train : b < 95 ? text::Split::validation : text::Split::test;
      CHECK(text::python_docs_split_of(rel) == want);
    }
  }
  CHECK(found.size() == 4);
}

TEST_CASE("python docs: listing of a synthetic folder is recursive, filtered, sorted and split by path") {
  TempDir dir("pydocs_list");
  std::set<std::string> expected;
  for (int i = 0; i < 120; ++i) {
    const std::string rel = (i % 3 == 0 ? "library/" : i % 3 == 1 ? "c-api/deep/" : "") + std::string("f") +
                            std::to_string(i) + ".rst.txt";
    dir.write(rel, "Title " + std::to_string(i) + "\n=====\n");
    expected.insert(rel);
  }
  dir.write("notes.txt", "not a source");
  dir.write("library/x.rst", "not a source either");
  dir.write("library/x.rst.txt.bak", "backup");
  fs::create_directories(dir.path / "weird.rst.txt");  // a directory, not a file

  const auto docs = text::PythonDocs::open(dir.path);
  REQUIRE(docs.files().size() == expected.size());
  std::vector<std::string> sorted(expected.begin(), expected.end());  // std::set sorts byte-wise too
  std::size_t per_split[3] = {0, 0, 0};
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const auto& f = docs.files()[i];
    CHECK(f.relative_path == sorted[i]);
    CHECK(std::string(text::split_name(f.split)) == reference_split(f.relative_path));
    CHECK(f.size == fs::file_size(dir.path / f.relative_path));
    ++per_split[static_cast<int>(f.split)];
  }
  std::size_t total = 0;
  for (const text::Split s : {text::Split::train, text::Split::validation, text::Split::test}) {
    const auto part = docs.files(s);
    CHECK(part.size() == per_split[static_cast<int>(s)]);
    for (const auto& f : part) CHECK(f.split == s);
    total += part.size();
  }
  CHECK(total == expected.size());

  // Deterministic, and a file keeps its split when others are added.
  const auto again = text::PythonDocs::open(dir.path);
  CHECK(again.fingerprint() == docs.fingerprint());
  dir.write("library/new_module.rst.txt", "new");
  const auto grown = text::PythonDocs::open(dir.path);
  CHECK(grown.files().size() == expected.size() + 1);
  for (const auto& f : grown.files())
    if (f.relative_path != "library/new_module.rst.txt")
      CHECK(std::string(text::split_name(f.split)) == reference_split(f.relative_path));
}

TEST_CASE("python docs: the fingerprint is the documented hash and changes with any file") {
  TempDir dir("pydocs_fp");
  dir.write("b.rst.txt", "beta\n");
  dir.write("a/z.rst.txt", "zeta zeta\n");
  dir.write("a.rst.txt", "");
  const auto docs = text::PythonDocs::open(dir.path);
  // Path order: "a.rst.txt" < "a/z.rst.txt" ('.' < '/') < "b.rst.txt".
  std::string bytes;
  for (const auto& [rel, body] : std::vector<std::pair<std::string, std::string>>{
           {"a.rst.txt", ""}, {"a/z.rst.txt", "zeta zeta\n"}, {"b.rst.txt", "beta\n"}}) {
    bytes += rel;
    bytes += '\0';
    bytes += std::to_string(body.size());
    bytes += '\0';
    bytes += body;
  }
  const std::uint64_t fp = reference_fnv(bytes);
  CHECK(docs.fingerprint() == fp);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fp));
  CHECK(docs.fingerprint_hex() == hex);

  dir.write("b.rst.txt", "bet4\n");  // same size, other bytes
  CHECK(text::PythonDocs::open(dir.path).fingerprint() != fp);
  dir.write("b.rst.txt", "beta\n");
  CHECK(text::PythonDocs::open(dir.path).fingerprint() == fp);
  fs::rename(dir.path / "b.rst.txt", dir.path / "c.rst.txt");
  CHECK(text::PythonDocs::open(dir.path).fingerprint() != fp);
  fs::rename(dir.path / "c.rst.txt", dir.path / "b.rst.txt");
  dir.write("d.rst.txt", "");
  CHECK(text::PythonDocs::open(dir.path).fingerprint() != fp);

  // A file edited after listing is refused rather than silently read.
  dir.write("a/z.rst.txt", "zeta zeta zeta\n");
  CHECK_THROWS_WITH_AS((void)docs.fingerprint(), doctest::Contains("changed since it was listed"), Error);
}

TEST_CASE("python docs: a missing or empty corpus folder is a clear error") {
  const fs::path missing = fs::temp_directory_path() / ("lowbit_no_such_docs_" + std::to_string(::getpid()));
  try {
    (void)text::PythonDocs::open(missing);
    FAIL("no error for a missing folder");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find(missing.string()) != std::string::npos);
    CHECK(m.find("apt-get install python3.11-doc") != std::string::npos);
  }
  TempDir empty("pydocs_empty");
  empty.write("readme.txt", "no sources here");
  CHECK_THROWS_WITH_AS((void)text::PythonDocs::open(empty.path), doctest::Contains("holds no *.rst.txt files"), Error);
}

TEST_CASE("python docs: a split's stream is its files' GPT-2 ids joined by <|endoftext|>") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const auto tok = text::Gpt2Tokenizer::from_dir(data / "gpt2-bpe");
  TempDir dir("pydocs_enc");
  for (int i = 0; i < 60; ++i) {
    std::string rel = "d", body;
    rel.append(std::to_string(i % 4)).append("/page").append(std::to_string(i)).append(".rst.txt");
    if (i % 11 != 5) body.append(":mod:`os` --- page ").append(std::to_string(i)).append("\n\n  Use ``os.path``.\n");
    dir.write(rel, body);  // every 11th file empty
  }
  const auto docs = text::PythonDocs::open(dir.path);
  for (const text::Split s : {text::Split::train, text::Split::validation, text::Split::test}) {
    std::vector<int> want;
    bool first = true;
    for (const auto& f : docs.files(s)) {
      if (!first) want.push_back(50256);
      first = false;
      const auto ids = tok.encode(lowbit::io::read_file(dir.path / f.relative_path));
      want.insert(want.end(), ids.begin(), ids.end());
    }
    INFO("split ", text::split_name(s));
    CHECK(text::encode_python_docs(docs, s, tok, 1) == want);
    CHECK(text::encode_python_docs(docs, s, tok, 3) == want);  // independent of threads
  }
}

TEST_CASE("python docs: the installed corpus matches the reference figures") {
  const fs::path root(text::python_docs_default_root);
  if (!fs::is_directory(root)) {
    MESSAGE("skipped: ", root.string(), " not found (apt-get install python3.11-doc, or scripts/deps.sh)");
    return;
  }
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const lowbit::test::TextFixture fx("text/python_docs.txt");
  const auto docs = text::PythonDocs::open(root);
  if (docs.fingerprint_hex() != fx.summary.at("fingerprint")[0]) {
    MESSAGE("skipped: installed python3.11-doc has fingerprint ", docs.fingerprint_hex(), ", the reference figures are for ",
            fx.summary.at("fingerprint")[0], " (rerun scripts/fixtures/gen_python_docs_fixtures.py)");
    return;
  }
  CHECK(docs.files().size() == std::stoul(fx.summary.at("files")[0]));
  const auto tok = text::Gpt2Tokenizer::from_dir(data / "gpt2-bpe");
  const auto checksum = [](const std::vector<int>& ids) {
    const std::uint64_t p = (1ull << 61) - 1;
    std::uint64_t c = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) c = (c + static_cast<std::uint64_t>(ids[i]) * (i + 1)) % p;
    return c;
  };
  std::vector<int> streams[3];
  for (const text::Split s : {text::Split::train, text::Split::validation, text::Split::test}) {
    const auto& want = fx.summary.at(std::string("split_") + text::split_name(s));
    const auto files = docs.files(s);
    std::uintmax_t bytes = 0;
    for (const auto& f : files) bytes += f.size;
    auto& ids = streams[static_cast<int>(s)];
    ids = text::encode_python_docs(docs, s, tok);
    INFO("split ", text::split_name(s));
    CHECK(files.size() == std::stoul(want[0]));
    CHECK(bytes == std::stoull(want[1]));
    CHECK(ids.size() == std::stoul(want[2]));
    CHECK(checksum(ids) == std::stoull(want[3]));
    if (s != text::Split::train) {
      std::vector<std::string> names;
      for (const auto& f : files) names.push_back(f.relative_path);
      CHECK(names == fx.summary.at(std::string(text::split_name(s)) + "_files"));
    }
  }
  const auto vocab = text::CompactVocab::from_tokens(streams[0]);
  CHECK(vocab.size() == std::stoi(fx.summary.at("compact_vocab_size")[0]));
  CHECK(checksum(vocab.gpt2_ids()) == std::stoull(fx.summary.at("compact_vocab_checksum")[0]));
  const auto train = vocab.to_compact(streams[0]);
  const auto validation = vocab.to_compact(streams[1]);
  const auto test = vocab.to_compact(streams[2]);
  const auto unknowns = [&](const std::vector<int>& ids) { return std::count(ids.begin(), ids.end(), vocab.unk_id()); };
  CHECK(unknowns(train) == 0);
  CHECK(unknowns(validation) == std::stol(fx.summary.at("unk_validation")[0]));
  CHECK(unknowns(test) == std::stol(fx.summary.at("unk_test")[0]));
  const auto unigram = text::UnigramModel::fit(train, vocab.size());
  CHECK(unigram.mean_nll(test) == doctest::Approx(std::stod(fx.summary.at("unigram_nll_test")[0])).epsilon(1e-12));
  CHECK(unigram.mean_nll(validation) ==
        doctest::Approx(std::stod(fx.summary.at("unigram_nll_validation")[0])).epsilon(1e-12));
}
