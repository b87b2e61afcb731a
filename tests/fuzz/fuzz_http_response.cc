// libFuzzer target: the HTTP response parser from memory, as fast as it parses. The first
// byte says how the rest arrives: whole (0) or in pieces of that many bytes, the way socket
// reads split it. The rest is a stream of pipelined responses, parsed one after another
// until it fails or ends, then end-of-file. Checks what the connection relies on.
#include <cstddef>
#include <cstdint>
#include <string>

#include "response_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = data[0] == 0 ? size : data[0];
  const char* stream = reinterpret_cast<const char*>(data + 1);
  const std::size_t stream_size = size - 1;
  std::size_t arrived = 0;   // bytes of the stream the "socket" has delivered so far
  std::size_t consumed = 0;  // of those, the bytes parsers have used
  auto arrive = [&] {
    std::size_t n = std::min(piece, stream_size - arrived);
    arrived += n;
    return n > 0;
  };
  for (int response = 0; response < 64; ++response) {
    std::uint64_t sunk = 0;
    kacheryfs::BodySink sink = [&](const char* bytes, std::size_t n) {
      // Body bytes come straight from the stream, and only from what has arrived.
      if (n == 0 || bytes < stream || bytes + n > stream + arrived) __builtin_trap();
      sunk += n;
      return true;
    };
    kacheryfs::ResponseParser parser(sink);
    using Step = kacheryfs::ResponseParser::Step;
    Step step = Step::kMore;
    for (;;) {
      std::size_t used = 0;
      step = parser.feed(stream + consumed, arrived - consumed, &used);
      if (used > arrived - consumed) __builtin_trap();
      consumed += used;
      if (step != Step::kMore) break;
      if (!arrive()) {
        step = parser.end_of_stream();
        break;
      }
    }
    const kacheryfs::HttpOutcome& outcome = parser.outcome();
    if (outcome.body_bytes != sunk) __builtin_trap();
    if (outcome.error_body.size() > 64 * 1024) __builtin_trap();
    if (step == Step::kFailed && outcome.error == kacheryfs::TransportError::kNone)
      __builtin_trap();
    if (outcome.detail.find('\n') != std::string::npos) __builtin_trap();
    if (step == Step::kDone &&
        (outcome.status < 200 && outcome.status != 101 && outcome.status >= 100))
      __builtin_trap();  // 1xx replies are skipped, never the answer
    if (step != Step::kDone || !parser.keep_alive()) break;
  }
  return 0;
}
