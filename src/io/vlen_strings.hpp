/// Internal: variable-length string datasets read without libhdf5's vlen conversion (issue #19).
///
/// libhdf5 1.10 trusts the lengths and object sizes of a global heap collection (H5HG): a
/// damaged byte there makes `H5Dread` of a vlen string dataset copy past its buffers (the
/// SIGSEGVs and ASan reports of the corrupt-metadata suite). This reader takes the stored
/// heap IDs (length, collection address, object index) of each element from the dataset's raw
/// bytes, reads each global heap collection once, and checks every size and offset against the
/// collection and the file before copying a byte. It is also much faster than libhdf5's
/// per-element heap lookups on large obs/var columns.
///
/// Format: HDF5 File Format Specification v3, "III.E Global Heap" and "II.D Variable-length
/// data" (a heap ID is a 4-byte length, an address of the file's address size and a 4-byte
/// object index; a collection is "GCOL", version 1, its size, then objects of a 2-byte index,
/// 2-byte reference count, 4 reserved bytes, a size and the data padded to 8 bytes; index 0 is
/// the free space).
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace celltyper::detail {

/// The `count` strings of a variable-length string dataset (1-D or scalar), or nullopt when this
/// reader does not handle its storage (compact layout, filters other than deflate and shuffle, a
/// user block, a file driver other than the local one and celltyper's remote
/// one): the caller then uses H5Dread. Throws InputError naming the file and dataset when the
/// stored bytes are damaged (a heap ID or object outside its collection or the file, a missing
/// chunk, a chunk that does not inflate). A string holding a NUL byte ends there, as with
/// libhdf5's C strings; a null reference (address 0) reads as "". Caller holds the HDF5 lock.
std::optional<std::vector<std::string>> read_vlen_strings(hid_t dataset, std::size_t count);

}  // namespace celltyper::detail
