// Gene texts to OpenAI requests and back: items to embed, gene stores from embeddings,
// enrichment prompts.
#include <charconv>
#include <string>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/gene_table.hpp"
#include "celltyper/openai.hpp"
#include "genes/text_store_parts.hpp"
#include "text_lists.hpp"

namespace celltyper::openai {

IdAndText gene_text_items(const GeneTexts& texts, const GeneTable* table) {
  IdAndText items;
  detail::Examples unknown(5);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts.texts[i].empty()) continue;
    if (table != nullptr && table->find_entrez(texts.entrez_ids[i]) == kNoGene) {
      unknown.add_with([&] { return fmt::format("{} ({})", texts.entrez_ids[i], texts.symbols[i]); });
      continue;
    }
    items.emplace_back(std::to_string(texts.entrez_ids[i]), texts.texts[i]);
  }
  if (!unknown.empty()) {
    throw InputError(fmt::format("{} gene(s) of the texts are not in the gene table {}: {}; use the gene table the texts "
                                 "were made from (--gene-table)",
                                 unknown.count(), table->source(), unknown.str()));
  }
  return items;
}

GeneStore gene_store_from_embeddings(const GeneTexts& texts, const std::map<std::string, std::vector<float>>& embeddings,
                                     const GeneTable* table, const EmbeddingSource& source) {
  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  std::vector<float> matrix;
  std::size_t dims = 0;
  detail::Examples without(5);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts.texts[i].empty()) continue;
    const auto found = embeddings.find(std::to_string(texts.entrez_ids[i]));
    if (found == embeddings.end()) {
      without.add(texts.symbols[i]);
      continue;
    }
    const std::vector<float>& vector = found->second;
    if (dims == 0) {
      dims = vector.size();
      if (dims == 0) throw InputError(fmt::format("the embedding of {} is empty", texts.symbols[i]));
      matrix.reserve(texts.size() * dims);
    }
    if (vector.size() != dims)
      throw InputError(fmt::format("the embedding of {} has {} dimensions, the others {}", texts.symbols[i], vector.size(), dims));
    ids.push_back(texts.entrez_ids[i]);
    symbols.push_back(texts.symbols[i]);
    ensembl.push_back(detail::first_ensembl_id(table, texts.entrez_ids[i]));
    matrix.insert(matrix.end(), vector.begin(), vector.end());
  }
  if (!without.empty()) throw InputError(fmt::format("{} gene(s) with a text have no embedding: {}", without.count(), without.str()));
  if (ids.empty()) throw InputError("no gene has a text, so there is nothing to store");

  GeneStoreProvenance provenance = detail::text_store_provenance(source.backend, source.model, static_cast<int>(dims), texts, table);
  provenance.extra["openai"] = source.details;
  provenance.extra["counts"] = {{"n_genes_in_texts", texts.size()}, {"n_embedded", ids.size()},
                                {"n_empty_text", texts.size() - texts.n_nonempty()}};
  return GeneStore(std::move(ids), std::move(symbols), std::move(ensembl), std::move(matrix), static_cast<int>(dims),
                   std::move(provenance));
}

IdAndText gene_enrichment_prompts(const GeneTable& table, const std::vector<std::int32_t>& genes,
                                  const GeneExtraTexts* summaries) {
  IdAndText prompts;
  prompts.reserve(genes.size());
  for (const std::int32_t index : genes) {
    const Gene& gene = table.gene(index);
    std::string summary;
    if (summaries != nullptr) {
      const auto found = summaries->texts.find(gene.entrez_id);
      if (found != summaries->texts.end()) summary = found->second;
    }
    if (summary.empty()) summary = gene.summary;
    prompts.emplace_back(std::to_string(gene.entrez_id), enrichment_prompt(gene.symbol, gene.name, summary));
  }
  return prompts;
}

}  // namespace celltyper::openai
