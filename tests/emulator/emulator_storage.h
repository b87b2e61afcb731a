// The emulator's kachery storage dir: content at sha1/ab/cd/ef/<sha1> (or a <sha1>.link
// JSON pointing at a file elsewhere), manifests for files over 20,000,000 bytes, the node
// id, and the mutables the daemon keeps (as mutables.json). Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace kachery_emulator {

inline constexpr std::uint64_t kManifestChunk = 20000000;

struct StoredFile {
  std::filesystem::path data_path;  // where the bytes are (the content file, or a link's target)
  std::uint64_t size = 0;
};

struct StoreResult {
  std::string sha1;
  std::optional<std::string> manifest_sha1;
};

class Storage {
 public:
  explicit Storage(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path content_path(const std::string& sha1) const;
  std::optional<StoredFile> find(const std::string& sha1) const;
  const std::string& node_id() const { return node_id_; }

  // Stores bytes as content (and a manifest for large ones).
  StoreResult store_bytes(const std::string& bytes);
  // Stores a copy of a local file; nullopt if it cannot be read.
  std::optional<StoreResult> store_file(const std::filesystem::path& path);
  // Records a .link to a local file instead of copying it.
  std::optional<StoreResult> link_file(const std::filesystem::path& path, double mtime);

  std::optional<nlohmann::json> mutable_get(const std::string& key);
  void mutable_set(const std::string& key, const nlohmann::json& value);

 private:
  std::optional<std::string> manifest_for(const std::filesystem::path& path, std::uint64_t size,
                                          const std::string& sha1);
  void place(const std::string& sha1, const std::filesystem::path& source_temp);
  std::filesystem::path temp_path() const;

  std::filesystem::path root_;
  std::string node_id_;
  std::mutex mutables_mutex_;
};

std::string sha1_of_file(const std::filesystem::path& path, std::uint64_t offset,
                         std::uint64_t length);

}  // namespace kachery_emulator
