// The LZF decoder behind h5py's compression="lzf" (HDF5 filter 32000): hand-made streams of
// every token kind, then the malformed ones, which must be refused without reading or writing
// outside the buffers (whole files: tests/data/h5ad/*_lzf.h5ad in h5ad_fixtures_test.cpp).
#include "io/lzf_filter.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace celltyper::detail {
namespace {

std::int64_t decode(const std::vector<std::uint8_t>& in, std::vector<std::uint8_t>& out) {
  return lzf_decompress(in.data(), in.size(), out.data(), out.size());
}

TEST(Lzf, LiteralsAndBackReferencesDecode) {
  // "abc" as a literal run (control 2 = 3 bytes), then a reference of length 7 + 2... written
  // as control (5 << 5) | 0 with distance byte 2 (distance 3): 5 + 2 = 7 bytes repeating "abc"
  // (the source overlaps the bytes it writes), then a literal "Z".
  const std::vector<std::uint8_t> stream{2, 'a', 'b', 'c', (5U << 5U) | 0U, 2, 0, 'Z'};
  std::vector<std::uint8_t> out(64, 0);
  const std::int64_t n = decode(stream, out);
  ASSERT_EQ(n, 11);
  EXPECT_EQ(std::string(out.begin(), out.begin() + n), "abcabcabcaZ");
}

TEST(Lzf, LongReferencesTakeAnExtraLengthByte) {
  // control (7 << 5): length 7 + next byte (200) + 2 = 209, distance 0 * 256 + 0 + 1 = 1: one byte repeated.
  const std::vector<std::uint8_t> stream{0, 'x', 7U << 5U, 200, 0};
  std::vector<std::uint8_t> out(210, 0);
  ASSERT_EQ(decode(stream, out), 210);
  for (const std::uint8_t byte : out) ASSERT_EQ(byte, 'x');
  // A distance with its high bits in the control byte: 256 * 1 + 4 + 1 = 261 back.
  std::vector<std::uint8_t> far{31};
  for (int i = 0; i < 32; ++i) far.push_back(static_cast<std::uint8_t>(i));
  for (int run = 0; run < 8; ++run) {
    far.push_back(31);
    for (int i = 0; i < 32; ++i) far.push_back(static_cast<std::uint8_t>(32 * (run + 1) + i));
  }
  // 288 bytes so far; copy 3 bytes from 261 back (position 27).
  far.push_back((1U << 5U) | 1U);
  far.push_back(4);
  std::vector<std::uint8_t> wide(291, 0);
  ASSERT_EQ(decode(far, wide), 291);
  EXPECT_EQ(wide[288], 27);
  EXPECT_EQ(wide[290], 29);
}

TEST(Lzf, MalformedStreamsAndSmallBuffersAreRefused) {
  std::vector<std::uint8_t> out(16, 0);
  EXPECT_EQ(decode({5, 'a', 'b'}, out), -2);             // a literal run past the end of the input
  EXPECT_EQ(decode({0, 'a', 1U << 5U, 5}, out), -2);     // a reference 6 bytes back after 1 byte
  EXPECT_EQ(decode({0, 'a', 1U << 5U}, out), -2);        // a reference without its distance byte
  EXPECT_EQ(decode({0, 'a', 7U << 5U}, out), -2);        // a long reference without its length byte
  EXPECT_EQ(decode({1U << 5U, 0}, out), -2);             // a reference before any byte
  EXPECT_EQ(decode({0, 'a', 7U << 5U, 100, 0}, out), -1);  // 109 bytes into 16
  std::vector<std::uint8_t> tiny(2, 0);
  EXPECT_EQ(decode({2, 'a', 'b', 'c'}, tiny), -1);
  EXPECT_EQ(decode({}, tiny), 0);
}

}  // namespace
}  // namespace celltyper::detail
