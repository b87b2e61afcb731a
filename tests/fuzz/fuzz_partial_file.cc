// libFuzzer target: a large file's page map and verified-chunks file as read back from a
// cache dir after a crash (any bytes), with a size and page size from the first bytes.
// The cache dir is made once per process; each input rewrites its three files in place
// (truncate and write), so an input costs a few syscalls rather than a directory tree.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "cache/cache_layout.h"
#include "cache/partial_file.h"

namespace fs = std::filesystem;

namespace {

const kacheryfs::CacheLayout& fuzz_layout() {
  static const kacheryfs::CacheLayout layout = [] {
    fs::path root = fs::temp_directory_path() / ("kfs-fuzz-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "partial");
    return kacheryfs::CacheLayout(root);
  }();
  return layout;
}

// Replaces the file's bytes with `length` bytes of `bytes`, then sets its size to `size`.
void rewrite(const fs::path& path, const std::uint8_t* bytes, std::size_t length, off_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) __builtin_trap();
  if (length > 0 && ::write(fd, bytes, length) != static_cast<ssize_t>(length)) __builtin_trap();
  if (::ftruncate(fd, size) != 0) __builtin_trap();
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const kacheryfs::CacheLayout& layout = fuzz_layout();
  const std::string sha1(40, 'a');
  std::uint64_t page_size = 1u << (4 + data[0] % 8);         // 16 B .. 2 KiB
  std::uint64_t file_size = (data[1] | (data[2] << 8)) + 1;  // 1 .. 65536
  std::size_t map_bytes = (size - 3) * data[3] / 256;
  std::size_t chunk_bytes = size - 4 - map_bytes;
  rewrite(layout.page_map(sha1), data + 4, map_bytes, static_cast<off_t>(map_bytes));
  rewrite(layout.verified_chunks(sha1), data + 4 + map_bytes, chunk_bytes,
          static_cast<off_t>(chunk_bytes));
  rewrite(layout.partial_data(sha1), nullptr, 0, static_cast<off_t>(file_size));
  auto file = kacheryfs::PartialFile::open(layout, sha1, file_size, page_size);
  if (file.ok()) {
    auto& partial = *file;
    if (partial->cached_bytes() > file_size) __builtin_trap();
    for (std::uint64_t page = 0; page < partial->page_count(); ++page) (void)partial->present(page);
    kacheryfs::Manifest manifest{file_size, sha1, {{0, file_size, std::string(40, 'b')}}};
    partial->set_manifest(manifest);
    if (partial->verified_chunk_count() > 1) __builtin_trap();
  }
  return 0;
}
