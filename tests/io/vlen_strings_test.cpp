// Variable-length string datasets read by celltyper's own heap reader (src/io/vlen_strings.cpp,
// issue #19): the same strings as libhdf5's H5Dread for every storage layout h5py and anndata
// write, and a clean InputError naming the file and dataset for each kind of damaged heap
// (where libhdf5 1.10 copies past its buffers).
#include <celltyper/error.hpp>

#include "io/hdf5_util.hpp"
#include "io/vlen_strings.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <array>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace celltyper {
namespace {

using h5::Handle;

enum class Layout { kContiguous, kChunked, kChunkedFiltered, kScalar };

std::vector<std::string> sample_strings() {
  std::vector<std::string> values = {"CD3E", "", "MS4A1", "\xce\xb2-actin (ACTB)", "a,b;c", std::string(5000, 'x') + "END"};
  for (int i = 0; i < 40; ++i) values.push_back("GENE" + std::to_string(i * 7919));
  return values;
}

/// Write `values` as a vlen UTF-8 string dataset "/names" with the given storage.
void write_dataset(const std::string& path, const std::vector<std::string>& values, Layout layout) {
  auto lock = h5::hdf5_lock();
  Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_TRUE(file.valid());
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  std::vector<const char*> pointers;
  for (const auto& value : values) pointers.push_back(value.c_str());
  const hsize_t n = layout == Layout::kScalar ? 1 : values.size();
  Handle space(layout == Layout::kScalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr));
  Handle plist(H5Pcreate(H5P_DATASET_CREATE));
  if (layout == Layout::kChunked || layout == Layout::kChunkedFiltered) {
    const hsize_t chunk = 7;  // the last chunk is partial
    H5Pset_chunk(plist.get(), 1, &chunk);
  }
  if (layout == Layout::kChunkedFiltered) {  // h5py's order (libhdf5 refuses fletcher32 on vlen types)
    H5Pset_shuffle(plist.get());
    H5Pset_deflate(plist.get(), 4);
  }
  Handle dataset(H5Dcreate2(file.get(), "names", type.get(), space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT));
  ASSERT_TRUE(dataset.valid());
  ASSERT_GE(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), 0);
}

/// libhdf5's own reading of "/names" (the reference).
std::vector<std::string> read_with_libhdf5(const std::string& path) {
  auto lock = h5::hdf5_lock();
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  Handle dataset(H5Dopen2(file.get(), "names", H5P_DEFAULT));
  Handle space(H5Dget_space(dataset.get()));
  const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get()));
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  std::vector<char*> pointers(n, nullptr);
  EXPECT_GE(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), 0);
  std::vector<std::string> values;
  for (char* pointer : pointers) values.emplace_back(pointer == nullptr ? "" : pointer);
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, pointers.data());
  return values;
}

/// celltyper's reader on "/names"; nullopt when it leaves the dataset to libhdf5.
std::optional<std::vector<std::string>> read_direct(const std::string& path) {
  auto lock = h5::hdf5_lock();
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  Handle dataset(H5Dopen2(file.get(), "names", H5P_DEFAULT));
  Handle space(H5Dget_space(dataset.get()));
  return detail::read_vlen_strings(dataset.get(), static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())));
}

TEST(VlenStrings, SameStringsAsLibhdf5ForEveryLayout) {
  test::TempDir dir;
  const auto values = sample_strings();
  for (const Layout layout : {Layout::kContiguous, Layout::kChunked, Layout::kChunkedFiltered, Layout::kScalar}) {
    SCOPED_TRACE(static_cast<int>(layout));
    const std::string path = dir.file("strings.h5");
    write_dataset(path, values, layout);
    const auto direct = read_direct(path);
    ASSERT_TRUE(direct.has_value());  // every layout above is read by celltyper's reader
    const auto reference = read_with_libhdf5(path);
    EXPECT_EQ(*direct, reference);
    if (layout == Layout::kScalar) {
      EXPECT_EQ(*direct, std::vector<std::string>{values.front()});
    } else {
      EXPECT_EQ(*direct, values);
    }
  }
}

std::uint64_t le(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
void put_le(char* p, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

TEST(VlenStrings, DamagedHeapIsAnInputErrorNamingTheFile) {
  test::TempDir dir;
  const std::string clean = dir.file("clean.h5");
  write_dataset(clean, sample_strings(), Layout::kContiguous);
  haddr_t ids_at = 0;
  {
    auto lock = h5::hdf5_lock();
    Handle file(H5Fopen(clean.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    Handle dataset(H5Dopen2(file.get(), "names", H5P_DEFAULT));
    ids_at = H5Dget_offset(dataset.get());
  }
  const std::string bytes = test::read_file(clean);
  // Element 0 ("CD3E"): 4-byte length, 8-byte collection address, 4-byte object index.
  const char* id = bytes.data() + ids_at;
  ASSERT_EQ(le(id, 4), 4u);
  const std::uint64_t collection = le(id + 4, 8);
  const std::uint64_t index = le(id + 12, 4);
  ASSERT_EQ(std::string(bytes.data() + collection, 4), "GCOL");
  // Find element 0's object in the collection: index(2) refs(2) reserved(4) size(8) data.
  std::size_t object = collection + 16;
  while (le(bytes.data() + object, 2) != index) object += 16 + (le(bytes.data() + object + 8, 8) + 7) / 8 * 8;
  ASSERT_EQ(std::string(bytes.data() + object + 16, 4), "CD3E");

  struct Damage {
    const char* name;
    std::size_t at;
    std::uint64_t value;
    int width;
    const char* message;
  };
  const std::vector<Damage> damages = {
      {"object size beyond the collection", object + 8, 0xFFFFF0, 8, "beyond the collection's"},
      {"object index not in the collection", ids_at + 12, 9999, 4, "which it does not hold"},
      {"string longer than its object", ids_at, 4000, 4, "its heap object holds"},
      {"collection address beyond the file", ids_at + 4, 1ull << 40, 8, "lies beyond the file"},
      {"collection signature", collection, 0x4C4F4358, 4, "no global heap collection"},
      {"collection size", collection + 8, 1ull << 33, 8, "claims"},
  };
  for (const auto& damage : damages) {
    SCOPED_TRACE(damage.name);
    std::string broken = bytes;
    put_le(broken.data() + damage.at, damage.value, damage.width);
    const std::string path = dir.file("broken.h5");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << broken;
    try {
      (void)read_direct(path);
      ADD_FAILURE() << "no error";
    } catch (const InputError& error) {
      const std::string message = error.what();
      EXPECT_EQ(message.rfind(path + ":/names: ", 0), 0u) << message;
      EXPECT_NE(message.find(damage.message), std::string::npos) << message;
      EXPECT_NE(message.find("the file is corrupt"), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace celltyper
