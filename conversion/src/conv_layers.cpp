// Convolution, average pooling and flatten on batches of CHW rows.
#include "snn/conversion/layers.h"

#include "snn/error.h"

#include <algorithm>

namespace snn::conversion {

// ---- conv ----

ConvLayer::ConvLayer(const LayerSpec& spec, const Shape& input, const Matrix& weights, std::vector<float> bias)
    : spec_(spec),
      in_(input),
      out_(snn::output_shape(spec, input, 1)),
      patch_(input.channels * spec.kernel_h * spec.kernel_w),
      w_(weights),
      dw_(weights.rows, weights.cols),
      b_(std::move(bias)),
      db_(b_.size()) {
  if (spec.kind != LayerKind::Conv) throw Error("conv layer built from a '{}' spec", describe(spec));
  if (w_.rows != spec.outputs || w_.cols != patch_ || w_.data.size() != w_.rows * w_.cols)
    throw Error("conv layer '{}' on {} input: expected weights [{}, {}] ({} x {} x {} x {}), found [{}, {}]", describe(spec),
                to_string(input), spec.outputs, patch_, spec.outputs, input.channels, spec.kernel_h, spec.kernel_w, w_.rows,
                w_.cols);
  if (!b_.empty() && b_.size() != spec.outputs)
    throw Error("conv layer '{}': bias has {} values, expected {}", describe(spec), b_.size(), spec.outputs);
}

// col_ row (b * positions + p) holds the patch under output position p of
// sample b, ordered (channel, ky, kx) as the weight rows; padding reads 0.
void ConvLayer::im2col(const Matrix& x) {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  col_.resize(x.rows * positions * patch_);
  for (std::size_t b = 0; b < x.rows; ++b) {
    const float* img = x.row(b);
    for (std::size_t oy = 0; oy < out_.height; ++oy) {
      for (std::size_t ox = 0; ox < out_.width; ++ox) {
        float* dst = col_.data() + (b * positions + oy * out_.width + ox) * patch_;
        // Signed arithmetic: with padding the window may start above/left of the image.
        const long y0 = static_cast<long>(oy * spec_.stride_h) - static_cast<long>(spec_.pad_h);
        const long x0 = static_cast<long>(ox * spec_.stride_w) - static_cast<long>(spec_.pad_w);
        for (std::size_t c = 0; c < in_.channels; ++c) {
          const float* plane = img + c * in_.height * in_.width;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            const long iy = y0 + static_cast<long>(ky);
            float* d = dst + (c * kh + ky) * kw;
            if (iy < 0 || iy >= static_cast<long>(in_.height)) {
              std::fill(d, d + kw, 0.0f);
              continue;
            }
            const float* src = plane + static_cast<std::size_t>(iy) * in_.width;
            for (std::size_t kx = 0; kx < kw; ++kx) {
              const long ix = x0 + static_cast<long>(kx);
              d[kx] = ix < 0 || ix >= static_cast<long>(in_.width) ? 0.0f : src[ix];
            }
          }
        }
      }
    }
  }
}

void ConvLayer::forward(const Matrix& x, Matrix& y, const ForwardContext&) {
  if (x.cols != in_.size())
    throw Error("conv layer '{}' takes {} = {} inputs per sample, the batch has {}", describe(spec_), to_string(in_), in_.size(),
                x.cols);
  const std::size_t positions = out_.height * out_.width;
  const std::size_t oc = spec_.outputs;
  im2col(x);
  const std::size_t rows = x.rows * positions;
  tmp_.resize(rows * oc);
  // [batch * positions, patch] x [patch, out] (W^T): one GEMM for the batch.
  sgemm(false, true, rows, oc, patch_, 1.0f, col_.data(), w_.data.data(), 0.0f, tmp_.data());
  reshape(y, x.rows, out_.size());
  for (std::size_t b = 0; b < x.rows; ++b) {
    float* out = y.row(b);
    const float* t = tmp_.data() + b * positions * oc;
    for (std::size_t p = 0; p < positions; ++p)
      for (std::size_t c = 0; c < oc; ++c) out[c * positions + p] = t[p * oc + c];
    if (!b_.empty())
      for (std::size_t c = 0; c < oc; ++c)
        for (std::size_t p = 0; p < positions; ++p) out[c * positions + p] += b_[c];
  }
}

void ConvLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t oc = spec_.outputs;
  const std::size_t rows = x.rows * positions;
  // dy (CHW per sample) into [batch * positions, out], the GEMM layout.
  tmp_.resize(rows * oc);
  for (std::size_t b = 0; b < x.rows; ++b) {
    const float* g = dy.row(b);
    float* t = tmp_.data() + b * positions * oc;
    for (std::size_t c = 0; c < oc; ++c)
      for (std::size_t p = 0; p < positions; ++p) t[p * oc + c] = g[c * positions + p];
  }
  if (rows == 0) std::fill(dw_.data.begin(), dw_.data.end(), 0.0f);
  sgemm(true, false, oc, patch_, rows, 1.0f, tmp_.data(), col_.data(), 0.0f, dw_.data.data());
  if (!b_.empty()) {
    std::fill(db_.begin(), db_.end(), 0.0f);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < oc; ++c) db_[c] += tmp_[r * oc + c];
  }
  if (!dx) return;
  // dcol = dy W, then col2im: every patch entry adds back into its pixel.
  std::vector<float>& dcol = col_;  // the patches are no longer needed
  sgemm(false, false, rows, patch_, oc, 1.0f, tmp_.data(), w_.data.data(), 0.0f, dcol.data());
  reshape(*dx, x.rows, in_.size());
  std::fill(dx->data.begin(), dx->data.end(), 0.0f);
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  for (std::size_t b = 0; b < x.rows; ++b) {
    float* img = dx->row(b);
    for (std::size_t oy = 0; oy < out_.height; ++oy) {
      for (std::size_t ox = 0; ox < out_.width; ++ox) {
        const float* src = dcol.data() + (b * positions + oy * out_.width + ox) * patch_;
        const long y0 = static_cast<long>(oy * spec_.stride_h) - static_cast<long>(spec_.pad_h);
        const long x0 = static_cast<long>(ox * spec_.stride_w) - static_cast<long>(spec_.pad_w);
        for (std::size_t c = 0; c < in_.channels; ++c) {
          float* plane = img + c * in_.height * in_.width;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            const long iy = y0 + static_cast<long>(ky);
            if (iy < 0 || iy >= static_cast<long>(in_.height)) continue;
            const float* s = src + (c * kh + ky) * kw;
            float* d = plane + static_cast<std::size_t>(iy) * in_.width;
            for (std::size_t kx = 0; kx < kw; ++kx) {
              const long ix = x0 + static_cast<long>(kx);
              if (ix >= 0 && ix < static_cast<long>(in_.width)) d[ix] += s[kx];
            }
          }
        }
      }
    }
  }
}

// ---- average pooling ----

AvgPoolLayer::AvgPoolLayer(const LayerSpec& spec, const Shape& input)
    : spec_(spec), in_(input), out_(snn::output_shape(spec, input, 1)) {
  if (spec.kind != LayerKind::AvgPool) throw Error("average-pool layer built from a '{}' spec", describe(spec));
}

void AvgPoolLayer::forward(const Matrix& x, Matrix& y, const ForwardContext&) {
  if (x.cols != in_.size())
    throw Error("layer '{}' takes {} = {} inputs per sample, the batch has {}", describe(spec_), to_string(in_), in_.size(),
                x.cols);
  reshape(y, x.rows, out_.size());
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  const float scale = 1.0f / static_cast<float>(kh * kw);
  for (std::size_t b = 0; b < x.rows; ++b) {
    for (std::size_t c = 0; c < in_.channels; ++c) {
      const float* plane = x.row(b) + c * in_.height * in_.width;
      float* out = y.row(b) + c * out_.height * out_.width;
      for (std::size_t oy = 0; oy < out_.height; ++oy) {
        for (std::size_t ox = 0; ox < out_.width; ++ox) {
          float sum = 0.0f;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            const float* src = plane + (oy * spec_.stride_h + ky) * in_.width + ox * spec_.stride_w;
            for (std::size_t kx = 0; kx < kw; ++kx) sum += src[kx];
          }
          out[oy * out_.width + ox] = sum * scale;
        }
      }
    }
  }
}

void AvgPoolLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  if (!dx) return;
  reshape(*dx, x.rows, in_.size());
  std::fill(dx->data.begin(), dx->data.end(), 0.0f);
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  const float scale = 1.0f / static_cast<float>(kh * kw);
  for (std::size_t b = 0; b < x.rows; ++b) {
    for (std::size_t c = 0; c < in_.channels; ++c) {
      float* plane = dx->row(b) + c * in_.height * in_.width;
      const float* g = dy.row(b) + c * out_.height * out_.width;
      for (std::size_t oy = 0; oy < out_.height; ++oy) {
        for (std::size_t ox = 0; ox < out_.width; ++ox) {
          const float v = g[oy * out_.width + ox] * scale;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            float* d = plane + (oy * spec_.stride_h + ky) * in_.width + ox * spec_.stride_w;
            for (std::size_t kx = 0; kx < kw; ++kx) d[kx] += v;
          }
        }
      }
    }
  }
}

// ---- flatten ----

void FlattenLayer::forward(const Matrix& x, Matrix& y, const ForwardContext&) {
  if (x.cols != size_) throw Error("flatten takes {} inputs per sample, the batch has {}", size_, x.cols);
  y = x;
}

void FlattenLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  if (!dx) return;
  reshape(*dx, x.rows, x.cols);
  std::copy(dy.data.begin(), dy.data.end(), dx->data.begin());
}

}  // namespace snn::conversion
