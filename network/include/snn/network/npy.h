// NumPy .npy files holding one 2-D float32 matrix: the on-disk form of a layer's
// weights (what `numpy.save(path, layer.weight.detach().numpy())` writes for a
// torch.nn.Linear: dtype '<f4', C order, shape [out, in]).
//
// Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version
// byte, the header length (uint16 little-endian for version 1.0, uint32 for 2.0),
// an ASCII Python dict literal {'descr': '<f4', 'fortran_order': False,
// 'shape': (R, C), } padded with spaces and ended by '\n', then R*C little-endian
// float32 values, row-major.
#pragma once

#include "snn/network/matrix.h"

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace snn {

/// Reads a .npy file that must hold a 2-D float32 ('<f4') C-order array; the
/// result has rows = shape[0], cols = shape[1]. Versions 1.0 and 2.0 are read.
/// Everything is validated: magic, version, header dict (keys, syntax), dtype,
/// fortran_order, shape (exactly 2-D, no overflow), and that the data is exactly
/// R*C*4 bytes (neither truncated nor followed by trailing bytes). Throws
/// snn::Error naming the file and the expected and found value.
Matrix read_npy(const std::filesystem::path& path);

/// The shape recorded in a .npy header, without reading the data (same
/// validation of the header as read_npy, plus the file-size check).
struct NpyShape {
  std::size_t rows = 0;
  std::size_t cols = 0;
};
NpyShape read_npy_shape(const std::filesystem::path& path);

/// A float32 array of any rank 1..4 (a conv kernel [out, in_c, kh, kw], a bias [out]).
struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<float> data;  ///< C order
};
/// Reads a '<f4' C-order .npy of 1 to max_dims dimensions with the same
/// validation as read_npy (which is the 2-D-only form).
NpyArray read_npy_array(const std::filesystem::path& path, std::size_t max_dims = 4);
/// Writes a float32 array of the given shape (product = data.size()), atomically, as numpy.save would.
void write_npy_array(const std::filesystem::path& path, const std::vector<std::size_t>& shape, const std::vector<float>& data);
std::string npy_bytes(const std::vector<std::size_t>& shape, const std::vector<float>& data);

/// Writes `m` as a version 1.0 .npy file ('<f4', fortran_order False, shape
/// (rows, cols)), byte-identical to what numpy.save writes for the same float32
/// array. The file is written atomically (write_file_atomically): it is either
/// the complete new file or left as it was. Throws snn::Error on failure.
void write_npy(const std::filesystem::path& path, const Matrix& m);

/// The bytes write_npy writes (header and data), for tests and in-memory use.
std::string npy_bytes(const Matrix& m);

}  // namespace snn
