// libFuzzer target: a large file's page map and verified-chunks file as read back from a
// cache dir after a crash (any bytes), with a size and page size from the first bytes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "cache/cache_layout.h"
#include "cache/partial_file.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  static const fs::path root = fs::temp_directory_path() / ("kfs-fuzz-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "partial");
  kacheryfs::CacheLayout layout(root);
  const std::string sha1(40, 'a');
  std::uint64_t page_size = 1u << (4 + data[0] % 8);         // 16 B .. 2 KiB
  std::uint64_t file_size = (data[1] | (data[2] << 8)) + 1;  // 1 .. 65536
  std::size_t map_bytes = (size - 3) * data[3] / 256;
  std::ofstream(layout.page_map(sha1), std::ios::binary)
      .write(reinterpret_cast<const char*>(data + 4), static_cast<std::streamsize>(map_bytes));
  std::ofstream(layout.verified_chunks(sha1), std::ios::binary)
      .write(reinterpret_cast<const char*>(data + 4 + map_bytes),
             static_cast<std::streamsize>(size - 4 - map_bytes));
  std::ofstream(layout.partial_data(sha1), std::ios::binary)
      .seekp(static_cast<std::streamoff>(file_size) - 1)
      .put(0);
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
