// Convolution, average pooling and flatten on batches of CHW rows.
#include "snn/conversion/layers.h"

#include "snn/error.h"

#include "pieces.h"

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

namespace {

// Samples per piece of a conv or pooling pass: a piece's patches (conv2 of
// the paper's ConvNet: 10 x 64 x 300 floats) stay in a core's L2 cache between
// im2col and the GEMM, and a batch of 100 gives 10 pieces to share out.
constexpr std::size_t kSamplesPerPiece = 10;

struct Samples {
  std::size_t begin, end;
};
Samples piece_samples(std::size_t piece, std::size_t batch) {
  return {piece * kSamplesPerPiece, std::min(batch, (piece + 1) * kSamplesPerPiece)};
}

// dst = parts[0] + parts[1] + ... (part p at parts + p * n), summed in part
// order whatever the thread count.
void sum_parts(const float* parts, std::size_t count, std::size_t n, float* dst) {
  std::copy(parts, parts + n, dst);
  for (std::size_t p = 1; p < count; ++p) {
    const float* part = parts + p * n;
    for (std::size_t i = 0; i < n; ++i) dst[i] += part[i];
  }
}

}  // namespace

// The kernel columns [begin, end) of a window starting at image column x0
// that fall inside the image (the others read padding).
struct KernelSpan {
  std::size_t begin, end;
};
KernelSpan inside(long x0, std::size_t kernel, std::size_t width) {
  const long lo = std::max(0L, -x0);
  const long hi = std::min(static_cast<long>(kernel), static_cast<long>(width) - x0);
  return hi > lo ? KernelSpan{static_cast<std::size_t>(lo), static_cast<std::size_t>(hi)} : KernelSpan{0, 0};
}

// col_ row (b * positions + p) holds the patch under output position p of
// sample b, ordered (channel, ky, kx) as the weight rows; padding reads 0.
// Fills the rows of samples [first, last).
void ConvLayer::im2col(const Matrix& x, std::size_t first, std::size_t last) {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  for (std::size_t b = first; b < last; ++b) {
    const float* img = x.row(b);
    for (std::size_t oy = 0; oy < out_.height; ++oy) {
      // Signed arithmetic: with padding the window may start above/left of the image.
      const long y0 = static_cast<long>(oy * spec_.stride_h) - static_cast<long>(spec_.pad_h);
      for (std::size_t ox = 0; ox < out_.width; ++ox) {
        float* dst = col_.data() + (b * positions + oy * out_.width + ox) * patch_;
        const long x0 = static_cast<long>(ox * spec_.stride_w) - static_cast<long>(spec_.pad_w);
        const KernelSpan span = inside(x0, kw, in_.width);
        for (std::size_t c = 0; c < in_.channels; ++c) {
          const float* plane = img + c * in_.height * in_.width;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            const long iy = y0 + static_cast<long>(ky);
            float* d = dst + (c * kh + ky) * kw;
            if (iy < 0 || iy >= static_cast<long>(in_.height)) {
              std::fill(d, d + kw, 0.0f);
              continue;
            }
            const float* src = plane + static_cast<std::size_t>(iy) * in_.width + x0;
            for (std::size_t kx = 0; kx < span.begin; ++kx) d[kx] = 0.0f;
            for (std::size_t kx = span.begin; kx < span.end; ++kx) d[kx] = src[kx];
            for (std::size_t kx = span.end; kx < kw; ++kx) d[kx] = 0.0f;
          }
        }
      }
    }
  }
}

// Adds every patch entry of dcol (col_'s layout) back into its pixel of dx,
// for samples [first, last); their dx rows are overwritten.
void ConvLayer::col2im(const float* dcol, Matrix& dx, std::size_t first, std::size_t last) const {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  for (std::size_t b = first; b < last; ++b) {
    float* img = dx.row(b);
    std::fill(img, img + in_.size(), 0.0f);
    for (std::size_t oy = 0; oy < out_.height; ++oy) {
      const long y0 = static_cast<long>(oy * spec_.stride_h) - static_cast<long>(spec_.pad_h);
      for (std::size_t ox = 0; ox < out_.width; ++ox) {
        const float* src = dcol + (b * positions + oy * out_.width + ox) * patch_;
        const long x0 = static_cast<long>(ox * spec_.stride_w) - static_cast<long>(spec_.pad_w);
        const KernelSpan span = inside(x0, kw, in_.width);
        for (std::size_t c = 0; c < in_.channels; ++c) {
          float* plane = img + c * in_.height * in_.width;
          for (std::size_t ky = 0; ky < kh; ++ky) {
            const long iy = y0 + static_cast<long>(ky);
            if (iy < 0 || iy >= static_cast<long>(in_.height)) continue;
            const float* s = src + (c * kh + ky) * kw;
            float* d = plane + static_cast<std::size_t>(iy) * in_.width + x0;
            for (std::size_t kx = span.begin; kx < span.end; ++kx) d[kx] += s[kx];
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
  col_.resize(x.rows * positions * patch_);
  tmp_.resize(x.rows * positions * oc);
  reshape(y, x.rows, out_.size());
  const detail::SerialBlas serial;
  // Per piece of samples: im2col, then [samples * positions, patch] x
  // [patch, out] (W^T) in one GEMM, then to CHW with the bias.
  detail::for_each_piece(detail::piece_count(x.rows, kSamplesPerPiece), [&](std::size_t piece) {
    const auto [first, last] = piece_samples(piece, x.rows);
    im2col(x, first, last);
    sgemm(false, true, (last - first) * positions, oc, patch_, 1.0f, col_.data() + first * positions * patch_, w_.data.data(),
          0.0f, tmp_.data() + first * positions * oc);
    for (std::size_t b = first; b < last; ++b) {
      float* out = y.row(b);
      const float* t = tmp_.data() + b * positions * oc;
      for (std::size_t c = 0; c < oc; ++c) {
        const float bias = b_.empty() ? 0.0f : b_[c];
        for (std::size_t p = 0; p < positions; ++p) out[c * positions + p] = t[p * oc + c] + bias;
      }
    }
  });
}

void ConvLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t oc = spec_.outputs;
  const std::size_t pieces = detail::piece_count(x.rows, kSamplesPerPiece);
  if (pieces == 0) {
    std::fill(dw_.data.begin(), dw_.data.end(), 0.0f);
    std::fill(db_.begin(), db_.end(), 0.0f);
    if (dx) reshape(*dx, 0, in_.size());
    return;
  }
  tmp_.resize(x.rows * positions * oc);
  // Each piece's weight (and bias) gradient goes to its own slot, summed in
  // piece order afterwards: a fixed order whatever the thread count.
  const std::size_t wn = dw_.data.size();
  dw_parts_.resize(pieces * wn);
  db_parts_.resize(pieces * b_.size());
  if (dx) reshape(*dx, x.rows, in_.size());
  const detail::SerialBlas serial;
  detail::for_each_piece(pieces, [&](std::size_t piece) {
    const auto [first, last] = piece_samples(piece, x.rows);
    const std::size_t rows = (last - first) * positions;
    // dy (CHW per sample) into [samples * positions, out], the GEMM layout.
    float* t = tmp_.data() + first * positions * oc;
    for (std::size_t b = first; b < last; ++b) {
      const float* g = dy.row(b);
      float* tb = tmp_.data() + b * positions * oc;
      for (std::size_t c = 0; c < oc; ++c)
        for (std::size_t p = 0; p < positions; ++p) tb[p * oc + c] = g[c * positions + p];
    }
    float* col = col_.data() + first * positions * patch_;
    sgemm(true, false, oc, patch_, rows, 1.0f, t, col, 0.0f, dw_parts_.data() + piece * wn);
    if (!b_.empty()) {
      float* db = db_parts_.data() + piece * oc;
      std::fill(db, db + oc, 0.0f);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < oc; ++c) db[c] += t[r * oc + c];
    }
    if (!dx) return;
    // dcol = dy W into the piece's patches (no longer needed), then col2im.
    sgemm(false, false, rows, patch_, oc, 1.0f, t, w_.data.data(), 0.0f, col);
    col2im(col_.data(), *dx, first, last);
  });
  sum_parts(dw_parts_.data(), pieces, wn, dw_.data.data());
  if (!b_.empty()) sum_parts(db_parts_.data(), pieces, oc, db_.data());
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
  detail::for_each_piece(detail::piece_count(x.rows, kSamplesPerPiece), [&](std::size_t piece) {
    const auto [first, last] = piece_samples(piece, x.rows);
    for (std::size_t b = first; b < last; ++b) pool_sample(x.row(b), y.row(b));
  });
}

namespace {

// Windows of K x K at stride K (the usual pooling): the loops unrolled at
// compile time, and no window overlaps another.
template <std::size_t K>
void pool_plane_tiled(const float* plane, std::size_t width, float* out, std::size_t oh, std::size_t ow, float scale) {
  for (std::size_t oy = 0; oy < oh; ++oy) {
    const float* rows = plane + oy * K * width;
    for (std::size_t ox = 0; ox < ow; ++ox) {
      float sum = 0.0f;  // summed in the generic loop's order: row by row
      for (std::size_t ky = 0; ky < K; ++ky)
        for (std::size_t kx = 0; kx < K; ++kx) sum += rows[ky * width + ox * K + kx];
      out[oy * ow + ox] = sum * scale;
    }
  }
}

template <std::size_t K>
void unpool_plane_tiled(const float* g, std::size_t oh, std::size_t ow, float scale, float* plane, std::size_t width) {
  for (std::size_t oy = 0; oy < oh; ++oy) {
    float* rows = plane + oy * K * width;
    for (std::size_t ox = 0; ox < ow; ++ox) {
      const float v = g[oy * ow + ox] * scale;
      for (std::size_t ky = 0; ky < K; ++ky)
        for (std::size_t kx = 0; kx < K; ++kx) rows[ky * width + ox * K + kx] = v;
    }
  }
}

}  // namespace

bool AvgPoolLayer::tiled(std::size_t k) const {
  return spec_.kernel_h == k && spec_.kernel_w == k && spec_.stride_h == k && spec_.stride_w == k;
}

void AvgPoolLayer::pool_sample(const float* x, float* y) const {
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  const float scale = 1.0f / static_cast<float>(kh * kw);
  for (std::size_t c = 0; c < in_.channels; ++c) {
    const float* plane = x + c * in_.height * in_.width;
    float* out = y + c * out_.height * out_.width;
    if (tiled(2)) {
      pool_plane_tiled<2>(plane, in_.width, out, out_.height, out_.width, scale);
      continue;
    }
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

void AvgPoolLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  if (!dx) return;
  reshape(*dx, x.rows, in_.size());
  detail::for_each_piece(detail::piece_count(x.rows, kSamplesPerPiece), [&](std::size_t piece) {
    const auto [first, last] = piece_samples(piece, x.rows);
    for (std::size_t b = first; b < last; ++b) unpool_sample(dy.row(b), dx->row(b));
  });
}

// Every input pixel under a window gets the window's gradient / window size
// (windows may overlap: added up; pixels under none get 0).
void AvgPoolLayer::unpool_sample(const float* dy, float* dx) const {
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
  const float scale = 1.0f / static_cast<float>(kh * kw);
  // Tiled windows that cover the image write every pixel once.
  const bool covered = tiled(2) && out_.height * 2 == in_.height && out_.width * 2 == in_.width;
  if (!covered) std::fill(dx, dx + in_.size(), 0.0f);
  for (std::size_t c = 0; c < in_.channels; ++c) {
    float* plane = dx + c * in_.height * in_.width;
    const float* g = dy + c * out_.height * out_.width;
    if (tiled(2)) {
      unpool_plane_tiled<2>(g, out_.height, out_.width, scale, plane, in_.width);
      continue;
    }
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
