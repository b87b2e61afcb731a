// prometheus_text: every family has HELP and TYPE, label values are escaped, the histogram
// is cumulative with +Inf equal to its count; write_file_atomically replaces a file whole.
#include "support/prometheus_text.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace kacheryfs {
namespace {

std::string line_of(const std::string& text, const std::string& start) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with(start)) return line;
  return "";
}

// The value of the sample written exactly as `sample` (name and labels), "" if absent.
std::string value_of(const std::string& text, const std::string& sample) {
  std::string line = line_of(text, sample + " ");
  return line.empty() ? "" : line.substr(sample.size() + 1);
}

TEST(PrometheusText, FamiliesSamplesAndEscapes) {
  Counters totals;
  totals.add(Counter::kHits, 7);
  totals.add(Counter::kBytesFetched, 12345);
  totals.count_eio(EioSite::kBlockChecksum);
  totals.observe_request(std::chrono::milliseconds(3));
  totals.observe_request(std::chrono::milliseconds(300));
  MetricsSnapshot snapshot;
  snapshot.mount_up = true;
  snapshot.cache_dir = "/c\"a\\b\nd";
  snapshot.nodes = {{"http://a:1", true, 10}, {"http://b:2", false, 0}};
  snapshot.cache_bytes = 99;
  snapshot.totals = &totals;
  std::string text = prometheus_text(snapshot);

  EXPECT_EQ(line_of(text, "kacheryfs_up"), R"(kacheryfs_up{cache_dir="/c\"a\\b\nd"} 1)");
  EXPECT_EQ(value_of(text, "kacheryfs_node_up{node=\"http://b:2\"}"), "0");
  EXPECT_EQ(value_of(text, "kacheryfs_cache_hits_total"), "7");
  EXPECT_EQ(value_of(text, "kacheryfs_downloaded_bytes_total"), "12345");
  EXPECT_EQ(value_of(text, "kacheryfs_eio_total{site=\"block_checksum\"}"), "1");
  EXPECT_EQ(value_of(text, "kacheryfs_request_duration_seconds_bucket{le=\"0.001\"}"), "0");
  EXPECT_EQ(value_of(text, "kacheryfs_request_duration_seconds_bucket{le=\"0.005\"}"), "1");
  EXPECT_EQ(value_of(text, "kacheryfs_request_duration_seconds_bucket{le=\"+Inf\"}"), "2");
  EXPECT_EQ(value_of(text, "kacheryfs_request_duration_seconds_count"), "2");
  // Every sample's family was announced by a # TYPE line before it.
  std::istringstream lines(text);
  std::string family;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# TYPE ")) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (!line.starts_with("#")) {
      EXPECT_TRUE(line.starts_with(family)) << line << " outside " << family;
    }
  }
  EXPECT_EQ(text.back(), '\n');
}

TEST(PrometheusText, WriteFileAtomicallyReplacesAndLeavesNoTemp) {
  auto dir = std::filesystem::temp_directory_path() / ("prom-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "x.prom").string();
  EXPECT_EQ(write_file_atomically(path, "a 1\n"), "");
  EXPECT_EQ(write_file_atomically(path, "a 2\n"), "");
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "a 2\n");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
  std::string error = write_file_atomically((dir / "missing" / "x.prom").string(), "a 1\n");
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kacheryfs
