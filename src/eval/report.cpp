/// @file report.cpp
/// The self-contained HTML evaluation report: inline CSS, inline SVG plots, a few lines of inline
/// JavaScript that surface view-time errors. The markup is well-formed XML (void elements closed,
/// only numeric character references), so each SVG can also be used on its own.

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <tuple>
#include <unistd.h>

#include "celltyper/dataset.hpp"
#include "celltyper/error.hpp"
#include "celltyper/output_file.hpp"
#include "celltyper/report.hpp"
#include "io/utf8.hpp"

namespace celltyper {
namespace {

// ---- text helpers -------------------------------------------------------------------------

/// Escape text for XML content and attribute values.
std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters other than tab / newline are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

/// Number of UTF-8 code points (for width estimates and truncation).
std::size_t code_points(std::string_view text) { return detail::utf8_code_points(text); }

/// `text` cut to `max_points` code points with an ellipsis.
std::string shorten(const std::string& text, std::size_t max_points) {
  if (code_points(text) <= max_points) return text;
  std::size_t points = 0;
  std::size_t byte = 0;
  for (; byte < text.size(); ++byte) {
    if ((static_cast<unsigned char>(text[byte]) & 0xC0) != 0x80) {
      if (points == max_points - 1) break;
      ++points;
    }
  }
  return text.substr(0, byte) + "\u2026";
}

/// Approximate width in pixels of `text` at the 12 px sans-serif font the plots use.
double text_width(std::string_view text, double font_px = 12.0) {
  return static_cast<double>(code_points(text)) * font_px * 0.58;
}

std::string fixed4(double value) { return fmt::format("{:.4f}", value); }
std::string percent(double share) { return fmt::format("{:.1f}%", 100.0 * share); }

/// Lower-case ASCII letters/digits, other runs become '-'.
std::string slug(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 40) out.resize(40);
  return out.empty() ? "set" : out;
}

// ---- colours ------------------------------------------------------------------------------

/// Matplotlib's tab20 reordered so that the first ten are tab10 (distinct hues first).
constexpr std::array<const char*, 20> kCategorical = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"};

/// Colour of category `index` of `count`: tab20 up to 20, then golden-angle hues.
std::string category_colour(std::size_t index, std::size_t count) {
  if (count <= kCategorical.size()) return kCategorical[index];
  const double hue = std::fmod(static_cast<double>(index) * 137.508, 360.0);
  const double lightness = 40.0 + 15.0 * static_cast<double>(index % 3);
  return fmt::format("hsl({:.0f},65%,{:.0f}%)", hue, lightness);
}

/// Sequential blue scale (ColorBrewer Blues end points), `share` in [0, 1].
std::string blue(double share) {
  share = std::clamp(share, 0.0, 1.0);
  const auto mix = [share](int low, int high) {
    return static_cast<int>(std::lround(low + (high - low) * std::pow(share, 0.8)));
  };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(0xf7, 0x08), mix(0xfb, 0x30), mix(0xff, 0x6b));
}

/// Colours of the ontology relations, in TermRelation order.
constexpr std::array<const char*, kTermRelationCount> kRelationColours = {"#2ca02c", "#98df8a", "#1f77b4", "#ff7f0e",
                                                                          "#d62728"};
/// What each relation means, for legends.
constexpr std::array<const char*, kTermRelationCount> kRelationMeaning = {
    "same term", "prediction is an ancestor of the truth (less specific)",
    "prediction is a descendant of the truth (more specific)", "prediction shares a direct parent with the truth",
    "none of the above"};

// ---- SVG building -------------------------------------------------------------------------

constexpr int kFontPx = 12;
constexpr std::size_t kMaxLabelPoints = 54;  ///< longer labels are shortened in plots

/// Opening tag of a plot SVG (class "plot" is what the page counts).
std::string svg_open(int width, int height, const std::string& label) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"{2}\" role=\"img\" aria-label=\"{3}\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n",
      width, height, kFontPx, escape(label));
}

std::string svg_title(const std::string& title, double x = 10) {
  return fmt::format("<text x=\"{:.1f}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", x, escape(title));
}

ReportPlot per_class_f1_plot(const ReportSection& section, const std::string& name) {
  const EvaluationResult& result = section.result;
  double label_width = 60.0;
  for (const auto& m : result.per_class) label_width = std::max(label_width, text_width(shorten(m.label, kMaxLabelPoints)));
  label_width = std::min(label_width, 340.0) + 16.0;
  const double bar_width = 360.0;
  const double row = 22.0;
  const double top = 52.0;
  const auto n = static_cast<double>(result.per_class.size());
  const int width = static_cast<int>(label_width + bar_width + 70.0);
  const int height = static_cast<int>(top + n * row + 36.0);
  ReportPlot plot;
  plot.name = name;
  plot.title = fmt::format("Per-class F1 ({})", section.name);
  std::string svg = svg_open(width, height, plot.title);
  svg += svg_title(plot.title);
  svg += fmt::format("<text x=\"10\" y=\"38\" fill=\"#555555\">macro F1 {} over {} classes; grey labels: predicted only</text>\n",
                     fixed4(result.macro.f1), result.per_class.size());
  // Grid and axis.
  const double axis_y = top + n * row + 4.0;
  for (int tick = 0; tick <= 4; ++tick) {
    const double x = label_width + bar_width * tick / 4.0;
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#dddddd\"/>\n", x, top - 4.0, axis_y);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555555\">{:.2f}</text>\n", x, axis_y + 16.0,
                       tick / 4.0);
  }
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555555\">F1</text>\n",
                     label_width + bar_width / 2.0, axis_y + 30.0);
  for (std::size_t c = 0; c < result.per_class.size(); ++c) {
    const ClassMetrics& m = result.per_class[c];
    const double y = top + static_cast<double>(c) * row;
    const bool predicted_only = m.support == 0;
    svg += fmt::format("<g class=\"bar\"><title>{}: F1 {}, precision {}, recall {}, {} true cells, {} predicted</title>\n",
                       escape(m.label), fixed4(m.f1), fixed4(m.precision), fixed4(m.recall), m.support, m.predicted);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"{}\">{}</text>\n", label_width - 8.0,
                       y + 15.0, predicted_only ? "#999999" : "#222222", escape(shorten(m.label, kMaxLabelPoints)));
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", label_width, y + 3.0,
                       bar_width * m.f1, row - 6.0, predicted_only ? "#bbbbbb" : "#4c78a8");
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#222222\">{:.3f}</text>\n", label_width + bar_width * m.f1 + 4.0,
                       y + 15.0, m.f1);
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  plot.svg = std::move(svg);
  plot.width = width;
  plot.height = height;
  return plot;
}

ReportPlot confusion_plot(const ReportSection& section, const std::string& name) {
  const EvaluationResult& result = section.result;
  const ConfusionMatrix& confusion = result.confusion;
  const std::size_t n_labels = confusion.labels.size();
  std::vector<std::size_t> rows;
  std::vector<std::size_t> columns;
  std::vector<std::size_t> row_total(n_labels, 0);
  for (std::size_t t = 0; t < n_labels; ++t) {
    std::size_t predicted = 0;
    for (std::size_t p = 0; p < n_labels; ++p) {
      row_total[t] += confusion.at(t, p);
      predicted += confusion.at(p, t);
    }
    if (row_total[t] > 0) rows.push_back(t);
    if (predicted > 0) columns.push_back(t);
  }
  const double cell = std::clamp(560.0 / static_cast<double>(std::max<std::size_t>({rows.size(), columns.size(), 1})), 8.0, 34.0);
  double row_label_width = 40.0;
  for (const std::size_t t : rows) row_label_width = std::max(row_label_width, text_width(shorten(confusion.labels[t], kMaxLabelPoints)));
  double column_label_height = 40.0;
  for (const std::size_t p : columns) {
    column_label_height = std::max(column_label_height, text_width(shorten(confusion.labels[p], kMaxLabelPoints)));
  }
  row_label_width = std::min(row_label_width, 340.0) + 30.0;
  column_label_height = std::min(column_label_height, 340.0) + 12.0;
  const double left = row_label_width;
  const double top = 44.0 + column_label_height;
  const double grid_width = cell * static_cast<double>(columns.size());
  const double grid_height = cell * static_cast<double>(rows.size());
  const double legend_x = left + grid_width + 24.0;
  const int width = static_cast<int>(std::max(legend_x + 90.0, 420.0));
  const int height = static_cast<int>(std::max(top + grid_height + 30.0, top + 190.0));
  ReportPlot plot;
  plot.name = name;
  plot.title = fmt::format("Confusion matrix ({})", section.name);
  std::string svg = svg_open(width, height, plot.title);
  svg += svg_title(plot.title);
  svg += fmt::format("<text x=\"10\" y=\"38\" fill=\"#555555\">rows: truth, columns: prediction; colour: share of the row</text>\n");
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-weight=\"bold\">prediction</text>\n",
                     left + grid_width / 2.0, 56.0);
  svg += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\" font-weight=\"bold\">truth</text>\n",
                     14.0, top + grid_height / 2.0);
  for (std::size_t j = 0; j < columns.size(); ++j) {
    const double x = left + cell * (static_cast<double>(j) + 0.5) + 4.0;
    svg += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\"><title>{}</title>{}</text>\n", x, top - 6.0,
                       escape(confusion.labels[columns[j]]), escape(shorten(confusion.labels[columns[j]], kMaxLabelPoints)));
  }
  const bool show_counts = cell >= 20.0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::size_t t = rows[i];
    const double y = top + cell * static_cast<double>(i);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\"><title>{}</title>{}</text>\n", left - 6.0,
                       y + cell / 2.0 + 4.0, escape(confusion.labels[t]), escape(shorten(confusion.labels[t], kMaxLabelPoints)));
    for (std::size_t j = 0; j < columns.size(); ++j) {
      const std::size_t p = columns[j];
      const std::size_t count = confusion.at(t, p);
      const double share = static_cast<double>(count) / static_cast<double>(row_total[t]);
      const double x = left + cell * static_cast<double>(j);
      svg += fmt::format(
          "<g class=\"cell\"><title>truth {} | predicted {} | {} cells ({} of the {} cells of this truth)</title>"
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
          escape(confusion.labels[t]), escape(confusion.labels[p]), count, percent(share), row_total[t], x, y, cell, cell,
          count == 0 ? "#ffffff" : blue(share), t == p ? "#333333" : "#e4e4e4", t == p ? 1.5 : 0.5);
      if (show_counts && count > 0) {
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"{}\" fill=\"{}\">{}</text>", x + cell / 2.0,
                           y + cell / 2.0 + 4.0, count >= 1000 ? 9 : 11, share > 0.5 ? "#ffffff" : "#222222", count);
      }
      svg += "</g>\n";
    }
  }
  // Colour scale as ten steps (no gradient ids: several SVGs share one page).
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555555\">share of row</text>\n", legend_x, top - 8.0);
  for (int step = 0; step < 10; ++step) {
    const double share = 1.0 - step / 9.0;
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"16\" height=\"14\" fill=\"{}\"/>\n", legend_x, top + 14.0 * step,
                       blue(share));
    if (step % 3 == 0) {
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555555\">{:.0f}%</text>\n", legend_x + 22.0, top + 14.0 * step + 11.0,
                         100.0 * share);
    }
  }
  svg += "</svg>\n";
  plot.svg = std::move(svg);
  plot.width = width;
  plot.height = height;
  return plot;
}

ReportPlot relations_plot(const ReportSection& section, const std::string& name) {
  const OntologyMetrics& o = section.result.ontology;
  const int width = 680;
  const double bar_x = 10.0;
  const double bar_width = 640.0;
  const int height = 86 + 22 * static_cast<int>(kTermRelationCount) + 10;
  ReportPlot plot;
  plot.name = name;
  plot.title = fmt::format("Relation of prediction to truth in the Cell Ontology ({})", section.name);
  std::string svg = svg_open(width, height, plot.title);
  svg += svg_title(plot.title);
  svg += fmt::format("<text x=\"10\" y=\"38\" fill=\"#555555\">{} cells with both labels mapped; {} left out as unmapped</text>\n",
                     o.n_mapped, o.n_unmapped);
  double x = bar_x;
  for (std::size_t r = 0; r < kTermRelationCount; ++r) {
    const auto relation = static_cast<TermRelation>(r);
    const double share = o.share(relation);
    if (share <= 0.0) continue;
    svg += fmt::format("<g><title>{}: {} cells ({})</title><rect x=\"{:.2f}\" y=\"48\" width=\"{:.2f}\" height=\"26\" fill=\"{}\"/></g>\n",
                       to_string(relation), o.relation_counts[r], percent(share), x, bar_width * share, kRelationColours[r]);
    x += bar_width * share;
  }
  if (o.n_mapped == 0) {
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"48\" width=\"{:.1f}\" height=\"26\" fill=\"#eeeeee\"/>\n", bar_x, bar_width);
  }
  for (std::size_t r = 0; r < kTermRelationCount; ++r) {
    const auto relation = static_cast<TermRelation>(r);
    const double y = 92.0 + 22.0 * static_cast<double>(r);
    svg += fmt::format("<rect x=\"10\" y=\"{:.1f}\" width=\"14\" height=\"14\" fill=\"{}\"/>\n", y, kRelationColours[r]);
    svg += fmt::format("<text x=\"32\" y=\"{:.1f}\"><tspan font-weight=\"bold\">{}</tspan> {} ({} cells): {}</text>\n", y + 12.0,
                       to_string(relation), percent(o.share(relation)), o.relation_counts[r], kRelationMeaning[r]);
  }
  svg += "</svg>\n";
  plot.svg = std::move(svg);
  plot.width = width;
  plot.height = height;
  return plot;
}

/// Classes of the map in legend order (most frequent among truth + prediction first) with colours
/// assigned by sorted name, so a class has the same colour in both maps.
struct MapColours {
  std::map<std::string, std::string> colour;
};

MapColours map_colours(const EmbeddingMap& map) {
  std::set<std::string> names(map.truth.begin(), map.truth.end());
  names.insert(map.prediction.begin(), map.prediction.end());
  MapColours colours;
  std::size_t index = 0;
  for (const auto& name : names) colours.colour[name] = category_colour(index++, names.size());
  return colours;
}

ReportPlot embedding_plot(const EmbeddingMap& map, const MapColours& colours, bool by_truth, const std::string& name) {
  const std::vector<std::string>& classes = by_truth ? map.truth : map.prediction;
  const double plot_size = 440.0;
  const double left = 50.0;
  const double top = 50.0;
  std::map<std::string, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < classes.size(); ++i) members[classes[i]].push_back(i);
  std::vector<std::pair<std::string, std::size_t>> order;
  for (const auto& [label, indices] : members) order.emplace_back(label, indices.size());
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  constexpr std::size_t kMaxLegend = 40;
  double legend_width = 80.0;
  for (std::size_t k = 0; k < std::min(order.size(), kMaxLegend); ++k) {
    legend_width = std::max(legend_width, text_width(shorten(order[k].first, kMaxLabelPoints)) + 70.0);
  }
  legend_width = std::min(legend_width, 420.0);
  const int width = static_cast<int>(left + plot_size + 20.0 + legend_width);
  const double legend_rows = static_cast<double>(std::min(order.size(), kMaxLegend) + (order.size() > kMaxLegend ? 1 : 0));
  const int height = static_cast<int>(std::max(top + plot_size + 44.0, top + 18.0 * legend_rows + 10.0));
  ReportPlot plot;
  plot.name = name;
  plot.title = fmt::format("{} of {} coloured by {}", map.method, map.source, by_truth ? "truth" : "prediction");
  std::string svg = svg_open(width, height, plot.title);
  svg += svg_title(plot.title);
  svg += fmt::format("<text x=\"10\" y=\"38\" fill=\"#555555\">{} of {} cells shown</text>\n", classes.size(), map.n_cells);
  float x_min = 0.0F;
  float x_max = 1.0F;
  float y_min = 0.0F;
  float y_max = 1.0F;
  if (!map.x.empty()) {
    const auto [x_low, x_high] = std::minmax_element(map.x.begin(), map.x.end());
    const auto [y_low, y_high] = std::minmax_element(map.y.begin(), map.y.end());
    x_min = *x_low;
    x_max = *x_high;
    y_min = *y_low;
    y_max = *y_high;
  }
  const double x_span = x_max > x_min ? x_max - x_min : 1.0;
  const double y_span = y_max > y_min ? y_max - y_min : 1.0;
  const double pad = 8.0;
  const auto to_x = [&](float value) { return left + pad + (value - x_min) / x_span * (plot_size - 2 * pad); };
  const auto to_y = [&](float value) { return top + plot_size - pad - (value - y_min) / y_span * (plot_size - 2 * pad); };
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999999\"/>\n", left, top, plot_size,
                     plot_size);
  const bool pca = map.method == "PCA";
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555555\">{}1{}</text>\n", left + plot_size / 2.0,
                     top + plot_size + 20.0, pca ? "PC" : "axis ",
                     pca ? fmt::format(" ({})", percent(map.explained_variance_ratio[0])) : "");
  svg += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\" fill=\"#555555\">{}2{}</text>\n",
                     left - 12.0, top + plot_size / 2.0, pca ? "PC" : "axis ",
                     pca ? fmt::format(" ({})", percent(map.explained_variance_ratio[1])) : "");
  const std::size_t n_points = classes.size();
  const double radius = n_points <= 2000 ? 2.6 : (n_points <= 10000 ? 1.8 : 1.2);
  // Largest classes first, so that small ones stay visible on top.
  for (const auto& [label, count] : order) {
    svg += fmt::format("<g class=\"points\" fill=\"{}\" fill-opacity=\"0.75\"><title>{}: {} cells</title>\n", colours.colour.at(label),
                       escape(label), count);
    for (const std::size_t i : members[label]) {
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\"/>", to_x(map.x[i]), to_y(map.y[i]), radius);
    }
    svg += "\n</g>\n";
  }
  const double legend_x = left + plot_size + 20.0;
  for (std::size_t k = 0; k < std::min(order.size(), kMaxLegend); ++k) {
    const double y = top + 18.0 * static_cast<double>(k);
    svg += fmt::format("<g><title>{}: {} cells</title><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>"
                       "<text x=\"{:.1f}\" y=\"{:.1f}\">{} ({})</text></g>\n",
                       escape(order[k].first), order[k].second, legend_x, y, colours.colour.at(order[k].first), legend_x + 18.0,
                       y + 10.5, escape(shorten(order[k].first, kMaxLabelPoints)), order[k].second);
  }
  if (order.size() > kMaxLegend) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555555\">\u2026 and {} more classes</text>\n", legend_x,
                       top + 18.0 * static_cast<double>(kMaxLegend) + 10.5, order.size() - kMaxLegend);
  }
  svg += "</svg>\n";
  plot.svg = std::move(svg);
  plot.width = width;
  plot.height = height;
  return plot;
}

/// The plots of one section, named with `suffix`.
std::vector<ReportPlot> section_plots(const ReportSection& section, const std::string& suffix) {
  std::vector<ReportPlot> plots;
  plots.push_back(per_class_f1_plot(section, "per_class_f1" + suffix));
  plots.push_back(confusion_plot(section, "confusion_matrix" + suffix));
  if (section.result.ontology.available) plots.push_back(relations_plot(section, "ontology_relations" + suffix));
  return plots;
}

/// File-name suffix of every section: "" for the first, "-<slug>" (made unique) for the others.
std::vector<std::string> section_suffixes(const ReportContent& content) {
  std::vector<std::string> suffixes;
  std::set<std::string> used = {""};
  for (std::size_t s = 0; s < content.sections.size(); ++s) {
    if (s == 0) {
      suffixes.emplace_back();
      continue;
    }
    std::string suffix = fmt::format("-{}", slug(content.sections[s].name));
    if (!used.insert(suffix).second) {
      suffix = fmt::format("{}-{}", suffix, s);
      used.insert(suffix);
    }
    suffixes.push_back(suffix);
  }
  return suffixes;
}

// ---- HTML ---------------------------------------------------------------------------------

constexpr const char* kStyle = R"(
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222222; max-width: 1500px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #dddddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin-top: 20px; }
dl.details { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 13px; color: #444444; }
dl.details dt { font-weight: bold; }
dl.details dd { margin: 0; font-family: monospace; word-break: break-all; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #dddddd; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.group-row th { background: #e9eef6; }
tr.unmapped td { background: #fdecea; }
.plots { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.plots svg { border: 1px solid #eeeeee; }
.warnings { background: #fff4e5; border: 1px solid #f0c36d; padding: 8px 12px; font-size: 13px; }
.notes { background: #f4f6f8; border: 1px solid #d0d7de; padding: 8px 12px; font-size: 13px; margin-top: 8px; }
#celltyper-errors { background: #fdecea; border: 1px solid #d62728; padding: 8px; }
details { margin-top: 12px; }
details > summary { font-size: 16px; font-weight: bold; cursor: pointer; }
.note { color: #555555; font-size: 13px; }
footer { margin-top: 40px; color: #888888; font-size: 12px; }
)";

/// Captures view-time errors into #celltyper-errors (runs before anything else on the page).
constexpr const char* kErrorScript = R"(
window.celltyperErrors = [];
window.celltyperShowErrors = function () {
  var box = document.getElementById('celltyper-errors');
  if (box === null || window.celltyperErrors.length === 0) return;
  box.hidden = false;
  box.textContent = window.celltyperErrors.join('\n');
};
window.addEventListener('error', function (event) {
  window.celltyperErrors.push('error: ' + event.message);
  window.celltyperShowErrors();
});
window.addEventListener('unhandledrejection', function (event) {
  window.celltyperErrors.push('unhandled rejection: ' + event.reason);
  window.celltyperShowErrors();
});
(function () {
  var original = console.error;
  console.error = function () {
    window.celltyperErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    window.celltyperShowErrors();
    original.apply(console, arguments);
  };
})();
)";

/// Marks the page as rendered with the number of plots (checked by tests and screenshots).
constexpr const char* kDoneScript = R"(
window.celltyperShowErrors();
document.documentElement.setAttribute('data-rendered', String(document.querySelectorAll('svg.plot').length));
)";

/// One summary row: a name and a value per section ("" when not applicable).
using SummaryRow = std::pair<std::string, std::vector<std::string>>;

std::vector<SummaryRow> summary_rows(const std::vector<ReportSection>& sections) {
  std::vector<SummaryRow> rows;
  const auto add = [&](const std::string& name, const auto& value) {
    SummaryRow row{name, {}};
    bool any = false;
    for (const auto& section : sections) {
      row.second.push_back(value(section.result));
      any = any || !row.second.back().empty();
    }
    if (any) rows.push_back(std::move(row));
  };
  add("cells", [](const EvaluationResult& r) { return std::to_string(r.n_cells); });
  add("accuracy", [](const EvaluationResult& r) { return fixed4(r.accuracy); });
  add("macro precision", [](const EvaluationResult& r) { return fixed4(r.macro.precision); });
  add("macro recall", [](const EvaluationResult& r) { return fixed4(r.macro.recall); });
  add("macro F1", [](const EvaluationResult& r) { return fixed4(r.macro.f1); });
  add("weighted precision", [](const EvaluationResult& r) { return fixed4(r.weighted.precision); });
  add("weighted recall", [](const EvaluationResult& r) { return fixed4(r.weighted.recall); });
  add("weighted F1", [](const EvaluationResult& r) { return fixed4(r.weighted.f1); });
  std::set<int> ks;
  for (const auto& section : sections) {
    for (const auto& entry : section.result.ranking.top_k) ks.insert(entry.k);
  }
  for (const int k : ks) {
    add(fmt::format("top-{} accuracy", k), [k](const EvaluationResult& r) {
      for (const auto& entry : r.ranking.top_k) {
        if (entry.k == k) return fixed4(entry.accuracy);
      }
      return std::string();
    });
  }
  add("mean reciprocal rank",
      [](const EvaluationResult& r) { return r.ranking.available ? fixed4(r.ranking.mean_reciprocal_rank) : std::string(); });
  const auto counts = [](auto value) {
    return [value](const EvaluationResult& r) { return r.ontology.available ? value(r.ontology) : std::string(); };
  };
  // (no cell mapped on both sides, as a group of types without CL ids: nothing to score, "n/a" as
  // the text table says, not 0)
  const auto ontology = [](auto value) {
    return [value](const EvaluationResult& r) {
      return !r.ontology.available ? std::string() : r.ontology.n_mapped == 0 ? std::string("n/a") : value(r.ontology);
    };
  };
  add("CL: cells mapped", counts([](const OntologyMetrics& o) { return std::to_string(o.n_mapped); }));
  add("CL: cells unmapped", counts([](const OntologyMetrics& o) {
        return fmt::format("{} ({} truth, {} prediction)", o.n_unmapped, o.n_unmapped_truth, o.n_unmapped_prediction);
      }));
  add("CL: corrected accuracy", ontology([](const OntologyMetrics& o) { return fixed4(o.corrected_accuracy); }));
  add("CL: corrected macro F1", ontology([](const OntologyMetrics& o) { return fixed4(o.corrected_macro_f1); }));
  add("CL: hierarchical precision", ontology([](const OntologyMetrics& o) { return fixed4(o.hierarchical_precision); }));
  add("CL: hierarchical recall", ontology([](const OntologyMetrics& o) { return fixed4(o.hierarchical_recall); }));
  add("CL: hierarchical F1", ontology([](const OntologyMetrics& o) { return fixed4(o.hierarchical_f1); }));
  add("CL: upward LCA distance (cells predicted another term)", ontology([](const OntologyMetrics& o) {
        return fmt::format("{:.3f} over {} cells", o.mean_lca_distance_errors, o.n_errors);
      }));
  add("CL: upward LCA distance (all mapped cells)", ontology([](const OntologyMetrics& o) { return fmt::format("{:.3f}", o.mean_lca_distance_all); }));
  for (std::size_t r = 0; r < kTermRelationCount; ++r) {
    const auto relation = static_cast<TermRelation>(r);
    add(fmt::format("CL: relation {}", to_string(relation)),
        ontology([relation](const OntologyMetrics& o) { return percent(o.share(relation)); }));
  }
  return rows;
}

void append_summary(std::string& html, const ReportContent& content) {
  html += "<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"metrics\">\n<tr><th>metric</th>";
  for (const auto& section : content.sections) html += fmt::format("<th>{}</th>", escape(section.name));
  html += "</tr>\n";
  for (const auto& [name, values] : summary_rows(content.sections)) {
    html += fmt::format("<tr><th>{}</th>", escape(name));
    for (const auto& value : values) html += fmt::format("<td class=\"number\">{}</td>", escape(value));
    html += "</tr>\n";
  }
  html += "</table>\n<p class=\"note\">Flat metrics follow scikit-learn (<code>zero_division=0</code>; classes = union of truth "
          "and prediction). CL metrics use the cells whose truth and prediction both map to the Cell Ontology: corrected = a "
          "prediction equal to or more specific than the truth counts as correct; hierarchical P/R/F after Kiritchenko et al. "
          "(2006), ancestor sets without the root; upward LCA distance = is_a steps from the truth up to the nearest common "
          "ancestor.</p>\n</section>\n";
}

void append_mapping_table(std::string& html, const std::string& side, const std::vector<LabelMappingRow>& rows) {
  if (rows.empty()) return;
  std::size_t unmapped_labels = 0;
  std::size_t unmapped_cells = 0;
  std::size_t total_cells = 0;
  for (const auto& row : rows) {
    total_cells += row.n_cells;
    if (!row.mapped()) {
      ++unmapped_labels;
      unmapped_cells += row.n_cells;
    }
  }
  html += fmt::format("<h3>{} labels: {} of {} unmapped ({} of {} cells)</h3>\n", escape(side), unmapped_labels, rows.size(),
                      unmapped_cells, total_cells);
  html += fmt::format("<table class=\"mapping\" id=\"mapping-{}\">\n<tr><th>label</th><th>cells</th><th>CL id</th><th>CL term</th>"
                      "<th>match</th></tr>\n",
                      slug(side));
  for (const auto& row : rows) {
    std::string match = row.match;
    if (!row.candidates.empty()) {
      match += " (";
      for (std::size_t c = 0; c < row.candidates.size(); ++c) match += (c > 0 ? ", " : "") + row.candidates[c];
      match += ")";
    }
    if (!row.alternatives.empty()) {
      match += "; one of ";
      for (std::size_t a = 0; a < row.alternatives.size(); ++a) {
        match += (a > 0 ? ", " : "") + row.alternatives[a];
        if (a < row.alternative_names.size()) match += " " + row.alternative_names[a];
      }
    }
    html += fmt::format("<tr{}><td>{}</td><td class=\"number\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        row.mapped() ? "" : " class=\"unmapped\"", escape(row.label), row.n_cells, escape(row.cl_id),
                        escape(row.cl_label), escape(match));
  }
  html += "</table>\n";
}

void append_per_class_table(std::string& html, const EvaluationResult& result) {
  html += "<table class=\"per-class\">\n<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
          "<th>predicted</th></tr>\n";
  for (const auto& m : result.per_class) {
    html += fmt::format("<tr><td>{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>"
                        "<td class=\"number\">{}</td><td class=\"number\">{}</td></tr>\n",
                        escape(m.label), fixed4(m.precision), fixed4(m.recall), fixed4(m.f1), m.support, m.predicted);
  }
  html += "</table>\n";
}

}  // namespace

std::vector<ReportPlot> report_plots(const ReportContent& content) {
  std::vector<ReportPlot> plots;
  const std::vector<std::string> suffixes = section_suffixes(content);
  for (std::size_t s = 0; s < content.sections.size(); ++s) {
    for (auto& plot : section_plots(content.sections[s], suffixes[s])) plots.push_back(std::move(plot));
  }
  if (content.embedding && !content.embedding->x.empty()) {
    const MapColours colours = map_colours(*content.embedding);
    plots.push_back(embedding_plot(*content.embedding, colours, /* by_truth = */ true, "embedding_truth"));
    plots.push_back(embedding_plot(*content.embedding, colours, /* by_truth = */ false, "embedding_prediction"));
  }
  if (content.umap && !content.umap->x.empty()) {
    // The PCA map's colours when there is one: a class keeps its colour across all four maps.
    const MapColours colours = map_colours(content.embedding && !content.embedding->x.empty() ? *content.embedding : *content.umap);
    plots.push_back(embedding_plot(*content.umap, colours, /* by_truth = */ true, "umap_truth"));
    plots.push_back(embedding_plot(*content.umap, colours, /* by_truth = */ false, "umap_prediction"));
  }
  return plots;
}

std::string render_html_report(const ReportContent& content) {
  if (content.sections.empty()) throw InputError("a report needs at least one evaluated set of cells");
  for (const auto* optional_map : {&content.embedding, &content.umap}) {
    if (!*optional_map) continue;
    const EmbeddingMap& map = **optional_map;
    const std::size_t n = map.x.size();
    if (map.y.size() != n || map.truth.size() != n || map.prediction.size() != n) {
      throw InputError(fmt::format("cell map has {} x, {} y, {} truth and {} prediction values; they must match", n, map.y.size(),
                                   map.truth.size(), map.prediction.size()));
    }
  }
  const std::vector<ReportPlot> plots = report_plots(content);
  const auto plot_named = [&](const std::string& name) -> const ReportPlot* {
    for (const auto& plot : plots) {
      if (plot.name == name) return &plot;
    }
    return nullptr;
  };

  std::string html;
  html.reserve(1 << 20);
  html += "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n";
  html += fmt::format("<title>{}</title>\n<style>{}</style>\n<script>{}</script>\n</head>\n<body>\n", escape(content.title), kStyle,
                      kErrorScript);
  html += "<pre id=\"celltyper-errors\" hidden=\"hidden\"></pre>\n";
  html += fmt::format("<header>\n<h1>{}</h1>\n", escape(content.title));
  if (!content.details.empty()) {
    html += "<dl class=\"details\">\n";
    for (const auto& [key, value] : content.details) html += fmt::format("<dt>{}</dt><dd>{}</dd>\n", escape(key), escape(value));
    html += "</dl>\n";
  }
  html += "</header>\n";
  // Warnings, then notes (kNotePrefix: what was read and how, e.g. counts from raw/X) apart.
  std::vector<std::string> warnings;
  std::vector<std::string> notes;
  for (const auto& warning : content.warnings) {
    if (warning.starts_with(kNotePrefix)) {
      notes.push_back(warning.substr(kNotePrefix.size()));
    } else {
      warnings.push_back(warning);
    }
  }
  for (const auto& [items, kind, title] : {std::tuple(&warnings, "warnings", "Warnings"), std::tuple(&notes, "notes", "Notes")}) {
    if (items->empty()) continue;
    html += fmt::format("<div class=\"{}\" id=\"{}\"><strong>{}</strong><ul>\n", kind, kind, title);
    for (const auto& item : *items) html += fmt::format("<li>{}</li>\n", escape(item));
    html += "</ul></div>\n";
  }
  append_summary(html, content);

  if (!content.truth_labels.empty() || !content.prediction_labels.empty()) {
    html += "<section id=\"label-mapping\">\n<h2>Labels and the Cell Ontology</h2>\n";
    html += "<p class=\"note\">Unmapped labels (highlighted) are kept: they count in the flat metrics and are left out of the "
            "CL metrics only, with the cells counted above.</p>\n";
    append_mapping_table(html, "Truth", content.truth_labels);
    append_mapping_table(html, "Prediction", content.prediction_labels);
    html += "</section>\n";
  }

  if (content.unseen_types) {
    const UnseenTypes& unseen = *content.unseen_types;
    const auto percent = [](std::size_t part, std::size_t of) {
      return of == 0 ? std::string("n/a") : fmt::format("{:.1f}%", 100.0 * static_cast<double>(part) / static_cast<double>(of));
    };
    html += "<section id=\"unseen-types\">\n<h2>Types the reference lacks</h2>\n";
    html += fmt::format("<p class=\"note\">Truth labels that name no class of the model ({} classes) nor a Cell Ontology term above or below "
                        "one: for their cells Unassigned is the right answer (<code>celltyper annotate --unassign-unlike</code>, "
                        "<code>--min-score</code>).</p>\n",
                        unseen.n_model_classes);
    const std::size_t unassigned = unseen.n_all_unassigned();
    html += fmt::format("<table class=\"mapping\" id=\"unseen-summary\">\n<tr><th>cells</th><th>count</th><th>Unassigned</th><th>share</th></tr>\n"
                        "<tr><td>of these types</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>\n"
                        "<tr><td>of the other types</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>\n"
                        "</table>\n<p>Of the Unassigned cells, of these types: {} (F1 {}).</p>\n",
                        unseen.n_cells, unseen.n_unassigned, percent(unseen.n_unassigned, unseen.n_cells), unseen.n_other_cells,
                        unseen.n_other_unassigned, percent(unseen.n_other_unassigned, unseen.n_other_cells), percent(unseen.n_unassigned, unassigned),
                        unseen.n_cells == 0 || unassigned == 0 ? std::string("n/a") : fixed4(unseen.f1()));
    if (!unseen.labels.empty()) {
      html += "<table class=\"mapping\" id=\"unseen-labels\">\n<tr><th>truth label</th><th>CL id</th><th>cells</th><th>Unassigned</th>"
              "<th>share</th><th>the others named</th></tr>\n";
      for (const auto& label : unseen.labels) {
        std::string named;
        for (const auto& [name, count] : label.named_as) named += fmt::format("{}{} {}", named.empty() ? "" : ", ", name, count);
        html += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>"
                            "<td>{}</td></tr>\n",
                            escape(label.label), escape(label.cl_id), label.n_cells, label.n_unassigned,
                            percent(label.n_unassigned, label.n_cells), escape(named));
      }
      html += "</table>\n";
    }
    html += "</section>\n";
  }

  if (content.embedding && !content.embedding->x.empty()) {
    const EmbeddingMap& map = *content.embedding;
    html += fmt::format("<section id=\"embedding\">\n<h2>Cell map: {} of {}</h2>\n<p class=\"note\">{} of {} cells drawn{}.</p>\n"
                        "<div class=\"plots\">\n",
                        escape(map.method), escape(map.source), map.x.size(), map.n_cells,
                        map.x.size() < map.n_cells ? " (deterministic uniform subsample)" : "");
    for (const char* name : {"embedding_truth", "embedding_prediction"}) {
      if (const ReportPlot* plot = plot_named(name)) html += plot->svg;
    }
    html += "</div>\n</section>\n";
  }
  if (content.umap && !content.umap->x.empty()) {
    const EmbeddingMap& map = *content.umap;
    html += fmt::format("<section id=\"umap\">\n<h2>Cell map: UMAP of {}</h2>\n<p class=\"note\">{} of {} cells drawn{}; 15 neighbours on "
                        "50 principal components, min_dist 0.1, as umap-learn / scanpy.</p>\n<div class=\"plots\">\n",
                        escape(map.source), map.x.size(), map.n_cells, map.x.size() < map.n_cells ? " (deterministic uniform subsample)" : "");
    for (const char* name : {"umap_truth", "umap_prediction"}) {
      if (const ReportPlot* plot = plot_named(name)) html += plot->svg;
    }
    html += "</div>\n</section>\n";
  }

  const std::vector<std::string> suffixes = section_suffixes(content);
  for (std::size_t s = 0; s < content.sections.size(); ++s) {
    const ReportSection& section = content.sections[s];
    const std::string id = "set" + (suffixes[s].empty() ? std::string("-main") : suffixes[s]);
    if (s == 0) {
      html += fmt::format("<section class=\"set\" id=\"{}\">\n<h2>{} ({} cells)</h2>\n", escape(id), escape(section.name),
                          section.result.n_cells);
    } else {
      html += fmt::format("<details class=\"set\" id=\"{}\"{}>\n<summary>{} ({} cells)</summary>\n", escape(id),
                          content.sections.size() <= 4 ? " open=\"open\"" : "", escape(section.name), section.result.n_cells);
    }
    html += "<div class=\"plots\">\n";
    for (const char* stem : {"per_class_f1", "confusion_matrix", "ontology_relations"}) {
      if (const ReportPlot* plot = plot_named(stem + suffixes[s])) html += plot->svg;
    }
    html += "</div>\n<h3>Per-class metrics</h3>\n";
    append_per_class_table(html, section.result);
    if (section.result.ontology.available && !section.result.ontology.unmapped_labels.empty()) {
      html += "<p class=\"note\">Labels without a usable CL id in this set: ";
      for (std::size_t k = 0; k < section.result.ontology.unmapped_labels.size(); ++k) {
        html += (k > 0 ? ", " : "") + escape(section.result.ontology.unmapped_labels[k]);
      }
      html += "</p>\n";
    }
    html += s == 0 ? "</section>\n" : "</details>\n";
  }
  html += fmt::format("<footer>Generated by celltyper {}. Self-contained: no external resources.</footer>\n", CELLTYPER_VERSION);
  html += fmt::format("<script>{}</script>\n</body>\n</html>\n", kDoneScript);
  return html;
}

void write_html_report(const ReportContent& content, const std::filesystem::path& path) {
  write_output_file(path.string(), render_html_report(content));
}

}  // namespace celltyper
