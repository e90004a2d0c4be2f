#include "snn/network/atomic_file.h"

#include "snn/error.h"

#include <unistd.h>
#include <fstream>
#include <random>
#include <system_error>

namespace snn {

namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  // The temporary lives in the target's directory so the rename never crosses a
  // filesystem (which would make it a non-atomic copy).
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::random_device rd;
  const fs::path tmp = dir / fmt::format(".{}.tmp-{}-{:x}", path.filename().string(), ::getpid(), rd());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error("cannot write '{}': cannot create a file in '{}'", path.string(), dir.string());
      write(out);
      out.flush();
      if (!out) throw Error("cannot write '{}': write failed (disk full?)", path.string());
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error("cannot write '{}': rename failed: {}", path.string(), ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_file_atomically(const fs::path& path, std::string_view content) {
  write_file_atomically(path,
                        [&](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

}  // namespace snn
