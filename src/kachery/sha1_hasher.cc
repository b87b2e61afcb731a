#include "kachery/sha1_hasher.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace kacheryfs {

namespace {

// The SHA-1 implementation, fetched from OpenSSL's provider once per process: EVP_sha1()
// would be looked up again at every init. The first fetch also loads OpenSSL's config.
const EVP_MD* sha1_algorithm() {
  static EVP_MD* const algorithm = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    if (fetched == nullptr) throw std::runtime_error("OpenSSL: no SHA-1 implementation");
    return fetched;
  }();
  return algorithm;
}

}  // namespace

void warm_up_sha1() { sha1_algorithm(); }

void Sha1Hasher::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha1Hasher::Sha1Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), sha1_algorithm(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-1");
  }
}

Sha1Hasher::~Sha1Hasher() = default;

void Sha1Hasher::update(const void* data, std::size_t size) {
  EVP_DigestUpdate(ctx_.get(), data, size);
}

std::string Sha1Hasher::final_hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest, &length);
  EVP_DigestInit_ex(ctx_.get(), sha1_algorithm(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

std::string sha1_hex_of(std::string_view bytes) {
  Sha1Hasher hasher;
  hasher.update(bytes.data(), bytes.size());
  return hasher.final_hex();
}

}  // namespace kacheryfs
