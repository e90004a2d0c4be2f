// A dense float matrix, row-major. The exchange format between conversion/
// (which trains and normalises weights) and engine/ (which builds fan-out
// tables from them). A layer's weights are stored as torch.nn.Linear.weight
// is: shape [out, in], so row r holds the incoming weights of output neuron r.
#pragma once

#include <cstddef>
#include <vector>

namespace snn {

struct Matrix {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<float> data;  ///< rows * cols values, row-major

  Matrix() = default;
  Matrix(std::size_t r, std::size_t c, float value = 0.0f) : rows(r), cols(c), data(r * c, value) {}

  float& operator()(std::size_t r, std::size_t c) { return data[r * cols + c]; }
  float operator()(std::size_t r, std::size_t c) const { return data[r * cols + c]; }
  float* row(std::size_t r) { return data.data() + r * cols; }
  const float* row(std::size_t r) const { return data.data() + r * cols; }
  bool operator==(const Matrix&) const = default;
};

}  // namespace snn
