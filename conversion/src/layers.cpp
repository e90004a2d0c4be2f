#include "snn/conversion/layers.h"

#include "pieces.h"

#include "snn/conversion/random.h"
#include "snn/error.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

namespace snn::conversion {

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, const float* b,
           float beta, float* c) {
  if (m == 0 || n == 0) return;
  const auto i = [](std::size_t v) { return static_cast<blasint>(v); };
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, i(m), i(n), i(k), alpha, a,
              i(trans_a ? m : k), b, i(trans_b ? k : n), beta, c, i(n));
}

int blas_threads() { return openblas_get_num_threads(); }
void set_blas_threads(int n) { openblas_set_num_threads(n); }

SerialBlas::SerialBlas() : saved_(openblas_get_num_threads()) {
  if (saved_ != 1) openblas_set_num_threads(1);
}
SerialBlas::~SerialBlas() {
  if (saved_ != 1) openblas_set_num_threads(saved_);
}

// OpenBLAS's own fork handler, exported by its pthreads builds: it stops the
// worker threads, which the next threaded call starts again. Weak: other
// builds do not have it, and then there is nothing to stop.
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

void release_blas_threads() {
  if (blas_thread_shutdown_) blas_thread_shutdown_();
}

MachineRecord machine_record() {
  MachineRecord m;
  // The first processor's entry; a machine of one kind has one CPU model.
  std::ifstream in("/proc/cpuinfo");
  std::map<std::string, std::string> f;
  for (std::string line; std::getline(in, line) && !line.empty();) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const auto v = line.find_first_not_of(' ', colon + 1);
    f[key] = v == std::string::npos ? "" : line.substr(v);
  }
  if (f.count("model name"))
    m.cpu = f["model name"] + " (" + f["vendor_id"] + " family " + f["cpu family"] + " model " + f["model"] + " stepping " +
            f["stepping"] + ")";
  m.blas_core = openblas_get_corename();
  m.blas_config = openblas_get_config();
  if (const char* t = std::getenv("OPENBLAS_CORETYPE")) m.blas_coretype = t;
  return m;
}

void reshape(Matrix& m, std::size_t rows, std::size_t cols) {
  m.rows = rows;
  m.cols = cols;
  m.data.resize(rows * cols);
}

std::size_t argmax_row(const Matrix& m, std::size_t r) {
  const float* row = m.row(r);
  return static_cast<std::size_t>(std::max_element(row, row + m.cols) - row);
}

// ---- dense ----

DenseLayer::DenseLayer(Matrix weights, std::vector<float> bias) : w_(std::move(weights)), b_(std::move(bias)), db_(b_.size()) {
  if (w_.rows == 0 || w_.cols == 0 || w_.data.size() != w_.rows * w_.cols)
    throw Error("dense layer: invalid weight matrix [{}, {}] holding {} values", w_.rows, w_.cols, w_.data.size());
  if (!b_.empty() && b_.size() != w_.rows)
    throw Error("dense layer [{}, {}]: bias has {} values, expected {}", w_.rows, w_.cols, b_.size(), w_.rows);
}

std::span<float> DenseLayer::gradients() {
  if (dw_.data.empty()) dw_ = Matrix(w_.rows, w_.cols);
  return dw_.data;
}

void DenseLayer::forward(const Matrix& x, Matrix& y, const ForwardContext&) {
  if (x.cols != w_.cols) throw Error("dense layer [{}, {}]: input has {} features", w_.rows, w_.cols, x.cols);
  reshape(y, x.rows, w_.rows);
  sgemm(false, true, x.rows, w_.rows, w_.cols, 1.0f, x.data.data(), w_.data.data(), 0.0f, y.data.data());
  if (!b_.empty())
    for (std::size_t r = 0; r < y.rows; ++r)
      for (std::size_t c = 0; c < y.cols; ++c) y(r, c) += b_[c];
}

void DenseLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  // dW = dy^T x sums over the batch inside one GEMM; with a zero-row batch the
  // GEMM is skipped and dW must still be defined.
  const std::span<float> dw = gradients();
  if (x.rows == 0) std::fill(dw.begin(), dw.end(), 0.0f);
  sgemm(true, false, w_.rows, w_.cols, x.rows, 1.0f, dy.data.data(), x.data.data(), 0.0f, dw.data());
  if (!b_.empty()) {
    std::fill(db_.begin(), db_.end(), 0.0f);
    for (std::size_t r = 0; r < dy.rows; ++r)
      for (std::size_t c = 0; c < dy.cols; ++c) db_[c] += dy(r, c);
  }
  if (dx) {
    reshape(*dx, x.rows, w_.cols);
    sgemm(false, false, x.rows, w_.cols, w_.rows, 1.0f, dy.data.data(), w_.data.data(), 0.0f, dx->data.data());
  }
}

// ---- relu ----

namespace {

// Elements per piece of an element-wise pass: large enough that a task's
// overhead is noise, small enough that a conv layer's output is shared out.
constexpr std::size_t kElementsPerPiece = std::size_t{1} << 15;

// Branch-free selects over unaliased arrays, so that GCC vectorises them (a
// branch on the sign mispredicts on activations, and through the lambda's
// captured pointers GCC cannot tell the arrays apart).
void relu_range(const float* __restrict in, float* __restrict out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}
void relu_grad_range(const float* __restrict in, const float* __restrict g, float* __restrict out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const float gi = g[i];
    out[i] = in[i] > 0.0f ? gi : 0.0f;
  }
}

}  // namespace

void ReluLayer::forward(const Matrix& x, Matrix& y, const ForwardContext&) {
  reshape(y, x.rows, x.cols);
  const std::size_t n = x.data.size();
  detail::for_each_piece(detail::piece_count(n, kElementsPerPiece), [&](std::size_t piece) {
    const std::size_t begin = piece * kElementsPerPiece;
    relu_range(x.data.data() + begin, y.data.data() + begin, std::min(n - begin, kElementsPerPiece));
  });
}

void ReluLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  if (!dx) return;
  reshape(*dx, x.rows, x.cols);
  const std::size_t n = x.data.size();
  detail::for_each_piece(detail::piece_count(n, kElementsPerPiece), [&](std::size_t piece) {
    const std::size_t begin = piece * kElementsPerPiece;
    relu_grad_range(x.data.data() + begin, dy.data.data() + begin, dx->data.data() + begin,
                    std::min(n - begin, kElementsPerPiece));
  });
}

// ---- dropout ----

DropoutLayer::DropoutLayer(std::size_t width, float p, std::uint64_t id) : width_(width), p_(p), id_(id) {
  if (!(p >= 0.0f && p < 1.0f)) throw Error("dropout probability {} is not in [0, 1)", p);
}

void DropoutLayer::forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) {
  reshape(y, x.rows, x.cols);
  active_ = ctx.train && p_ > 0.0f;
  if (!active_) {
    std::copy(x.data.begin(), x.data.end(), y.data.begin());
    return;
  }
  // One 64-bit word gives two 32-bit draws; element e is dropped when its draw
  // falls below p * 2^32, so P(drop) = p to within 2^-32.
  const CounterRng rng(ctx.seed, RandomPurpose::Dropout, ctx.step, id_);
  const auto threshold = static_cast<std::uint64_t>(std::llround(static_cast<double>(p_) * 4294967296.0));
  const float scale = 1.0f / (1.0f - p_);
  const std::size_t n = x.data.size();
  mask_.resize(n);
  float* mask = mask_.data();
  const std::size_t pairs = n / 2;
  for (std::size_t w = 0; w < pairs; ++w) {
    const std::uint64_t word = rng.at(w);
    mask[2 * w] = (word & 0xffffffffull) < threshold ? 0.0f : scale;
    mask[2 * w + 1] = (word >> 32) < threshold ? 0.0f : scale;
  }
  if (n % 2) mask[n - 1] = (rng.at(pairs) & 0xffffffffull) < threshold ? 0.0f : scale;
  const float* in = x.data.data();
  float* out = y.data.data();
  for (std::size_t i = 0; i < n; ++i) out[i] = in[i] * mask_[i];
}

void DropoutLayer::backward(const Matrix& x, const Matrix&, const Matrix& dy, Matrix* dx) {
  if (!dx) return;
  reshape(*dx, x.rows, x.cols);
  const std::size_t n = x.data.size();
  if (!active_) {
    std::copy(dy.data.begin(), dy.data.end(), dx->data.begin());
    return;
  }
  for (std::size_t i = 0; i < n; ++i) dx->data[i] = dy.data[i] * mask_[i];
}

// ---- loss ----

LossResult softmax_cross_entropy(const Matrix& logits, const std::uint8_t* labels, Matrix* dlogits) {
  LossResult result;
  const std::size_t batch = logits.rows;
  const std::size_t classes = logits.cols;
  if (dlogits) reshape(*dlogits, batch, classes);
  if (batch == 0) return result;
  const double inv_batch = 1.0 / static_cast<double>(batch);
  for (std::size_t r = 0; r < batch; ++r) {
    const float* z = logits.row(r);
    const std::size_t label = labels[r];
    if (label >= classes) throw Error("label {} out of range for {} classes", label, classes);
    const std::size_t best = argmax_row(logits, r);
    if (best == label) ++result.correct;
    // Shifting by the max keeps exp() in range; the sum is in double because it
    // also feeds the reported loss.
    const double zmax = z[best];
    double sum = 0.0;
    for (std::size_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(z[c]) - zmax);
    result.loss += std::log(sum) - (static_cast<double>(z[label]) - zmax);
    if (dlogits) {
      float* d = dlogits->row(r);
      for (std::size_t c = 0; c < classes; ++c) {
        const double p = std::exp(static_cast<double>(z[c]) - zmax) / sum;
        d[c] = static_cast<float>((p - (c == label ? 1.0 : 0.0)) * inv_batch);
      }
    }
  }
  result.loss *= inv_batch;
  return result;
}

}  // namespace snn::conversion
