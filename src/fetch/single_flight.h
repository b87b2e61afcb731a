// Collapses concurrent calls for the same key into one: the first caller (the leader) runs
// the work, later callers wait for its result. Each waiter is woken by its own CancelToken, so a
// follower that is interrupted leaves without disturbing the leader. Used by the fetcher
// so that N readers of one uncached file cause one download.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "support/cancel_token.h"

namespace kacheryfs {

template <class Value>
class SingleFlight {
 public:
  // Callers that joined the run of `key` in flight now, besides its leader (0: none).
  std::size_t followers(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(key);
    return it == calls_.end() ? 0 : it->second->followers;
  }

  // Returns the result of fn, run once among concurrent callers with the same key, or
  // nullopt when this caller (a follower) was cancelled before the leader finished.
  std::optional<Value> run(const std::string& key, const std::function<Value()>& fn,
                           const CancelToken& cancel) {
    std::shared_ptr<Call> call;
    bool leader = false;
    {
      std::lock_guard lock(mutex_);
      auto [it, inserted] = calls_.try_emplace(key);
      if (inserted) it->second = std::make_shared<Call>();
      call = it->second;
      leader = inserted;
      if (!leader) ++call->followers;
    }
    if (leader) {
      Value result = fn();
      std::size_t followers = 0;
      {
        std::lock_guard lock(mutex_);
        calls_.erase(key);
        followers = call->followers;  // final: no one can join the call now
      }
      // The followers get a copy; a leader alone keeps its result as it is (it may hold
      // megabytes, and a copy costs page faults on the lookup's path).
      if (followers > 0) {
        {
          std::lock_guard lock(call->mutex);
          call->result = result;
        }
        call->done.notify_all();
      }
      return result;
    }
    if (!wait_unless_cancelled(call->mutex, call->done, cancel,
                               [&] { return call->result.has_value(); }))
      return std::nullopt;
    std::lock_guard lock(call->mutex);
    return call->result;
  }

 private:
  struct Call {
    std::size_t followers = 0;  // guarded by SingleFlight::mutex_
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Value> result;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Call>> calls_;
};

}  // namespace kacheryfs
