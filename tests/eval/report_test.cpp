// The HTML evaluation report and its pieces: PCA against NumPy's SVD, deterministic subsampling,
// the report's sections, numbers and well-formed SVG (checked by Python's XML parser), and the
// page rendered by headless Chromium (no JavaScript errors, plots in the DOM, non-trivial PNGs).

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "celltyper/error.hpp"
#include "celltyper/metrics.hpp"
#include "celltyper/report.hpp"
#include "support/test_support.hpp"

namespace celltyper {
namespace {

bool have_python_module(const std::string& module) {
  return test::run_program({test::system_python(), "-c", "import " + module}).exit_code == 0;
}

// ---- PCA ----------------------------------------------------------------------------------

/// rows x dims: three clusters along a few directions plus noise (embedding-like spectrum).
DenseMatrix clustered_matrix(std::int64_t rows, std::int64_t dims, std::uint32_t seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> centres(3, std::vector<float>(static_cast<std::size_t>(dims)));
  for (auto& centre : centres) {
    for (auto& value : centre) value = 3.0F * normal(engine);
  }
  DenseMatrix matrix;
  matrix.rows = rows;
  matrix.cols = dims;
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto& centre = centres[static_cast<std::size_t>(r % 3)];
    for (std::int64_t c = 0; c < dims; ++c) matrix.values.push_back(centre[static_cast<std::size_t>(c)] + 0.5F * normal(engine));
  }
  return matrix;
}

/// Scores and explained variance ratios of NumPy's exact SVD, with scikit-learn's sign rule.
nlohmann::json numpy_pca(const DenseMatrix& matrix, const std::vector<std::size_t>* rows, const test::TempDir& dir) {
  const std::string path = dir.file("matrix.f32");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(matrix.values.data()), static_cast<std::streamsize>(matrix.values.size() * sizeof(float)));
  }
  std::string selection = "None";
  if (rows != nullptr) selection = nlohmann::json(*rows).dump();
  const std::string script = fmt::format(
      "import numpy as np, json\n"
      "x = np.fromfile('{}', dtype=np.float32).reshape({}, {}).astype(np.float64)\n"
      "sel = {}\n"
      "if sel is not None: x = x[sel]\n"
      "c = x - x.mean(0)\n"
      "u, s, vt = np.linalg.svd(c, full_matrices=False)\n"
      "vt = vt[:2]\n"
      "signs = np.sign(vt[np.arange(2), np.abs(vt).argmax(1)])\n"
      "vt = vt * signs[:, None]\n"
      "scores = c @ vt.T\n"
      "var = s ** 2 / (x.shape[0] - 1)\n"
      "print(json.dumps({{'scores': scores.ravel().tolist(), 'ratio': (var[:2] / var.sum()).tolist(), 'components': vt.ravel().tolist()}}))\n",
      path, matrix.rows, matrix.cols, selection);
  const auto run = test::run_program({test::system_python(), "-c", script});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return nlohmann::json::parse(run.out);
}

void expect_matches_numpy(const DenseMatrix& matrix, const std::vector<std::size_t>* rows) {
  const test::TempDir dir;
  const PrincipalComponents pca = principal_components(matrix, 2, rows);
  const nlohmann::json expected = numpy_pca(matrix, rows, dir);
  const auto scores = expected["scores"].get<std::vector<double>>();
  ASSERT_EQ(pca.coordinates.size(), scores.size());
  double scale = 0.0;
  for (const double value : scores) scale = std::max(scale, std::abs(value));
  for (std::size_t i = 0; i < scores.size(); ++i) ASSERT_NEAR(pca.coordinates[i], scores[i], 1e-4 * scale) << "score " << i;
  const auto ratio = expected["ratio"].get<std::vector<double>>();
  EXPECT_NEAR(pca.explained_variance_ratio[0], ratio[0], 1e-6);
  EXPECT_NEAR(pca.explained_variance_ratio[1], ratio[1], 1e-6);
  const auto components = expected["components"].get<std::vector<double>>();
  ASSERT_EQ(pca.components.size(), components.size());
  for (std::size_t i = 0; i < components.size(); ++i) EXPECT_NEAR(pca.components[i], components[i], 1e-5);
}

TEST(ReportPca, ExactPathMatchesNumpySvd) {
  if (!have_python_module("numpy")) GTEST_SKIP() << test::system_python() << " cannot import numpy";
  expect_matches_numpy(clustered_matrix(300, 24, 1), nullptr);
}

TEST(ReportPca, RandomisedPathMatchesNumpySvd) {
  if (!have_python_module("numpy")) GTEST_SKIP() << test::system_python() << " cannot import numpy";
  // More than 512 dimensions: randomised subspace iteration.
  expect_matches_numpy(clustered_matrix(400, 700, 2), nullptr);
}

TEST(ReportPca, RowSubsetMatchesNumpyOnTheSameRows) {
  if (!have_python_module("numpy")) GTEST_SKIP() << test::system_python() << " cannot import numpy";
  const DenseMatrix matrix = clustered_matrix(500, 16, 3);
  const std::vector<std::size_t> rows = subsample_rows(500, 120, 7);
  expect_matches_numpy(matrix, &rows);
}

TEST(ReportPca, RejectsTooFewRowsAndNonFiniteValues) {
  DenseMatrix matrix = clustered_matrix(5, 4, 4);
  const std::vector<std::size_t> one = {2};
  EXPECT_THROW((void)principal_components(matrix, 2, &one), InputError);
  matrix.values[6] = std::numeric_limits<float>::quiet_NaN();
  try {
    (void)principal_components(matrix);
    FAIL() << "NaN accepted";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("cell 1, dimension 2"), std::string::npos) << error.what();
  }
}

TEST(ReportSubsample, DeterministicSortedDistinct) {
  const auto all = subsample_rows(50, 100);
  ASSERT_EQ(all.size(), 50u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);
  const auto a = subsample_rows(100000, 2000, 5);
  const auto b = subsample_rows(100000, 2000, 5);
  const auto c = subsample_rows(100000, 2000, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 2000u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<std::size_t>(a.begin(), a.end()).size(), a.size());
  EXPECT_LT(a.back(), 100000u);
  // Roughly uniform: about half of the sample in each half of the range.
  const auto lower = static_cast<std::size_t>(std::count_if(a.begin(), a.end(), [](std::size_t r) { return r < 50000; }));
  EXPECT_GT(lower, 850u);
  EXPECT_LT(lower, 1150u);
}

// ---- report content -----------------------------------------------------------------------

/// cell > lymphocyte > {T cell, B cell}; cell > monocyte.
Ontology small_ontology() {
  std::vector<OntologyTerm> terms = {
      {"CL:0000000", "cell", "", {}, {}, false, ""},
      {"CL:0000542", "lymphocyte", "", {}, {"CL:0000000"}, false, ""},
      {"CL:0000084", "T cell", "", {}, {"CL:0000542"}, false, ""},
      {"CL:0000236", "B cell", "", {}, {"CL:0000542"}, false, ""},
      {"CL:0000576", "monocyte", "", {}, {"CL:0000000"}, false, ""},
  };
  return Ontology(std::move(terms), "test ontology");
}

/// 10 cells: T 4 (3 right, 1 called B), B 4 (2 right, 1 lymphocyte, 1 T), monocyte 2 (1 right, 1 odd).
struct Fixture {
  std::vector<std::string> truth = {"T cell", "T cell", "T cell", "T cell", "B cell", "B cell", "B cell", "B cell", "monocyte", "monocyte"};
  std::vector<std::string> prediction = {"T cell", "T cell", "T cell", "B cell",   "B cell",
                                         "B cell", "lymphocyte", "T cell", "monocyte", "Odd <cell> & co"};
  Ontology ontology = small_ontology();
};

ReportContent make_content(const Fixture& fixture, bool with_map) {
  EvaluationOptions options;
  options.ontology = &fixture.ontology;
  for (const auto& term : fixture.ontology.terms()) options.cl_ids[term.label] = term.id;
  ReportContent content;
  content.title = "test report";
  content.details = {{"input", "cells.h5ad"}, {"truth", "obs:cell_type"}};
  content.sections.push_back({"all cells", evaluate(fixture.truth, fixture.prediction, options)});
  const std::vector<std::string> truth_b(fixture.truth.begin() + 4, fixture.truth.end());
  const std::vector<std::string> prediction_b(fixture.prediction.begin() + 4, fixture.prediction.end());
  content.sections.push_back({"donor B", evaluate(truth_b, prediction_b, options)});
  content.truth_labels = {{"B cell", 4, "CL:0000236", "B cell", "label", {}},
                          {"T cell", 4, "CL:0000084", "T cell", "label", {}},
                          {"monocyte", 2, "CL:0000576", "monocyte", "label", {}}};
  content.prediction_labels = {{"Odd <cell> & co", 1, "", "", "unmapped", {}}};
  content.warnings = {"a warning with <markup>"};
  if (with_map) {
    EmbeddingMap map;
    map.source = "obsm:X_test";
    map.explained_variance_ratio = {0.5, 0.25};
    map.n_cells = 10;
    for (std::size_t i = 0; i < 10; ++i) {
      map.x.push_back(static_cast<float>(i % 3) + 0.1F * static_cast<float>(i));
      map.y.push_back(static_cast<float>(i / 3));
      map.truth.push_back(fixture.truth[i]);
      map.prediction.push_back(fixture.prediction[i]);
    }
    content.embedding = map;
    map.method = "UMAP";
    std::reverse(map.x.begin(), map.x.end());
    content.umap = map;
  }
  return content;
}

/// Parse `html` with Python's XML parser; returns JSON facts about it (or fails the test).
nlohmann::json xml_facts(const std::string& html, const test::TempDir& dir) {
  const std::string path = dir.file("report.html");
  std::ofstream(path, std::ios::binary) << html;
  const std::string script = fmt::format(
      "import json, re, xml.etree.ElementTree as ET\n"
      "text = open('{}', encoding='utf-8').read()\n"
      "root = ET.fromstring(text.replace('<!DOCTYPE html>', '', 1))\n"
      "svg = '{{http://www.w3.org/2000/svg}}'\n"
      "plots = [e for e in root.iter(svg + 'svg') if e.get('class') == 'plot']\n"
      "standalone = 0\n"
      "for m in re.finditer(r'<svg .*?</svg>', text, re.S):\n"
      "    ET.fromstring(m.group(0)); standalone += 1\n"
      "titles = [t.text for t in root.iter(svg + 'title')]\n"
      "ids = [e.get('id') for e in root.iter() if e.get('id')]\n"
      "print(json.dumps({{'plots': len(plots), 'standalone': standalone, 'titles': titles, 'ids': ids,\n"
      "  'sizes': [[p.get('width'), p.get('height')] for p in plots],\n"
      "  'external': [e.get('src') or e.get('href') for e in root.iter() if e.get('src') or e.get('href')]}}))\n",
      path);
  const auto run = test::run_program({test::system_python(), "-c", script});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return run.exit_code == 0 ? nlohmann::json::parse(run.out) : nlohmann::json::object();
}

TEST(Report, ASectionWithoutMappedCellsSaysNotAvailableForItsOntologyMetrics) {
  // A group of types without CL ids (a tumour compartment beside immune cells): its ontology
  // metrics are not available ("n/a", as the text table says and JSON's null), not 0.
  const Fixture fixture;
  ReportContent content = make_content(fixture, /* with_map = */ false);
  ASSERT_GE(content.sections.size(), 2u);
  const EvaluationResult& main = content.sections.front().result;
  OntologyMetrics& none = content.sections[1].result.ontology;
  ASSERT_TRUE(none.available);
  none = OntologyMetrics{};
  none.available = true;
  none.n_unmapped = 4;
  none.n_unmapped_truth = 4;
  const std::string html = render_html_report(content);
  EXPECT_NE(html.find(fmt::format("<tr><th>CL: hierarchical F1</th><td class=\"number\">{:.4f}</td><td class=\"number\">n/a</td></tr>",
                                  main.ontology.hierarchical_f1)),
            std::string::npos);
  EXPECT_NE(html.find("<tr><th>CL: cells mapped</th><td class=\"number\">9</td><td class=\"number\">0</td></tr>"), std::string::npos)
      << html.substr(html.find("CL: cells mapped"), 200);
  EXPECT_NE(html.find("<td class=\"number\">n/a</td></tr>\n<tr><th>CL: relation parent</th>"), std::string::npos);
}

TEST(Report, HtmlHasSectionsNumbersAndWellFormedSvg) {
  const Fixture fixture;
  const ReportContent content = make_content(fixture, /* with_map = */ true);
  const EvaluationResult& main = content.sections.front().result;
  ASSERT_NEAR(main.accuracy, 0.6, 1e-12);
  const std::string html = render_html_report(content);

  for (const char* id : {"id=\"summary\"", "id=\"label-mapping\"", "id=\"embedding\"", "id=\"umap\"", "id=\"set-main\"", "id=\"set-donor-b\"",
                         "id=\"celltyper-errors\"", "id=\"warnings\""}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
  // Summary: one column per section, flat and hierarchical rows with the computed numbers.
  EXPECT_NE(html.find("<th>all cells</th><th>donor B</th>"), std::string::npos);
  EXPECT_NE(html.find(fmt::format("<tr><th>accuracy</th><td class=\"number\">{:.4f}</td><td class=\"number\">{:.4f}</td></tr>", main.accuracy,
                                  content.sections[1].result.accuracy)),
            std::string::npos);
  EXPECT_NE(html.find(fmt::format("<tr><th>macro F1</th><td class=\"number\">{:.4f}</td>", main.macro.f1)), std::string::npos);
  EXPECT_NE(html.find(fmt::format("<tr><th>CL: hierarchical F1</th><td class=\"number\">{:.4f}</td>", main.ontology.hierarchical_f1)),
            std::string::npos);
  EXPECT_NE(html.find("<tr><th>CL: cells unmapped</th><td class=\"number\">1 (0 truth, 1 prediction)</td>"), std::string::npos);
  EXPECT_NE(html.find("<tr><th>CL: relation parent</th><td class=\"number\">11.1%</td>"), std::string::npos);  // 1 of 9 mapped
  // Unmapped accounting and escaping.
  EXPECT_NE(html.find("Prediction labels: 1 of 1 unmapped (1 of 1 cells)"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"unmapped\"><td>Odd &lt;cell&gt; &amp; co</td>"), std::string::npos);
  EXPECT_EQ(html.find("Odd <cell>"), std::string::npos);
  EXPECT_NE(html.find("a warning with &lt;markup&gt;"), std::string::npos);
  // Confusion matrix: counts in the tooltips.
  EXPECT_NE(html.find("<title>truth T cell | predicted B cell | 1 cells (25.0% of the 4 cells of this truth)</title>"), std::string::npos);
  EXPECT_NE(html.find("<title>truth B cell | predicted B cell | 2 cells (50.0% of the 4 cells of this truth)</title>"), std::string::npos);
  // Per-class F1 tooltip.
  for (const auto& m : main.per_class) {
    EXPECT_NE(html.find(fmt::format("{}: F1 {:.4f}, precision {:.4f}, recall {:.4f}, {} true cells, {} predicted", m.label == "Odd <cell> & co" ? "Odd &lt;cell&gt; &amp; co" : m.label,
                                    m.f1, m.precision, m.recall, m.support, m.predicted)),
              std::string::npos)
        << m.label;
  }
  // No external resources of any kind.
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find("href"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);

  if (!have_python_module("xml.etree.ElementTree")) GTEST_SKIP() << "no python xml";
  const test::TempDir dir;
  const nlohmann::json facts = xml_facts(html, dir);
  const std::vector<ReportPlot> plots = report_plots(content);
  // Two sections x (F1, confusion, relations) + two maps (PCA) + two maps (UMAP).
  ASSERT_EQ(plots.size(), 10u);
  EXPECT_EQ(facts["plots"], plots.size());
  EXPECT_EQ(facts["standalone"], plots.size());
  EXPECT_TRUE(facts["external"].empty()) << facts["external"].dump();
  for (const auto& size : facts["sizes"]) {
    EXPECT_GT(std::stoi(size[0].get<std::string>()), 100);
    EXPECT_GT(std::stoi(size[1].get<std::string>()), 100);
  }
  const auto ids = facts["ids"].get<std::vector<std::string>>();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "duplicate element ids";
  const auto titles = facts["titles"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(titles.begin(), titles.end(), "parent: 1 cells (11.1%)"), titles.end());
  EXPECT_NE(std::find(titles.begin(), titles.end(), "Odd <cell> & co: 1 cells"), titles.end());  // map legend, unescaped by the parser
  std::set<std::string> names;
  for (const auto& plot : plots) names.insert(plot.name);
  EXPECT_EQ(names, (std::set<std::string>{"per_class_f1", "confusion_matrix", "ontology_relations", "per_class_f1-donor-b",
                                          "confusion_matrix-donor-b", "ontology_relations-donor-b", "embedding_truth",
                                          "embedding_prediction", "umap_truth", "umap_prediction"}));
}

TEST(Report, WithoutOntologyOrMapThereAreFewerPlotsAndRows) {
  const std::vector<std::string> truth = {"a", "a", "b", "b"};
  const std::vector<std::string> prediction = {"a", "b", "b", "b"};
  ReportContent content;
  content.sections.push_back({"all cells", evaluate(truth, prediction)});
  const std::string html = render_html_report(content);
  EXPECT_EQ(report_plots(content).size(), 2u);
  EXPECT_EQ(html.find("CL: "), std::string::npos);
  EXPECT_EQ(html.find("id=\"embedding\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"label-mapping\""), std::string::npos);
  EXPECT_NE(html.find("<tr><th>accuracy</th><td class=\"number\">0.7500</td></tr>"), std::string::npos);
  EXPECT_EQ(html.find("id=\"warnings\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"notes\""), std::string::npos);
  // Notes (what was read and how) are listed apart from the warnings, without their prefix.
  content.warnings = {"note: cells.h5ad: raw/X read", "fold a: 2 cells of classes no other fold has"};
  const std::string noted = render_html_report(content);
  const auto warnings_at = noted.find("<div class=\"warnings\" id=\"warnings\"><strong>Warnings</strong><ul>\n<li>fold a: 2 cells");
  const auto notes_at = noted.find("<div class=\"notes\" id=\"notes\"><strong>Notes</strong><ul>\n<li>cells.h5ad: raw/X read</li>");
  EXPECT_NE(warnings_at, std::string::npos) << noted.substr(0, 4000);
  EXPECT_NE(notes_at, std::string::npos);
  EXPECT_LT(warnings_at, notes_at);
  EXPECT_EQ(noted.find("note: "), std::string::npos);
  EXPECT_THROW((void)render_html_report(ReportContent{}), InputError);
  content.embedding = EmbeddingMap{};
  content.embedding->x = {1.0F};
  EXPECT_THROW((void)render_html_report(content), InputError);  // y, truth, prediction missing
  content.embedding.reset();
  content.umap = EmbeddingMap{};
  content.umap->x = {1.0F};
  EXPECT_THROW((void)render_html_report(content), InputError);
}

// ---- headless Chromium --------------------------------------------------------------------

struct PngFacts {
  int width = 0;
  int height = 0;
  int colours = 0;
  double deviation = 0.0;
};

PngFacts png_facts(const std::string& path) {
  const std::string script = fmt::format(
      "from PIL import Image, ImageStat\n"
      "im = Image.open('{}').convert('RGB')\n"
      "colours = im.getcolors(1 << 24)\n"
      "print(im.size[0], im.size[1], len(colours), sum(ImageStat.Stat(im).stddev) / 3)\n",
      path);
  const auto run = test::run_program({test::system_python(), "-c", script});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  PngFacts facts;
  std::istringstream(run.out) >> facts.width >> facts.height >> facts.colours >> facts.deviation;
  return facts;
}

std::vector<std::string> chromium_argv(const std::string& chromium, const test::TempDir& dir) {
  return {chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
          "--user-data-dir=" + dir.file("profile")};
}

TEST(ReportChromium, PageRendersWithoutErrorsAndScreenshotHasContent) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (Debian: apt-get install chromium)";
  if (!have_python_module("PIL")) GTEST_SKIP() << test::system_python() << " cannot import PIL (python3-pil)";
  const Fixture fixture;
  const ReportContent content = make_content(fixture, /* with_map = */ true);
  const test::TempDir dir;
  const std::string page = dir.file("report.html");
  write_html_report(content, page);

  auto dump = chromium_argv(chromium, dir);
  dump.push_back("--dump-dom");
  dump.push_back("file://" + page);
  const auto dom = test::run_program(dump);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_NE(dom.out.find(fmt::format("data-rendered=\"{}\"", report_plots(content).size())), std::string::npos)
      << dom.out.substr(0, 400);
  EXPECT_NE(dom.out.find("<pre id=\"celltyper-errors\" hidden=\"hidden\"></pre>"), std::string::npos) << "errors captured in the page";
  EXPECT_NE(dom.out.find("class=\"plot\""), std::string::npos);
  EXPECT_NE(dom.out.find("Confusion matrix (all cells)"), std::string::npos);
  EXPECT_EQ(dom.err.find("Uncaught"), std::string::npos) << dom.err;
  EXPECT_EQ(dom.err.find(":CONSOLE"), std::string::npos) << "console output: " << dom.err;

  // Control: a broken script on the same page is caught and shown by the page itself.
  std::string html = render_html_report(content);
  html.replace(html.find("</body>"), 7, "<script>undefinedFunction();</script></body>");
  const std::string broken = dir.file("broken.html");
  std::ofstream(broken, std::ios::binary) << html;
  auto dump_broken = chromium_argv(chromium, dir);
  dump_broken.push_back("--dump-dom");
  dump_broken.push_back("file://" + broken);
  const auto broken_dom = test::run_program(dump_broken);
  ASSERT_EQ(broken_dom.exit_code, 0) << broken_dom.err;
  EXPECT_NE(broken_dom.out.find("undefinedFunction is not defined"), std::string::npos) << broken_dom.out.substr(0, 600);
  EXPECT_NE(broken_dom.err.find("Uncaught"), std::string::npos);

  auto shot = chromium_argv(chromium, dir);
  const std::string image = dir.file("report.png");
  shot.push_back("--window-size=1280,1600");
  shot.push_back("--screenshot=" + image);
  shot.push_back("file://" + page);
  const auto screenshot = test::run_program(shot);
  ASSERT_EQ(screenshot.exit_code, 0) << screenshot.err;
  const PngFacts facts = png_facts(image);
  EXPECT_EQ(facts.width, 1280);
  EXPECT_EQ(facts.height, 1600);
  EXPECT_GT(facts.colours, 50) << "a blank or single-colour page";
  EXPECT_GT(facts.deviation, 5.0);
}

TEST(ReportChromium, ExportPngWritesEveryPlotAtItsSize) {
  if (find_chromium().empty()) GTEST_SKIP() << "chromium is not installed (Debian: apt-get install chromium)";
  if (!have_python_module("PIL")) GTEST_SKIP() << test::system_python() << " cannot import PIL (python3-pil)";
  const Fixture fixture;
  ReportContent content = make_content(fixture, /* with_map = */ true);
  content.sections.resize(1);
  const test::TempDir dir;
  const auto written = export_report_png(content, dir.path() / "png");
  const auto plots = report_plots(content);
  ASSERT_EQ(written.size(), plots.size());
  for (std::size_t i = 0; i < plots.size(); ++i) {
    SCOPED_TRACE(plots[i].name);
    EXPECT_EQ(written[i], dir.path() / "png" / (plots[i].name + ".png"));
    const PngFacts facts = png_facts(written[i].string());
    EXPECT_EQ(facts.width, plots[i].width);
    EXPECT_EQ(facts.height, plots[i].height);
    EXPECT_GT(facts.colours, 10);
    EXPECT_GT(facts.deviation, 3.0);
  }
  PngExportOptions missing;
  missing.chromium = dir.file("no-such-chromium");
  EXPECT_THROW((void)export_report_png(content, dir.path() / "png2", missing), UnsupportedError);
}

}  // namespace
}  // namespace celltyper
