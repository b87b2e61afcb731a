#include "support/cancel_token.h"

#include <utility>

namespace kacheryfs {

CancelSubscription& CancelSubscription::operator=(CancelSubscription&& other) noexcept {
  if (this != &other) {
    if (signal_) signal_->unsubscribe(wake_);
    signal_ = std::exchange(other.signal_, nullptr);
    wake_ = other.wake_;
  }
  return *this;
}

CancelSubscription::~CancelSubscription() {
  if (signal_) signal_->unsubscribe(wake_);
}

void CancelSignal::fire() {
  std::lock_guard lock(mutex_);
  if (fired_.exchange(true)) return;
  // Under the lock, so that an unsubscribe that returns has seen its wake-up finish.
  for (auto& wake : wakes_) wake();
}

bool CancelSignal::fired() const { return fired_.load(); }

CancelSubscription CancelSignal::subscribe(std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  return {this, wakes_.insert(wakes_.end(), std::move(wake))};
}

void CancelSignal::unsubscribe(std::list<std::function<void()>>::iterator wake) {
  std::lock_guard lock(mutex_);
  wakes_.erase(wake);
}

bool sleep_unless_cancelled(std::chrono::milliseconds duration, const CancelToken& cancel) {
  std::mutex mutex;
  std::condition_variable never_changed;
  DeadlineToken until(cancel, CancelToken::Clock::now() + duration);
  wait_unless_cancelled(mutex, never_changed, until, [] { return false; });
  return !cancel.cancelled();
}

}  // namespace kacheryfs
