// Cancellation of slow work, by notification. A CancelToken says whether the work it
// stands for is cancelled, and wakes whoever waits for it: a waiter subscribes a wake-up
// (on_cancel) and sleeps on its own condition variable or io_context, and a deadline, if
// the token has one, is slept until. Nothing polls. fuse/ fires a token when the kernel
// interrupts a request (the reader got a signal, e.g. Ctrl-C), so the core abandons a slow
// fetch and the reader sees EINTR.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <optional>

namespace kacheryfs {

class CancelSignal;

// While it lives, its wake-up is called when the token is cancelled. Once destroyed, the
// wake-up is not running and never will be. Destroy it without holding a lock that the
// wake-up takes.
class CancelSubscription {
 public:
  CancelSubscription() = default;
  CancelSubscription(CancelSignal* signal, std::list<std::function<void()>>::iterator wake)
      : signal_(signal), wake_(wake) {}
  CancelSubscription(CancelSubscription&& other) noexcept { *this = std::move(other); }
  CancelSubscription& operator=(CancelSubscription&& other) noexcept;
  ~CancelSubscription();

 private:
  CancelSignal* signal_ = nullptr;
  std::list<std::function<void()>>::iterator wake_;
};

// The flag and wake-up list behind a token that can be cancelled. Thread-safe.
class CancelSignal {
 public:
  // Sets the flag and calls every wake-up subscribed, once; later calls do nothing.
  void fire();
  bool fired() const;
  // `wake` is called by fire(), from the thread that fires, with no lock of the waiter's
  // held. It is not called for a fire() that came before: check fired() after subscribing.
  CancelSubscription subscribe(std::function<void()> wake);

 private:
  friend class CancelSubscription;
  void unsubscribe(std::list<std::function<void()>>::iterator wake);

  std::mutex mutex_;                // the wake-up list; held while wake-ups run
  std::atomic<bool> fired_{false};  // read without the lock (waiters hold their own)
  std::list<std::function<void()>> wakes_;
};

class CancelToken {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~CancelToken() = default;
  virtual bool cancelled() const = 0;
  // Calls `wake` when the token is cancelled after this returns (see CancelSignal).
  virtual CancelSubscription on_cancel(std::function<void()> wake) const = 0;
  // When the token counts as cancelled without calling anyone, if ever.
  virtual std::optional<Clock::time_point> deadline() const { return std::nullopt; }
};

class NeverCancelled final : public CancelToken {
 public:
  bool cancelled() const override { return false; }
  CancelSubscription on_cancel(std::function<void()>) const override { return {}; }
};

// Cancelled by a call of cancel(), from any thread.
class CancelSource final : public CancelToken {
 public:
  void cancel() { signal_.fire(); }
  bool cancelled() const override { return signal_.fired(); }
  CancelSubscription on_cancel(std::function<void()> wake) const override {
    return signal_.subscribe(std::move(wake));
  }

 private:
  mutable CancelSignal signal_;
};

// Cancelled when the token it wraps is, or once a deadline has passed.
class DeadlineToken final : public CancelToken {
 public:
  DeadlineToken(const CancelToken& inner, Clock::time_point deadline)
      : inner_(inner), deadline_(deadline) {}
  bool cancelled() const override { return inner_.cancelled() || expired(); }
  CancelSubscription on_cancel(std::function<void()> wake) const override {
    return inner_.on_cancel(std::move(wake));
  }
  std::optional<Clock::time_point> deadline() const override {
    auto inner = inner_.deadline();
    return inner && *inner < deadline_ ? *inner : deadline_;
  }
  bool expired() const { return Clock::now() >= deadline_; }

 private:
  const CancelToken& inner_;
  Clock::time_point deadline_;
};

// Waits on `changed` until done() holds (true), or the token is cancelled or its deadline
// passes (false). done() runs with `mutex` held; whoever makes it true notifies `changed`
// after changing the state under `mutex`. Call it without holding `mutex`.
template <class Done>
bool wait_unless_cancelled(std::mutex& mutex, std::condition_variable& changed,
                           const CancelToken& cancel, Done done) {
  CancelSubscription woken = cancel.on_cancel([&] {
    std::lock_guard lock(mutex);
    changed.notify_all();
  });
  const auto deadline = cancel.deadline();
  std::unique_lock lock(mutex);
  while (!done()) {
    if (cancel.cancelled()) return false;
    if (deadline)
      changed.wait_until(lock, *deadline);
    else
      changed.wait(lock);
  }
  return true;
}

// Sleeps for `duration` unless the token is cancelled first: false if it was.
bool sleep_unless_cancelled(std::chrono::milliseconds duration, const CancelToken& cancel);

}  // namespace kacheryfs
