// Convolution, average pooling and flatten on batches of CHW rows.
#include "snn/conversion/layers.h"

#include "snn/error.h"

#include "pieces.h"

#include <tbb/task_arena.h>

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

// Samples per piece of a conv or pooling pass: a piece's patches and GEMM
// output (conv2 of the paper's ConvNet: 5 x 64 x (300 + 64) floats) stay in a
// core's L2 cache from im2col through the GEMMs, and a batch of 100 gives 20
// pieces to share out. (Measured at 3 epochs: 5 samples 2.78 CPU s, 10 2.85,
// 20 2.95.)
constexpr std::size_t kSamplesPerPiece = 5;

struct Samples {
  std::size_t begin, end;
};
Samples piece_samples(std::size_t piece, std::size_t batch) {
  return {piece * kSamplesPerPiece, std::min(batch, (piece + 1) * kSamplesPerPiece)};
}

// dst = parts[0] + parts[1] + ... (part p at parts + p * n), summed in part
// order for every element whatever the thread count; split over the threads
// by element ranges.
void sum_parts(const float* parts, std::size_t count, std::size_t n, float* dst) {
  constexpr std::size_t kPerPiece = 4096;
  detail::for_each_piece(detail::piece_count(n, kPerPiece), [&](std::size_t piece) {
    const std::size_t begin = piece * kPerPiece, end = std::min(n, begin + kPerPiece);
    std::copy(parts + begin, parts + end, dst + begin);
    for (std::size_t p = 1; p < count; ++p) {
      const float* part = parts + p * n;
      for (std::size_t i = begin; i < end; ++i) dst[i] += part[i];
    }
  });
}

// The output columns [begin, end) whose window's kernel column kx falls
// inside the image (the others read padding): begin*stride + kx - pad >= 0
// and end is the first with end*stride + kx - pad >= width.
struct ColumnSpan {
  std::size_t begin, end;
};
ColumnSpan inside(std::size_t kx, std::size_t stride, std::size_t pad, std::size_t width, std::size_t out_width) {
  const auto first_at = [&](std::size_t target) {  // smallest ox with ox * stride + kx >= target
    return target <= kx ? std::size_t{0} : (target - kx + stride - 1) / stride;
  };
  const std::size_t begin = std::min(out_width, first_at(pad));
  const std::size_t end = std::min(out_width, first_at(pad + width));
  return {begin, std::max(begin, end)};
}

// Short runs (an output row: 24 and 8 floats in the paper's ConvNet) as
// inline loops: a memmove call per run costs more than the copy.
void copy_run(const float* __restrict src, float* __restrict dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
}
void add_run(const float* __restrict src, float* __restrict dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

// A piece of samples [first, last) has its patches in `col`, laid out
// [patch, samples * positions]: row (c, ky, kx) as the
// weight columns, column (b - first) * positions + p for output position p of
// sample b. So for stride 1 a row's entries along an output row are a run of
// the image row, copied whole; padding reads 0.
void ConvLayer::im2col(const Matrix& x, std::size_t first, std::size_t last, float* col) const {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t n = (last - first) * positions;
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w, ow = out_.width;
  // Sample by sample, so that the image read stays in L1.
  for (std::size_t b = first; b < last; ++b) {
    for (std::size_t c = 0; c < in_.channels; ++c) {
      const float* plane = x.row(b) + c * in_.height * in_.width;
      for (std::size_t ky = 0; ky < kh; ++ky) {
        for (std::size_t kx = 0; kx < kw; ++kx) {
          const ColumnSpan span = inside(kx, spec_.stride_w, spec_.pad_w, in_.width, ow);
          float* row = col + ((c * kh + ky) * kw + kx) * n + (b - first) * positions;
          for (std::size_t oy = 0; oy < out_.height; ++oy) {
            float* d = row + oy * ow;
            // Signed: with padding the window may start above the image.
            const long iy = static_cast<long>(oy * spec_.stride_h + ky) - static_cast<long>(spec_.pad_h);
            if (iy < 0 || iy >= static_cast<long>(in_.height)) {
              for (std::size_t ox = 0; ox < ow; ++ox) d[ox] = 0.0f;
              continue;
            }
            // Image column of output column ox: ox * stride + kx - pad (>= 0 inside the span).
            const float* src = plane + static_cast<std::size_t>(iy) * in_.width;
            for (std::size_t ox = 0; ox < span.begin; ++ox) d[ox] = 0.0f;
            if (spec_.stride_w == 1)
              copy_run(src + (span.begin + kx - spec_.pad_w), d + span.begin, span.end - span.begin);
            else
              for (std::size_t ox = span.begin; ox < span.end; ++ox) d[ox] = src[ox * spec_.stride_w + kx - spec_.pad_w];
            for (std::size_t ox = span.end; ox < ow; ++ox) d[ox] = 0.0f;
          }
        }
      }
    }
  }
}

// Adds every patch entry of the piece's dcol (im2col's layout) back into its
// pixel of dx; the piece's dx rows are overwritten.
void ConvLayer::col2im(const float* col, Matrix& dx, std::size_t first, std::size_t last) const {
  const std::size_t positions = out_.height * out_.width;
  const std::size_t n = (last - first) * positions;
  const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w, ow = out_.width;
  for (std::size_t b = first; b < last; ++b) {
    std::fill(dx.row(b), dx.row(b) + in_.size(), 0.0f);
    for (std::size_t c = 0; c < in_.channels; ++c) {
      float* plane = dx.row(b) + c * in_.height * in_.width;
      for (std::size_t ky = 0; ky < kh; ++ky) {
        for (std::size_t kx = 0; kx < kw; ++kx) {
          const ColumnSpan span = inside(kx, spec_.stride_w, spec_.pad_w, in_.width, ow);
          const float* row = col + ((c * kh + ky) * kw + kx) * n + (b - first) * positions;
          for (std::size_t oy = 0; oy < out_.height; ++oy) {
            const long iy = static_cast<long>(oy * spec_.stride_h + ky) - static_cast<long>(spec_.pad_h);
            if (iy < 0 || iy >= static_cast<long>(in_.height)) continue;
            const float* s = row + oy * ow;
            float* d = plane + static_cast<std::size_t>(iy) * in_.width;
            if (spec_.stride_w == 1)
              add_run(s + span.begin, d + (span.begin + kx - spec_.pad_w), span.end - span.begin);
            else
              for (std::size_t ox = span.begin; ox < span.end; ++ox) d[ox * spec_.stride_w + kx - spec_.pad_w] += s[ox];
          }
        }
      }
    }
  }
}

// One scratch per thread of the arena running the pieces, sized for a piece.
void ConvLayer::prepare_scratch() {
  const std::size_t threads = static_cast<std::size_t>(tbb::this_task_arena::max_concurrency());
  if (scratch_.size() < threads) scratch_.resize(threads);
  const std::size_t n = kSamplesPerPiece * out_.height * out_.width;
  for (Scratch& s : scratch_) {
    s.col.resize(patch_ * n);
    s.t.resize(spec_.outputs * n);
  }
}

// A thread outside any arena (a single piece runs on the calling thread) has
// no index and is then the only one working.
ConvLayer::Scratch& ConvLayer::scratch() {
  const int index = tbb::this_task_arena::current_thread_index();
  return scratch_[index < 0 ? 0 : static_cast<std::size_t>(index)];
}

void ConvLayer::forward(const Matrix& x, Matrix& y, const ForwardContext&) {
  if (x.cols != in_.size())
    throw Error("conv layer '{}' takes {} = {} inputs per sample, the batch has {}", describe(spec_), to_string(in_), in_.size(),
                x.cols);
  const std::size_t positions = out_.height * out_.width;
  const std::size_t oc = spec_.outputs;
  reshape(y, x.rows, out_.size());
  const SerialBlas serial;
  prepare_scratch();
  // Per piece: im2col, then W [out, patch] x col [patch, samples * positions]
  // in one GEMM, giving [out, samples * positions]; then each sample's
  // channel runs into its CHW row, with the bias.
  detail::for_each_piece(detail::piece_count(x.rows, kSamplesPerPiece), [&](std::size_t piece) {
    const auto [first, last] = piece_samples(piece, x.rows);
    const std::size_t n = (last - first) * positions;
    Scratch& s = scratch();
    im2col(x, first, last, s.col.data());
    float* t = s.t.data();
    sgemm(false, false, oc, n, patch_, 1.0f, w_.data.data(), s.col.data(), 0.0f, t);
    for (std::size_t b = first; b < last; ++b) {
      for (std::size_t c = 0; c < oc; ++c) {
        const float bias = b_.empty() ? 0.0f : b_[c];
        const float* src = t + c * n + (b - first) * positions;
        float* out = y.row(b) + c * positions;
        for (std::size_t p = 0; p < positions; ++p) out[p] = src[p] + bias;
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
  // Each piece's weight (and bias) gradient goes to its own slot, summed in
  // piece order afterwards: a fixed order whatever the thread count.
  const std::size_t wn = dw_.data.size();
  dw_parts_.resize(pieces * wn);
  db_parts_.resize(pieces * b_.size());
  if (dx) reshape(*dx, x.rows, in_.size());
  const SerialBlas serial;
  prepare_scratch();
  detail::for_each_piece(pieces, [&](std::size_t piece) {
    const auto [first, last] = piece_samples(piece, x.rows);
    const std::size_t n = (last - first) * positions;
    // dy's channel runs into [out, samples * positions], the forward GEMM's output layout.
    Scratch& s = scratch();
    float* t = s.t.data();
    for (std::size_t b = first; b < last; ++b)
      for (std::size_t c = 0; c < oc; ++c) {
        const float* g = dy.row(b) + c * positions;
        std::copy(g, g + positions, t + c * n + (b - first) * positions);
      }
    // The patches again: recomputing them in a cache-sized buffer is cheaper
    // than keeping the whole batch's from the forward pass in memory.
    float* col = s.col.data();
    im2col(x, first, last, col);
    sgemm(false, true, oc, patch_, n, 1.0f, t, col, 0.0f, dw_parts_.data() + piece * wn);
    if (!b_.empty()) {
      float* db = db_parts_.data() + piece * oc;
      for (std::size_t c = 0; c < oc; ++c) {
        float sum = 0.0f;
        for (std::size_t j = 0; j < n; ++j) sum += t[c * n + j];
        db[c] = sum;
      }
    }
    if (!dx) return;
    // dcol = W^T dy into the piece's patches (no longer needed), then col2im.
    sgemm(true, false, patch_, n, oc, 1.0f, w_.data.data(), t, 0.0f, col);
    col2im(col, *dx, first, last);
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
