#include "emulator_storage.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"

namespace kachery_emulator {

namespace fs = std::filesystem;
using kacheryfs::Sha1Hasher;

namespace {

std::string random_hex(std::size_t length) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < length; ++i) s.push_back(kHex[rng() % 16]);
  return s;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

std::string sha1_of_file(const fs::path& path, std::uint64_t offset, std::uint64_t length) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  Sha1Hasher hasher;
  std::vector<char> buffer(1 << 20);
  while (fd >= 0 && length > 0) {
    ssize_t n = pread(fd, buffer.data(), std::min<std::uint64_t>(buffer.size(), length),
                      static_cast<off_t>(offset));
    if (n <= 0) break;
    hasher.update(buffer.data(), static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
    length -= static_cast<std::uint64_t>(n);
  }
  if (fd >= 0) close(fd);
  return hasher.final_hex();
}

Storage::Storage(fs::path root) : root_(fs::absolute(std::move(root)).lexically_normal()) {
  if (root_.has_filename() == false) root_ = root_.parent_path();
  fs::create_directories(root_ / "sha1");
  fs::path id_path = root_ / "kachery-node-id";
  node_id_ = read_all(id_path);
  if (node_id_.size() != 64) {
    node_id_ = random_hex(64);
    std::ofstream(id_path, std::ios::binary) << node_id_;
  }
}

fs::path Storage::content_path(const std::string& sha1) const {
  return root_ / kacheryfs::storage_relpath(sha1);
}

std::optional<StoredFile> Storage::find(const std::string& sha1) const {
  if (!kacheryfs::is_sha1_name(sha1)) return std::nullopt;  // upper case is never stored
  struct stat st {};
  fs::path path = content_path(sha1);
  if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    return StoredFile{path, static_cast<std::uint64_t>(st.st_size)};
  }
  fs::path link = path.string() + ".link";
  if (stat(link.c_str(), &st) != 0) return std::nullopt;
  auto json = nlohmann::json::parse(read_all(link), nullptr, false);
  if (json.is_discarded() || !json.contains("path") || !json["path"].is_string())
    return std::nullopt;
  fs::path target = json["path"].get<std::string>();
  if (stat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return StoredFile{target, static_cast<std::uint64_t>(st.st_size)};
}

fs::path Storage::temp_path() const {
  static std::atomic<unsigned> counter{0};
  return root_ /
         ("store.file." + std::to_string(getpid()) + "." + std::to_string(counter++) + ".tmp");
}

void Storage::place(const std::string& sha1, const fs::path& source_temp) {
  fs::path target = content_path(sha1);
  fs::create_directories(target.parent_path());
  chmod(source_temp.c_str(), 0644);
  fs::rename(source_temp, target);
}

std::optional<std::string> Storage::manifest_for(const fs::path& path, std::uint64_t size,
                                                 const std::string& sha1) {
  if (size <= kManifestChunk) return std::nullopt;
  nlohmann::ordered_json manifest;
  manifest["size"] = size;
  manifest["sha1"] = sha1;
  manifest["chunks"] = nlohmann::ordered_json::array();
  for (std::uint64_t start = 0; start < size; start += kManifestChunk) {
    std::uint64_t end = std::min(size, start + kManifestChunk);
    nlohmann::ordered_json chunk;
    chunk["start"] = start;
    chunk["end"] = end;
    chunk["sha1"] = sha1_of_file(path, start, end - start);
    manifest["chunks"].push_back(chunk);
  }
  return store_bytes(manifest.dump()).sha1;
}

StoreResult Storage::store_bytes(const std::string& bytes) {
  fs::path temp = temp_path();
  std::ofstream(temp, std::ios::binary) << bytes;
  std::string sha1 = kacheryfs::sha1_hex_of(bytes);
  place(sha1, temp);
  return {sha1, manifest_for(content_path(sha1), bytes.size(), sha1)};
}

std::optional<StoreResult> Storage::store_file(const fs::path& path) {
  fs::path temp = temp_path();
  std::error_code ec;
  fs::copy_file(path, temp, fs::copy_options::overwrite_existing, ec);
  if (ec) return std::nullopt;
  std::uint64_t size = fs::file_size(temp);
  std::string sha1 = sha1_of_file(temp, 0, size);
  place(sha1, temp);
  return StoreResult{sha1, manifest_for(content_path(sha1), size, sha1)};
}

std::optional<StoreResult> Storage::link_file(const fs::path& path, double mtime) {
  std::error_code ec;
  std::uint64_t size = fs::file_size(path, ec);
  if (ec) return std::nullopt;
  std::string sha1 = sha1_of_file(path, 0, size);
  std::optional<std::string> manifest = manifest_for(path, size, sha1);
  nlohmann::ordered_json link;
  link["path"] = path.string();
  link["manifestSha1"] =
      manifest ? nlohmann::ordered_json(*manifest) : nlohmann::ordered_json(nullptr);
  link["stat"] = {{"size", size}, {"mtime", mtime}};
  fs::path link_path = content_path(sha1).string() + ".link";
  fs::create_directories(link_path.parent_path());
  fs::path temp = temp_path();
  std::ofstream(temp, std::ios::binary) << link.dump();
  chmod(temp.c_str(), 0644);
  fs::rename(temp, link_path);
  return StoreResult{sha1, manifest};
}

std::optional<nlohmann::json> Storage::mutable_get(const std::string& key) {
  std::lock_guard lock(mutables_mutex_);
  auto all = nlohmann::json::parse(read_all(root_ / "mutables.json"), nullptr, false);
  if (all.is_discarded() || !all.is_object() || !all.contains(key)) return std::nullopt;
  return all[key];
}

void Storage::mutable_set(const std::string& key, const nlohmann::json& value) {
  std::lock_guard lock(mutables_mutex_);
  auto all = nlohmann::json::parse(read_all(root_ / "mutables.json"), nullptr, false);
  if (all.is_discarded() || !all.is_object()) all = nlohmann::json::object();
  all[key] = value;
  fs::path temp = temp_path();
  std::ofstream(temp, std::ios::binary) << all.dump();
  fs::rename(temp, root_ / "mutables.json");
}

}  // namespace kachery_emulator
