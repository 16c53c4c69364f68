/// @file gene_vector_source.hpp
/// The vectors of a gene store as the GeneVectorSource that embedding, tuning and extraction read.
#pragma once

#include <celltyper/embed_dataset.hpp>
#include <celltyper/gene_store.hpp>

#include <string>

namespace celltyper {

/// Every vector of `store`, looked up by Entrez id, with the store's identity hash; `description`
/// names the store in provenance. `store` must outlive the source.
GeneVectorSource store_vector_source(const GeneStore& store, std::string description);

}  // namespace celltyper
