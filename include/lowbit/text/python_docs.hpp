// The Python 3.11 documentation sources (reStructuredText, Debian package
// python3.11-doc) as a small pretraining corpus: file listing, a deterministic
// train / validation / test split by file, a corpus fingerprint, and GPT-2 token
// streams per split. docs/data.md, "Python documentation corpus", is the protocol.
//
// Split "python-docs-split-v1": a file's relative path (from the corpus root, '/'
// separators, e.g. "library/os.rst.txt") is hashed with 64-bit FNV-1a over its
// bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3: for each byte,
// h ^= byte; h *= prime, modulo 2^64); h % 100 < 90 is train, < 95 validation,
// else test. Hashing the path (not a listing index) keeps a file in its split when
// other files are added or removed.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lowbit/core/fnv1a.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/text/gpt2_bpe.hpp"

namespace lowbit::text {

/// Version tag of the split rule above; record it beside results.
inline constexpr std::string_view python_docs_split_version = "python-docs-split-v1";
/// Where Debian's python3.11-doc puts the sources.
inline constexpr std::string_view python_docs_default_root = "/usr/share/doc/python3.11/html/_sources";
/// File name suffix of the corpus files.
inline constexpr std::string_view python_docs_suffix = ".rst.txt";

using lowbit::fnv1a64;  // 64-bit FNV-1a (core/fnv1a.hpp): paths and corpus bytes
using lowbit::fnv1a64_offset_basis;

enum class Split { train, validation, test };

[[nodiscard]] inline const char* split_name(Split s) {
  switch (s) {
    case Split::train: return "train";
    case Split::validation: return "validation";
    case Split::test: return "test";
  }
  return "?";
}

/// Split of a file by its relative path, per python-docs-split-v1.
[[nodiscard]] inline Split python_docs_split_of(std::string_view relative_path) {
  const std::uint64_t bucket = fnv1a64(relative_path) % 100;
  return bucket < 90 ? Split::train : bucket < 95 ? Split::validation : Split::test;
}

struct CorpusFile {
  std::string relative_path;  ///< from the corpus root, '/' separators
  std::uintmax_t size = 0;    ///< bytes, at listing time
  Split split = Split::train;
};

/// The listing of a python-docs corpus folder: every regular file named *.rst.txt
/// below the root (recursively), sorted by relative path (byte-wise).
class PythonDocs {
 public:
  /// Opens `root` if given, else $LOWBIT_PYTHON_DOCS, else python_docs_default_root.
  static PythonDocs open(std::optional<std::filesystem::path> root = std::nullopt) {
    namespace fs = std::filesystem;
    fs::path dir;
    std::string how;
    if (root && !root->empty()) {
      dir = *root;
      how = "the given folder";
    } else if (const char* env = std::getenv("LOWBIT_PYTHON_DOCS"); env && *env) {
      dir = env;
      how = "$LOWBIT_PYTHON_DOCS";
    } else {
      dir = fs::path(python_docs_default_root);
      how = "the default folder";
    }
    std::error_code ec;
    detail::check(fs::is_directory(dir, ec), "Python docs corpus: ", how, " '", dir.string(),
                  "' is not a directory; install the sources with `apt-get install python3.11-doc` (they go to ",
                  python_docs_default_root, "), or point LOWBIT_PYTHON_DOCS or the corpus flag at a copy");
    PythonDocs d;
    d.root_ = dir;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() <= python_docs_suffix.size() || !name.ends_with(python_docs_suffix)) continue;
      if (!it->is_regular_file(ec)) continue;
      CorpusFile f;
      f.relative_path = it->path().lexically_relative(dir).generic_string();
      f.size = it->file_size(ec);
      detail::check(!ec, "Python docs corpus: cannot read the size of '", it->path().string(), "': ", ec.message());
      f.split = python_docs_split_of(f.relative_path);
      d.files_.push_back(std::move(f));
    }
    detail::check(!ec, "Python docs corpus: cannot list '", dir.string(), "': ", ec.message());
    detail::check(!d.files_.empty(), "Python docs corpus: '", dir.string(), "' holds no *", python_docs_suffix,
                  " files; install them with `apt-get install python3.11-doc`");
    std::sort(d.files_.begin(), d.files_.end(),
              [](const CorpusFile& a, const CorpusFile& b) { return a.relative_path < b.relative_path; });
    return d;
  }

  [[nodiscard]] const std::filesystem::path& root() const { return root_; }
  /// All files, sorted by relative path.
  [[nodiscard]] const std::vector<CorpusFile>& files() const { return files_; }
  /// The files of one split, in path order.
  [[nodiscard]] std::vector<CorpusFile> files(Split s) const {
    std::vector<CorpusFile> out;
    for (const auto& f : files_)
      if (f.split == s) out.push_back(f);
    return out;
  }

  /// Text of one file, checked against the size the listing recorded.
  [[nodiscard]] std::string read(const CorpusFile& f) const {
    const auto path = root_ / f.relative_path;
    std::string text = io::read_file(path);
    detail::check(text.size() == f.size, "Python docs corpus: '", path.string(), "' changed since it was listed (",
                  f.size, " bytes then, ", text.size(), " now)");
    return text;
  }

  /// Fingerprint of the corpus contents: FNV-1a 64 over, for each file in path
  /// order, its relative path, a 0 byte, its size in decimal, a 0 byte, and its
  /// bytes. Changes when any file is added, removed, renamed or edited. Reads
  /// every file (about 10 ms for the 11 MB corpus).
  [[nodiscard]] std::uint64_t fingerprint() const {
    std::uint64_t h = fnv1a64_offset_basis;
    const std::string_view zero("\0", 1);
    for (const auto& f : files_) {
      h = fnv1a64(f.relative_path, h);
      h = fnv1a64(zero, h);
      h = fnv1a64(std::to_string(f.size), h);
      h = fnv1a64(zero, h);
      h = fnv1a64(read(f), h);
    }
    return h;
  }
  /// fingerprint() as 16 lower-case hex digits.
  [[nodiscard]] std::string fingerprint_hex() const {
    return hex64(fingerprint());
  }

 private:
  std::filesystem::path root_;
  std::vector<CorpusFile> files_;
};

/// GPT-2 tokens of one split: each file's text encoded on its own (tok.encode),
/// files concatenated in path order with <|endoftext|> (tok.eos_id(), 50256)
/// between consecutive files (none before the first or after the last). Files
/// are encoded on `threads` threads (0: the hardware's count); the result does
/// not depend on it.
[[nodiscard]] inline std::vector<int> encode_python_docs(const PythonDocs& docs, Split split,
                                                         const Gpt2Tokenizer& tok, unsigned threads = 0) {
  const int eos = tok.eos_id();
  detail::check(eos >= 0, "encode_python_docs: the tokenizer has no <|endoftext|> token");
  const std::vector<CorpusFile> files = docs.files(split);
  std::vector<std::vector<int>> parts(files.size());
  std::atomic<std::size_t> next{0};
  std::vector<std::string> errors(files.size());
  const auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < files.size();) {
      try {
        parts[i] = tok.encode(docs.read(files[i]));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  };
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(files.size(), 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  std::size_t total = 0;
  for (const auto& p : parts) total += p.size() + 1;
  std::vector<int> out;
  out.reserve(total);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out.push_back(eos);
    out.insert(out.end(), parts[i].begin(), parts[i].end());
  }
  return out;
}

}  // namespace lowbit::text
