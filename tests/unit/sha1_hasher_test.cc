#include "kachery/sha1_hasher.h"

#include <gtest/gtest.h>

#include <string>

#include "kachery/hash_name.h"

namespace kacheryfs {
namespace {

TEST(Sha1Hasher, KnownVectors) {
  EXPECT_EQ(sha1_hex_of(""), std::string(kEmptySha1));
  EXPECT_EQ(sha1_hex_of("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(Sha1Hasher, IncrementalEqualsOneShotAndResets) {
  std::string data(100000, 'x');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  Sha1Hasher hasher;
  for (std::size_t i = 0; i < data.size(); i += 999) {
    std::string piece = data.substr(i, 999);
    hasher.update(piece.data(), piece.size());
  }
  EXPECT_EQ(hasher.final_hex(), sha1_hex_of(data));
  hasher.update("abc", 3);
  EXPECT_EQ(hasher.final_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

}  // namespace
}  // namespace kacheryfs
