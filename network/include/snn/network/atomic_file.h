// Files snnsim writes are written whole or not at all: the bytes go to a
// temporary file beside the target, are flushed, and the temporary is renamed
// over the target (rename is atomic within a filesystem).
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

namespace snn {

/// Calls `write` with a stream on a temporary file next to `path`, then renames
/// it to `path`. If `write` throws or the stream fails, the temporary is removed,
/// `path` is left as it was, and snn::Error (naming `path`) is thrown.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

/// Convenience: writes `content` atomically.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

}  // namespace snn
