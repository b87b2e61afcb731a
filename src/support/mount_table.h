// The mount table as the kernel lists it (/proc/self/mountinfo), read without a lookup
// into any mount: which device, if any, is mounted on a path. Used to tell whether a
// cache's holder is still mounted and to find a new mount's backing device.
#pragma once

#include <optional>
#include <string>

namespace kacheryfs {

// The path as the kernel lists mount points (absolute, symlinks resolved); the path itself
// when it cannot be resolved. Resolve a mount point before mounting on it: afterwards the
// lookup would enter the mount.
std::string canonical_mountpoint(const std::string& path);

// The device ("major:minor") of the newest mount on `canonical_path`, or nullopt when
// nothing is mounted there.
std::optional<std::string> mounted_device(const std::string& canonical_path);

}  // namespace kacheryfs
