// The similarity check of reference_similarity.hpp on generated counts: its Spearman correlation
// against a direct computation, the depth-calibrated thresholds, cells of a type the sample lacks,
// and the profile's round trip through a model file.
#include <celltyper/error.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/reference_similarity.hpp>

#include "io/hdf5_util.hpp"
#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>

namespace celltyper {
namespace {

constexpr std::int64_t kGenes = 300;

/// Counts of one cell: every gene at a low rate, the genes of `program` (a block of 60) high;
/// `depth` scales every rate.
std::vector<std::pair<std::int32_t, double>> cell_counts(int program, double depth, std::mt19937_64& engine) {
  std::vector<std::pair<std::int32_t, double>> counts;
  for (std::int32_t g = 0; g < kGenes; ++g) {
    // a fixed per-gene level (housekeeping-like), and the program's genes 20x higher
    const double base = 0.2 + 0.8 * static_cast<double>((g * 37) % 11) / 10.0;
    const double rate = depth * base * (g / 60 == program ? 20.0 : 1.0);
    const auto value = static_cast<double>(std::poisson_distribution<int>(rate)(engine));
    if (value > 0) counts.emplace_back(g, value);
  }
  return counts;
}

/// A sample of `per_class` cells of programs 0 and 1 (classes 0 and 1), counts at varied depths.
ReferenceSample two_type_sample(int per_class) {
  ReferenceSample sample;
  for (std::int64_t g = 0; g < kGenes; ++g) {
    sample.entrez_ids.push_back(1000 + g);
    sample.symbols.push_back("G" + std::to_string(g));
    sample.ensembl_ids.emplace_back();
  }
  sample.values.reset(0, 0, kGenes);
  std::mt19937_64 engine(7);
  std::uniform_real_distribution<double> depth(0.5, 3.0);
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < per_class; ++i) {
      for (const auto& [gene, value] : cell_counts(c, depth(engine), engine)) {
        sample.values.indices.push_back(gene);
        sample.values.values.push_back(value);
      }
      sample.values.indptr.push_back(static_cast<std::int64_t>(sample.values.indices.size()));
      ++sample.values.n_rows;
      sample.labels.push_back(c);
    }
  }
  sample.normalization = "log1p-cp10k";
  sample.matrix = "X";
  sample.n_reference_cells = sample.n_cells();
  return sample;
}

/// Spearman correlation, ties averaged, computed directly.
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ranks = [](const std::vector<double>& v) {
    std::vector<std::size_t> order(v.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return v[x] < v[y]; });
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < v.size();) {
      std::size_t j = i;
      while (j < v.size() && v[order[j]] == v[order[i]]) ++j;
      for (std::size_t k = i; k < j; ++k) r[order[k]] = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
      i = j;
    }
    return r;
  };
  const std::vector<double> ra = ranks(a);
  const std::vector<double> rb = ranks(b);
  const double mean = (static_cast<double>(a.size()) + 1) / 2;
  double num = 0, sa = 0, sb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (ra[i] - mean) * (rb[i] - mean);
    sa += (ra[i] - mean) * (ra[i] - mean);
    sb += (rb[i] - mean) * (rb[i] - mean);
  }
  return num / std::sqrt(sa * sb);
}

CellSimilarity score_counts(const SimilarityScorer& scorer, const std::vector<std::pair<std::int32_t, double>>& counts) {
  std::vector<std::int32_t> columns;
  std::vector<float> values;
  for (const auto& [gene, value] : counts) {
    columns.push_back(gene);
    values.push_back(static_cast<float>(std::log1p(value)));  // any per-cell monotone scale
  }
  return scorer.score(columns.data(), values.data(), columns.size());
}

TEST(ReferenceSimilarity, SpearmanOfASparseCellEqualsTheDirectComputation) {
  const ReferenceSample sample = two_type_sample(60);
  const SimilarityProfile profile = similarity_profile(sample, {}, 2);
  ASSERT_EQ(profile.n_profiles(), 2u);
  const std::size_t f = profile.entrez_ids.size();
  ASSERT_GE(f, 100u);
  std::vector<std::int64_t> panel(sample.entrez_ids.begin(), sample.entrez_ids.end());
  const SimilarityScorer scorer(profile, panel);
  std::mt19937_64 engine(11);
  std::uniform_real_distribution<double> jitter(0.0, 0.5);
  for (int trial = 0; trial < 20; ++trial) {
    auto counts = cell_counts(trial % 3, 0.3 + 0.2 * trial, engine);
    // every other cell with values of no discrete kind (more distinct values than the rank table holds)
    if (trial % 2 == 1) {
      for (auto& entry : counts) entry.second += jitter(engine);
    }
    const CellSimilarity scored = score_counts(scorer, counts);
    // the cell over the compared genes, and each centroid's ranks (centred ranks rank as the centroid does)
    std::vector<double> dense(f, 0.0);
    for (const auto& [gene, value] : counts) {
      const auto found = std::lower_bound(profile.entrez_ids.begin(), profile.entrez_ids.end(), 1000 + gene);
      if (found != profile.entrez_ids.end() && *found == 1000 + gene) dense[static_cast<std::size_t>(found - profile.entrez_ids.begin())] = value;
    }
    double best = -2;
    for (std::size_t k = 0; k < profile.n_profiles(); ++k) {
      const std::vector<double> centroid(profile.centred_ranks.begin() + static_cast<std::ptrdiff_t>(k * f),
                                         profile.centred_ranks.begin() + static_cast<std::ptrdiff_t>((k + 1) * f));
      best = std::max(best, spearman(dense, centroid));
    }
    EXPECT_NEAR(scored.similarity, best, 1e-5) << "trial " << trial;
  }
}

TEST(ReferenceSimilarity, ThresholdsFollowDepthAndANewTypeIsUnlikeEveryType) {
  const ReferenceSample sample = two_type_sample(80);
  const SimilarityProfile profile = similarity_profile(sample, {}, 2, 3);
  ASSERT_EQ(profile.n_profiles(), 2u);
  ASSERT_GT(profile.n_levels, 1);  // counts: thinned to several depths
  const auto levels = static_cast<std::size_t>(profile.n_levels);
  for (std::size_t k = 0; k < 2; ++k) {
    for (std::size_t level = 1; level < levels; ++level) {
      EXPECT_GE(profile.level_log_detected[k * levels + level], profile.level_log_detected[k * levels + level - 1]);
    }
    // shallow cells of a type reach lower correlations than deep ones
    EXPECT_LT(profile.level_threshold[k * levels], profile.level_threshold[k * levels + levels - 1]);
  }
  std::vector<std::int64_t> panel(sample.entrez_ids.begin(), sample.entrez_ids.end());
  const SimilarityScorer scorer(profile, panel);
  std::mt19937_64 engine(5);
  int known_unlike = 0;
  int new_unlike = 0;
  int judged_new = 0;
  for (int i = 0; i < 50; ++i) {
    const CellSimilarity known = score_counts(scorer, cell_counts(i % 2, 2.0, engine));
    EXPECT_EQ(known.best_class, i % 2);
    known_unlike += known.verdict == SimilarityVerdict::kUnlike ? 1 : 0;
    const CellSimilarity novel = score_counts(scorer, cell_counts(3, 2.0, engine));  // genes 180-239 high: no such type
    judged_new += novel.verdict != SimilarityVerdict::kShallow ? 1 : 0;
    new_unlike += novel.verdict == SimilarityVerdict::kUnlike ? 1 : 0;
  }
  EXPECT_LE(known_unlike, 3);
  EXPECT_EQ(judged_new, 50);
  EXPECT_GE(new_unlike, 45);
  // A cell with a handful of counts is too shallow to judge, never "unlike".
  const auto few = cell_counts(3, 0.01, engine);
  EXPECT_EQ(score_counts(scorer, few).verdict, SimilarityVerdict::kShallow);
}

TEST(ReferenceSimilarity, ClassesWithTooFewCellsGetNoProfileAndCoarseCellsAreLeftOut) {
  ReferenceSample sample = two_type_sample(40);
  // class 1 keeps 5 cells, the rest become coarse (code 2 = a label set)
  int kept = 0;
  for (auto& label : sample.labels) {
    if (label == 1 && ++kept > 5) label = 2;
  }
  sample.label_sets = {{0, 1}};
  const SimilarityProfile profile = similarity_profile(sample, {}, 2);
  ASSERT_EQ(profile.n_profiles(), 1u);
  EXPECT_EQ(profile.classes[0], 0);
  // and no class with cells enough: no profile at all
  for (auto& label : sample.labels) label = label == 0 ? 2 : label;
  EXPECT_TRUE(similarity_profile(sample, {}, 2).empty());
}

TEST(ReferenceSimilarity, LogValuesGetOneLevelAndTheProfileRoundTripsThroughAModelFile) {
  ReferenceSample sample = two_type_sample(30);
  for (double& value : sample.values.values) value = std::log1p(value);
  sample.normalization = "none";
  const SimilarityProfile profile = similarity_profile(sample, {}, 2);
  ASSERT_EQ(profile.n_profiles(), 2u);
  EXPECT_EQ(profile.n_levels, 1);
  EXPECT_EQ(profile.min_detected, std::vector<double>({0.0, 0.0}));  // no depths: every cell is judged

  // a model file keeps it as it was
  CellTypeModel model;
  model.features = kFeaturesExpression;
  model.class_names = {"A", "B"};
  model.class_cl_ids = {"", ""};
  for (std::int64_t g = 0; g < 50; ++g) {
    model.panel.entrez_ids.push_back(1000 + g);
    model.panel.symbols.push_back("G" + std::to_string(g));
    model.panel.ensembl_ids.emplace_back();
  }
  model.classifier = make_classifier("knn");
  std::vector<float> features(4 * 50, 0.0f);
  for (int i = 0; i < 4; ++i) features[static_cast<std::size_t>(i * 50 + i)] = 1.0f;
  model.classifier->fit(features.data(), 4, 50, {0, 1, 0, 1}, 2);
  model.similarity = profile;
  test::TempDir dir;
  save_model(model, dir.file("model.h5"));
  const CellTypeModel loaded = load_model(dir.file("model.h5"));
  EXPECT_EQ(loaded.similarity.entrez_ids, profile.entrez_ids);
  EXPECT_EQ(loaded.similarity.classes, profile.classes);
  EXPECT_EQ(loaded.similarity.centred_ranks, profile.centred_ranks);
  EXPECT_EQ(loaded.similarity.level_threshold, profile.level_threshold);
  EXPECT_EQ(loaded.similarity.level_log_detected, profile.level_log_detected);
  EXPECT_EQ(loaded.similarity.n_levels, 1);

  // A damaged profile is refused with the file's name: a level count whose products would wrap,
  // genes out of order.
  const auto damaged = [&](const std::function<void(hid_t)>& damage) {
    const std::string path = dir.file("damaged.h5");
    std::filesystem::copy_file(dir.file("model.h5"), path, std::filesystem::copy_options::overwrite_existing);
    {
      h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
      h5::Handle group(H5Gopen2(file.get(), "similarity", H5P_DEFAULT));
      damage(group.get());
    }
    {  // (cleared checksum, as a model written before checksums: the structural checks speak)
      std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
      out.write(std::string(64, '\0').data(), 64);
    }
    try {
      (void)load_model(path);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("loaded");
  };
  const std::string wrapped = damaged([](hid_t group) {
    H5Adelete(group, "n_levels");
    h5::write_int_array_attribute(group, "n_levels", {(std::int64_t{1} << 61) + 1});
  });
  EXPECT_NE(wrapped.find("/similarity datasets disagree"), std::string::npos) << wrapped;
  const std::string unordered = damaged([&](hid_t group) {
    std::vector<std::int64_t> ids = profile.entrez_ids;
    std::swap(ids[0], ids[1]);
    H5Ldelete(group, "entrez_id", H5P_DEFAULT);
    h5::write_1d<std::int64_t>(group, "entrez_id", ids.data(), static_cast<std::int64_t>(ids.size()));
  });
  EXPECT_NE(unordered.find("are out of order"), std::string::npos) << unordered;
}

}  // namespace
}  // namespace celltyper
