// Incremental SHA-1 over streamed bytes (OpenSSL EVP), producing lower-case hex.
// Used by the fetcher to verify content while it streams in, and by tests and tools.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace kacheryfs {

class Sha1Hasher {
 public:
  Sha1Hasher();
  ~Sha1Hasher();
  Sha1Hasher(const Sha1Hasher&) = delete;
  Sha1Hasher& operator=(const Sha1Hasher&) = delete;

  void update(const void* data, std::size_t size);
  // Returns the digest as 40 hex characters; the hasher is then reset for reuse.
  std::string final_hex();

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
};

std::string sha1_hex_of(std::string_view bytes);

// Loads OpenSSL's SHA-1 (and its config) now, so that the first file read does not wait
// for it.
void warm_up_sha1();

}  // namespace kacheryfs
