/// Internal: what every backend that embeds gene texts (LSA, use-lite, OpenAI) records the same
/// way: a gene's Ensembl id from the table, and the provenance fields that come from the texts
/// and the gene table.
#pragma once

#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_text.hpp>

#include <string>

namespace celltyper::detail {

/// The first Ensembl id of Entrez id `entrez_id` in `table` ("" when none or no table).
inline std::string first_ensembl_id(const GeneTable* table, std::int64_t entrez_id) {
  if (table == nullptr) return "";
  const std::int32_t gene = table->find_entrez(entrez_id);
  return gene != kNoGene && !table->gene(gene).ensembl_ids.empty() ? table->gene(gene).ensembl_ids.front() : "";
}

/// Provenance of a store of `texts` embedded by `backend` / `model` at `dims` dimensions: the
/// recipe hash, gene table hash and species (from `table`, else from the texts' provenance),
/// creation time and version, and the texts' provenance under extra["texts"].
inline GeneStoreProvenance text_store_provenance(const std::string& backend, const std::string& model, int dims, const GeneTexts& texts,
                                                 const GeneTable* table) {
  GeneStoreProvenance provenance;
  provenance.backend = backend;
  provenance.model = model;
  provenance.dims = dims;
  provenance.text_recipe_hash = texts.recipe_hash;
  if (table != nullptr) {
    provenance.gene_table_hash = table->content_hash_hex();
    provenance.species = table->species();
  } else if (texts.provenance.contains("gene_table")) {
    provenance.gene_table_hash = texts.provenance["gene_table"].value("content_hash", "");
    provenance.species = texts.provenance["gene_table"].value("species", "");
  }
  provenance.created_utc = utc_timestamp();
  provenance.celltyper_version = CELLTYPER_VERSION;
  provenance.extra["texts"] = texts.provenance;
  return provenance;
}

}  // namespace celltyper::detail
