#include "snn/network/npy.h"

#include "snn/error.h"
#include "snn/network/atomic_file.h"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

namespace snn {

namespace fs = std::filesystem;

// The data bytes are copied straight into floats; a big-endian host would need
// a byte swap here, and snnsim targets little-endian machines only.
static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kPreludeV1 = 10;  // magic 6 + version 2 + uint16 length 2
constexpr std::size_t kPreludeV2 = 12;  // magic 6 + version 2 + uint32 length 4
// numpy refuses headers this long too (numpy.lib.format's max_header_size guard);
// it also keeps a corrupt length field from making us allocate gigabytes.
constexpr std::size_t kMaxHeader = 1u << 20;

// Printable rendering of raw bytes for messages ("\x93NUMPY", "PK\x03\x04").
std::string escape(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

struct Header {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<std::size_t> shape;
  std::size_t data_offset = 0;
};

// A recursive-descent reader for the Python literal numpy writes as the header:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. Only the forms a
// .npy header can hold are accepted: strings, True/False and tuples of integers.
class DictParser {
 public:
  DictParser(const fs::path& path, std::string_view text) : path_(path), text_(text) {}

  struct Value {
    enum class Kind { String, Bool, Tuple } kind = Kind::String;
    std::string str;
    bool boolean = false;
    std::vector<std::uint64_t> tuple;
    std::string source;  // as written, for messages
  };

  std::vector<std::pair<std::string, Value>> parse() {
    std::vector<std::pair<std::string, Value>> entries;
    expect('{');
    skip_space();
    while (peek() != '}') {
      std::string key = parse_string();
      expect(':');
      Value value = parse_value();
      for (const auto& e : entries)
        if (e.first == key) fail(fmt::format("key '{}' appears twice", key));
      entries.emplace_back(std::move(key), std::move(value));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        skip_space();
      } else if (peek() != '}') {
        fail(fmt::format("expected ',' or '}}' at offset {}, found {}", pos_, found()));
      }
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail(fmt::format("unexpected text after the dict: '{}'", escape(text_.substr(pos_, 20))));
    return entries;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("'{}': malformed .npy header ({}); header: {}", path_.string(), what, escape(text_.substr(0, 200)));
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  std::string found() const { return pos_ < text_.size() ? fmt::format("'{}'", escape(text_.substr(pos_, 1))) : "end of header"; }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(fmt::format("expected '{}' at offset {}, found {}", c, pos_, found()));
    ++pos_;
  }
  std::string parse_string() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(fmt::format("expected a quoted string at offset {}, found {}", pos_, found()));
    const std::size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string s(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return s;
  }
  std::uint64_t parse_int() {
    skip_space();
    const std::size_t start = pos_;
    std::uint64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const std::uint64_t digit = static_cast<std::uint64_t>(text_[pos_] - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail("shape value too large");
      v = v * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) fail(fmt::format("expected a non-negative integer at offset {}, found {}", pos_, found()));
    if (peek() == 'L') ++pos_;  // Python 2 long literal, as old numpy wrote
    return v;
  }
  Value parse_value() {
    skip_space();
    const std::size_t start = pos_;
    Value v;
    if (peek() == '\'' || peek() == '"') {
      v.kind = Value::Kind::String;
      v.str = parse_string();
    } else if (text_.substr(pos_, 4) == "True") {
      v.kind = Value::Kind::Bool;
      v.boolean = true;
      pos_ += 4;
    } else if (text_.substr(pos_, 5) == "False") {
      v.kind = Value::Kind::Bool;
      v.boolean = false;
      pos_ += 5;
    } else if (peek() == '(') {
      v.kind = Value::Kind::Tuple;
      ++pos_;
      skip_space();
      while (peek() != ')') {
        v.tuple.push_back(parse_int());
        skip_space();
        if (peek() == ',') {
          ++pos_;
          skip_space();
        } else if (peek() != ')') {
          fail(fmt::format("expected ',' or ')' in a tuple at offset {}, found {}", pos_, found()));
        }
      }
      ++pos_;
    } else {
      fail(fmt::format("expected a string, True, False or a tuple at offset {}, found {}", pos_, found()));
    }
    v.source = std::string(text_.substr(start, pos_ - start));
    return v;
  }

  const fs::path& path_;
  std::string_view text_;
  std::size_t pos_ = 0;
};

std::string describe_dtype(const std::string& descr) {
  if (descr == "<f8") return " (float64: convert with array.astype(numpy.float32))";
  if (descr == ">f4") return " (big-endian float32: convert with array.astype('<f4'))";
  if (descr == "<f2") return " (float16: convert with array.astype(numpy.float32))";
  return "";
}

// max_dims 0: exactly a 2-D [out, in] array (read_npy); else 1..max_dims dimensions.
Header read_header(const fs::path& path, std::istream& in, std::uintmax_t file_size, std::size_t max_dims = 0) {
  std::array<char, kPreludeV2> prelude{};
  in.read(prelude.data(), static_cast<std::streamsize>(kPreludeV1));
  const auto got = static_cast<std::size_t>(in.gcount());
  if (got < kMagic.size() || std::string_view(prelude.data(), kMagic.size()) != kMagic)
    throw Error("'{}': not a .npy file: expected magic '\\x93NUMPY', found '{}'", path.string(),
                escape(std::string_view(prelude.data(), std::min(got, kMagic.size()))));
  if (got < kPreludeV1)
    throw Error("'{}': truncated .npy file: {} bytes, the prelude alone needs {}", path.string(), file_size, kPreludeV1);
  const auto major = static_cast<unsigned char>(prelude[6]);
  const auto minor = static_cast<unsigned char>(prelude[7]);
  std::size_t header_len = 0;
  std::size_t prelude_len = 0;
  const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(prelude[i])); };
  if (major == 1 && minor == 0) {
    prelude_len = kPreludeV1;
    header_len = byte(8) | (byte(9) << 8);
  } else if (major == 2 && minor == 0) {
    prelude_len = kPreludeV2;
    in.read(prelude.data() + kPreludeV1, 2);
    if (in.gcount() != 2)
      throw Error("'{}': truncated .npy file: {} bytes, a version 2.0 prelude needs {}", path.string(), file_size, kPreludeV2);
    header_len = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24);
  } else {
    throw Error("'{}': unsupported .npy version: expected 1.0 or 2.0, found {}.{}", path.string(), major, minor);
  }
  if (header_len > kMaxHeader)
    throw Error("'{}': .npy header length {} exceeds the limit of {} bytes", path.string(), header_len, kMaxHeader);
  if (prelude_len + header_len > file_size)
    throw Error("'{}': truncated .npy file: header says {} header bytes, the file has only {} after the prelude", path.string(),
                header_len, file_size - prelude_len);
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (static_cast<std::size_t>(in.gcount()) != header_len) throw Error("'{}': read error in the .npy header", path.string());

  const auto entries = DictParser(path, text).parse();
  const DictParser::Value* descr = nullptr;
  const DictParser::Value* fortran = nullptr;
  const DictParser::Value* shape = nullptr;
  for (const auto& [key, value] : entries) {
    if (key == "descr")
      descr = &value;
    else if (key == "fortran_order")
      fortran = &value;
    else if (key == "shape")
      shape = &value;
    else
      throw Error("'{}': unexpected key '{}' in the .npy header: expected only 'descr', 'fortran_order', 'shape'", path.string(),
                  key);
  }
  if (!descr) throw Error("'{}': .npy header lacks the key 'descr'", path.string());
  if (!fortran) throw Error("'{}': .npy header lacks the key 'fortran_order'", path.string());
  if (!shape) throw Error("'{}': .npy header lacks the key 'shape'", path.string());
  if (descr->kind != DictParser::Value::Kind::String)
    throw Error("'{}': .npy 'descr': expected a dtype string, found {}", path.string(), descr->source);
  if (descr->str != "<f4")
    throw Error("'{}': wrong dtype: expected '<f4' (little-endian float32), found '{}'{}", path.string(), descr->str,
                describe_dtype(descr->str));
  if (fortran->kind != DictParser::Value::Kind::Bool)
    throw Error("'{}': .npy 'fortran_order': expected True or False, found {}", path.string(), fortran->source);
  if (fortran->boolean)
    throw Error(
        "'{}': wrong memory order: expected fortran_order False (C order), found True (save numpy.ascontiguousarray(array))",
        path.string());
  if (shape->kind != DictParser::Value::Kind::Tuple)
    throw Error("'{}': .npy 'shape': expected a tuple, found {}", path.string(), shape->source);
  if (max_dims == 0 && shape->tuple.size() != 2)
    throw Error("'{}': wrong number of dimensions: expected a 2-D array [out, in], found shape {}", path.string(), shape->source);
  if (max_dims != 0 && (shape->tuple.empty() || shape->tuple.size() > max_dims))
    throw Error("'{}': wrong number of dimensions: expected 1 to {}, found shape {}", path.string(), max_dims, shape->source);

  Header h;
  h.shape.assign(shape->tuple.begin(), shape->tuple.end());
  h.rows = h.shape[0];
  h.cols = 1;
  for (std::size_t i = 1; i < h.shape.size(); ++i) {
    if (h.shape[i] != 0 && h.cols > std::numeric_limits<std::uint32_t>::max() / h.shape[i])
      throw Error("'{}': .npy shape {} is too large", path.string(), shape->source);
    h.cols *= h.shape[i];
  }
  h.data_offset = prelude_len + header_len;
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() / 4;
  if (h.cols != 0 && h.rows > limit / h.cols) throw Error("'{}': .npy shape {} is too large", path.string(), shape->source);
  const std::uint64_t expected = static_cast<std::uint64_t>(h.rows) * h.cols * sizeof(float);
  const std::uint64_t present = file_size - h.data_offset;
  if (present < expected)
    throw Error("'{}': truncated .npy data: shape {} needs {} bytes of float32, found {}", path.string(), shape->source, expected,
                present);
  if (present > expected)
    throw Error("'{}': trailing data in .npy file: shape {} needs {} bytes of float32, found {} ({} extra)", path.string(),
                shape->source, expected, present, present - expected);
  return h;
}

std::uintmax_t size_of(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error("cannot read '{}': {}", path.string(), ec.message());
  return size;
}

}  // namespace

NpyShape read_npy_shape(const fs::path& path) {
  const auto size = size_of(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '{}'", path.string());
  const Header h = read_header(path, in, size);
  return {h.rows, h.cols};
}

Matrix read_npy(const fs::path& path) {
  const auto size = size_of(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '{}'", path.string());
  const Header h = read_header(path, in, size);
  Matrix m(h.rows, h.cols);
  const auto bytes = static_cast<std::streamsize>(m.data.size() * sizeof(float));
  in.read(reinterpret_cast<char*>(m.data.data()), bytes);
  if (in.gcount() != bytes) throw Error("'{}': read error in the .npy data", path.string());
  return m;
}

NpyArray read_npy_array(const fs::path& path, std::size_t max_dims) {
  const auto size = size_of(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '{}'", path.string());
  if (max_dims == 0) throw Error("read_npy_array: max_dims must be at least 1");
  const Header h = read_header(path, in, size, max_dims);
  NpyArray a;
  a.shape = h.shape;
  a.data.resize(h.rows * h.cols);
  const auto bytes = static_cast<std::streamsize>(a.data.size() * sizeof(float));
  in.read(reinterpret_cast<char*>(a.data.data()), bytes);
  if (in.gcount() != bytes) throw Error("'{}': read error in the .npy data", path.string());
  return a;
}

std::string npy_bytes(const Matrix& m) { return npy_bytes(std::vector<std::size_t>{m.rows, m.cols}, m.data); }

void write_npy_array(const fs::path& path, const std::vector<std::size_t>& shape, const std::vector<float>& data) {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  if (shape.empty() || n != data.size())
    throw Error("cannot write '{}': shape of {} dimensions needs {} values, holds {}", path.string(), shape.size(), n,
                data.size());
  write_file_atomically(path, npy_bytes(shape, data));
}

std::string npy_bytes(const std::vector<std::size_t>& shape, const std::vector<float>& data) {
  // numpy pads the header with spaces so that prelude + header is a multiple of
  // 64 bytes (aligned data) and ends it with '\n'; writing the same bytes lets a
  // file round-trip through numpy unchanged.
  // Python's tuple syntax: (5,) for one dimension, (3, 4) for more.
  std::string dims;
  for (std::size_t i = 0; i < shape.size(); ++i) dims += fmt::format("{}{}", i ? ", " : "", shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string dict = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  const std::size_t unpadded = kPreludeV1 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  if (dict.size() > 0xffff) throw Error("npy header too long ({} bytes)", dict.size());
  std::string out;
  out.reserve(kPreludeV1 + dict.size() + data.size() * sizeof(float));
  out += kMagic;
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  out += dict;
  const std::size_t offset = out.size();
  out.resize(offset + data.size() * sizeof(float));
  if (!data.empty()) std::memcpy(out.data() + offset, data.data(), data.size() * sizeof(float));
  return out;
}

void write_npy(const fs::path& path, const Matrix& m) {
  if (m.data.size() != m.rows * m.cols)
    throw Error("cannot write '{}': matrix says {} x {} but holds {} values", path.string(), m.rows, m.cols, m.data.size());
  write_file_atomically(path, npy_bytes(m));
}

}  // namespace snn
