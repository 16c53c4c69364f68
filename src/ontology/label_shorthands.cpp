/// @file label_shorthands.cpp
/// Cell-type shorthands of widely shared label sets and their Cell Ontology terms.

#include <span>
#include <string>
#include <vector>

#include "celltyper/ontology.hpp"

namespace celltyper {
namespace {

// Keys are `shorthand_forms` of the labels: normalised (lower case, one space), '+' dropped, a
// closing "cell"/"cells" dropped. Sources: Seurat's PBMC 3k tutorial ("CD14+ Mono", "FCGR3A+
// Mono", "NK", "DC", "B", "CD8 T"), 10x's sorted PBMC populations ("CD19+ B", "CD56+ NK", "CD34+",
// pbmc68k's labels), Azimuth's human PBMC levels 1-2 ("CD4 TCM", "NK_CD56bright",
// "cDC1", "HSPC", "Eryth", "dnT", "gdT"...), the immune abbreviations of scanpy / CellTypist
// notebooks ("cMono", "ncMono", "pDC", "Treg") and a few short names of other tissues ("Astro",
// "Oligo", "OPC", "Fibro", "SMC"). Only shorthands with one established reading are listed: "B"
// is a B cell, not a pancreatic beta cell; "Endo" (endothelial or endocrine), "Micro", "Epi" and
// "Mk" are not, nor "HSC" (hepatic stellate cells in liver atlases). Ids are those CELLxGENE's curators give these labels (cycling terms for
// "Proliferating", a memory or naive subtype where the shorthand says so, the human
// CD56-bright / CD56-dim natural killer terms).
constexpr LabelShorthand kShorthands[] = {
    // T cells
    {"t", "CL:0000084"},
    {"cd4 t", "CL:0000624"},
    {"t cd4", "CL:0000624"},
    {"cd4 t helper", "CL:0000624"},
    {"cd8 t", "CL:0000625"},
    {"t cd8", "CL:0000625"},
    {"naive cd4 t", "CL:0000895"},
    {"cd4 naive", "CL:0000895"},
    {"cd4 naive t", "CL:0000895"},
    {"naive t cd4", "CL:0000895"},
    {"memory cd4 t", "CL:0000897"},
    {"cd4 memory", "CL:0000897"},
    {"cd4 memory t", "CL:0000897"},
    {"naive cd8 t", "CL:0000900"},
    {"cd8 naive", "CL:0000900"},
    {"cd8 naive t", "CL:0000900"},
    {"memory cd8 t", "CL:0000909"},
    {"cd8 memory", "CL:0000909"},
    {"cd8 memory t", "CL:0000909"},
    {"cd4 tcm", "CL:0000904"},
    {"cd4 tem", "CL:0000905"},
    {"cd8 tcm", "CL:0000907"},
    {"cd8 tem", "CL:0000913"},
    {"cd4 ctl", "CL:0000934"},
    {"cd8 ctl", "CL:0000794"},
    {"cd8 cytotoxic t", "CL:0000625"},  // (10x's sorted "CD8+ Cytotoxic T": CD8 T cells)
    {"ctl", "CL:0000910"},
    {"cd4 proliferating", "CL:4033075"},
    {"proliferating cd4 t", "CL:4033075"},
    {"cd8 proliferating", "CL:4033074"},
    {"proliferating cd8 t", "CL:4033074"},
    {"t proliferating", "CL:4033069"},
    {"proliferating t", "CL:4033069"},
    {"t reg", "CL:0000815"},
    {"treg", "CL:0000815"},
    {"cd4 treg", "CL:0000815"},
    {"mait", "CL:0000940"},
    {"gdt", "CL:0000798"},
    {"gd t", "CL:0000798"},
    {"tgd", "CL:0000798"},
    {"gamma delta t", "CL:0000798"},
    {"dnt", "CL:0002489"},
    {"dn t", "CL:0002489"},
    {"nkt", "CL:0000814"},
    {"nk t", "CL:0000814"},
    {"th1", "CL:0000545"},
    {"th2", "CL:0000546"},
    {"th17", "CL:0000899"},
    {"tfh", "CL:0002038"},
    // natural killer and innate lymphoid cells
    {"nk", "CL:0000623"},
    {"nk proliferating", "CL:4033071"},
    {"proliferating nk", "CL:4033071"},
    {"nk cd56bright", "CL:0000938"},
    {"nk cd56 bright", "CL:0000938"},
    {"cd56bright nk", "CL:0000938"},
    {"cd56 bright nk", "CL:0000938"},
    {"nk bright", "CL:0000938"},
    {"nk cd56dim", "CL:0000939"},
    {"nk cd56 dim", "CL:0000939"},
    {"cd56dim nk", "CL:0000939"},
    {"cd56 dim nk", "CL:0000939"},
    {"nk dim", "CL:0000939"},
    {"cd56 nk", "CL:0000623"},
    {"ilc", "CL:0001065"},
    // B cells
    {"b", "CL:0000236"},
    {"cd19 b", "CL:0000236"},
    {"b naive", "CL:0000788"},
    {"naive b", "CL:0000788"},
    {"b memory", "CL:0000787"},
    {"memory b", "CL:0000787"},
    {"b intermediate", "CL:0000236"},
    {"b proliferating", "CL:4033068"},
    {"proliferating b", "CL:4033068"},
    {"gc b", "CL:0000844"},
    {"pre b", "CL:0000817"},
    {"pro b", "CL:0000826"},
    {"plasma", "CL:0000786"},
    // monocytes, dendritic cells, other myeloid cells
    {"mono", "CL:0000576"},
    {"cd14 mono", "CL:0001054"},
    {"cd14 monocyte", "CL:0001054"},
    {"mono cd14", "CL:0001054"},
    {"cd16 mono", "CL:0002396"},
    {"cd16 monocyte", "CL:0002396"},
    {"mono cd16", "CL:0002396"},
    {"fcgr3a mono", "CL:0002396"},
    {"fcgr3a monocyte", "CL:0002396"},
    {"classical mono", "CL:0000860"},
    {"cmono", "CL:0000860"},
    {"non classical mono", "CL:0000875"},
    {"nonclassical mono", "CL:0000875"},
    {"nonclassical monocyte", "CL:0000875"},
    {"ncmono", "CL:0000875"},
    {"intermediate mono", "CL:0002393"},
    {"dc", "CL:0000451"},
    {"dendritic", "CL:0000451"},
    {"cdc1", "CL:0002394"},
    {"cdc2", "CL:0002399"},
    {"asdc", "CL:0017009"},
    {"as dc", "CL:0017009"},
    {"mac", "CL:0000235"},
    {"macro", "CL:0000235"},
    {"mast", "CL:0000097"},
    {"neutro", "CL:0000775"},
    {"neut", "CL:0000775"},
    {"baso", "CL:0000767"},
    {"eos", "CL:0000771"},
    {"mega", "CL:0000556"},
    {"eryth", "CL:0000232"},
    // progenitors
    {"hspc", "CL:0008001"},
    {"cd34", "CL:0008001"},
    {"gmp", "CL:0000557"},
    {"cmp", "CL:0000049"},
    // other tissues
    {"fibro", "CL:0000057"},
    {"smc", "CL:0000192"},
    {"astro", "CL:0000127"},
    {"oligo", "CL:0000128"},
    {"opc", "CL:0002453"},
    {"microglia", "CL:0000129"},
};

}  // namespace

std::span<const LabelShorthand> label_shorthands() { return kShorthands; }

std::vector<std::string> shorthand_forms(std::string_view normalized) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : normalized) {
    if (c == ' ') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else if (c != '+') {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  // "CD4 T cells", "T cells CD4+": the words "cell" / "cells" say nothing a key lacks.
  std::erase_if(words, [](const std::string& w) { return w == "cell" || w == "cells"; });
  if (words.empty()) return {};
  std::string form;
  for (const auto& w : words) form += (form.empty() ? "" : " ") + w;
  std::vector<std::string> forms{form};
  // A plural: "Monos", "Tregs", "DCs", "ILCs" (not "ss", nor a word of one or two letters).
  const std::string& last = words.back();
  if (last.size() >= 3 && last.back() == 's' && last[last.size() - 2] != 's') forms.push_back(form.substr(0, form.size() - 1));
  return forms;
}

}  // namespace celltyper
