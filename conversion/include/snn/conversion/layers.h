// The building blocks of a trainable feed-forward network. A network is a list
// of Layer objects applied in order to a batch (Matrix: rows = samples of the
// batch, cols = features, row-major). Each kind implements forward and backward;
// a convolutional kind can be added by implementing the same interface.
//
// All dense products go through cblas_sgemm (OpenBLAS). Conv, pooling and
// ReLU layers split a batch into fixed pieces run by the calling oneTBB task
// arena's threads, each with single-threaded OpenBLAS, so that their results
// do not depend on the thread count (conversion/src/pieces.h).
#pragma once

#include "snn/network/layer_spec.h"
#include "snn/network/matrix.h"
#include "snn/network/weights.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace snn::conversion {

/// What a forward pass may depend on besides its input.
struct ForwardContext {
  bool train = false;      ///< training mode: dropout active
  std::uint64_t seed = 0;  ///< the run's seed (dropout masks)
  std::uint64_t step = 0;  ///< optimiser step (batch counter over all epochs): dropout masks differ per step
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string_view kind() const = 0;
  /// Features per sample in and out (0 in = any, for element-wise layers).
  virtual std::size_t inputs() const = 0;
  virtual std::size_t outputs() const = 0;
  /// y = f(x) for a batch; y is resized to [x.rows, outputs]. The layer may keep
  /// state for backward (e.g. a dropout mask); x and y must stay unchanged until
  /// backward is called.
  virtual void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) = 0;
  /// Given x, y of the last forward and dy = dL/dy, sets the parameter
  /// gradients (gradients(), overwritten, not accumulated) and, unless dx is
  /// null, dx = dL/dx (resized to x's shape).
  virtual void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) = 0;
  /// Trainable parameters and their gradients, same length (empty if none).
  virtual std::span<float> parameters() { return {}; }
  virtual std::span<float> gradients() { return {}; }
  /// A bias (one value per output channel or neuron) and its gradient; empty
  /// when the layer has none. A separate tensor so that a bias-free network's
  /// optimiser state is exactly the weights'.
  virtual std::span<float> bias_parameters() { return {}; }
  virtual std::span<float> bias_gradients() { return {}; }
};

/// Fully connected: y = x W^T (+ b) with W of shape [out, in]
/// (torch.nn.Linear.weight); no bias unless one is given.
class DenseLayer final : public Layer {
 public:
  /// `bias`: empty (none) or one value per output neuron.
  explicit DenseLayer(Matrix weights, std::vector<float> bias = {});
  std::string_view kind() const override { return "dense"; }
  std::size_t inputs() const override { return w_.cols; }
  std::size_t outputs() const override { return w_.rows; }
  void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) override;
  void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) override;
  std::span<float> parameters() override { return w_.data; }
  /// Allocated on first use: a model that only evaluates (ANN accuracy,
  /// normalisation) never holds a gradient as large as its weights.
  std::span<float> gradients() override;
  std::span<float> bias_parameters() override { return b_; }
  std::span<float> bias_gradients() override { return db_; }
  const Matrix& weights() const { return w_; }
  Matrix& weights() { return w_; }
  const std::vector<float>& bias() const { return b_; }

 private:
  Matrix w_;
  Matrix dw_;  // [out, in] once gradients() or backward() needed it
  std::vector<float> b_, db_;
};

/// 2-D convolution on CHW rows (one sample per batch row, channels x height x
/// width, row-major, as torch), zero padding, stride, rectangular kernels, one
/// group, optional bias. Weights [out_channels, in_channels * kh * kw]
/// (torch.nn.Conv2d.weight.view(out, -1)). im2col + sgemm per piece of a few
/// samples: the patches of a piece form one [in_c * kh * kw, samples *
/// positions] matrix in a per-thread buffer that fits a core's L2 cache, so
/// each pass is one GEMM per piece rather than a small one per sample; the
/// pieces run in parallel and the weight gradient is their sum in piece order.
class ConvLayer final : public Layer {
 public:
  /// `spec` must be a conv spec valid for `input` (output_shape checks it);
  /// `weights` [spec.outputs, input.channels * kh * kw]; `bias` empty (none) or
  /// one value per output channel.
  ConvLayer(const LayerSpec& spec, const Shape& input, const Matrix& weights, std::vector<float> bias = {});
  std::string_view kind() const override { return "conv"; }
  std::size_t inputs() const override { return in_.size(); }
  std::size_t outputs() const override { return out_.size(); }
  void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) override;
  void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) override;
  std::span<float> parameters() override { return w_.data; }
  std::span<float> gradients() override { return dw_.data; }
  std::span<float> bias_parameters() override { return b_; }
  std::span<float> bias_gradients() override { return db_; }
  const Matrix& weights() const { return w_; }
  const std::vector<float>& bias() const { return b_; }
  const Shape& input_shape() const { return in_; }
  const Shape& output_shape() const { return out_; }

 private:
  // A thread's buffers for one piece of the batch (conv_layers.cpp).
  struct Scratch {
    std::vector<float> col;  // [patch, samples * positions]: im2col's patches, then their gradient
    std::vector<float> t;    // [out, samples * positions]: the GEMM's output / the output gradient
  };
  void prepare_scratch();
  Scratch& scratch();
  void im2col(const Matrix& x, std::size_t first, std::size_t last, float* col) const;
  void col2im(const float* col, Matrix& dx, std::size_t first, std::size_t last) const;
  LayerSpec spec_;
  Shape in_, out_;
  std::size_t patch_;                       // in_c * kh * kw
  Matrix w_, dw_;                           // [out, patch]
  std::vector<float> b_, db_;               // [out] or empty
  std::vector<Scratch> scratch_;            // one per thread of the arena
  std::vector<float> dw_parts_, db_parts_;  // per piece of the batch: its weight / bias gradient
};

/// Average pooling over kernel_h x kernel_w windows with a stride (no padding),
/// per channel, on CHW rows. No parameters.
class AvgPoolLayer final : public Layer {
 public:
  AvgPoolLayer(const LayerSpec& spec, const Shape& input);
  std::string_view kind() const override { return "avgpool"; }
  std::size_t inputs() const override { return in_.size(); }
  std::size_t outputs() const override { return out_.size(); }
  void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) override;
  void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) override;

 private:
  bool tiled(std::size_t k) const;  // k x k windows at stride k
  void pool_sample(const float* x, float* y) const;
  void unpool_sample(const float* dy, float* dx) const;
  LayerSpec spec_;
  Shape in_, out_;
};

/// CxHxW -> C*H*W. A batch row already holds a sample in CHW order, so this is
/// a copy (torch.flatten's order); Model leaves it out of its layer list.
class FlattenLayer final : public Layer {
 public:
  explicit FlattenLayer(const Shape& input) : size_(input.size()) {}
  std::string_view kind() const override { return "flatten"; }
  std::size_t inputs() const override { return size_; }
  std::size_t outputs() const override { return size_; }
  void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) override;
  void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) override;

 private:
  std::size_t size_;
};

/// y = max(x, 0). Backward passes dy where x > 0 (and 0 at x == 0, as PyTorch).
class ReluLayer final : public Layer {
 public:
  explicit ReluLayer(std::size_t width) : width_(width) {}
  std::string_view kind() const override { return "relu"; }
  std::size_t inputs() const override { return width_; }
  std::size_t outputs() const override { return width_; }
  void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) override;
  void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) override;

 private:
  std::size_t width_;
};

/// Inverted dropout: in training each element is zeroed with probability p and
/// the survivors scaled by 1/(1-p) (as torch.nn.Dropout); identity otherwise.
/// The mask is a pure function of (ctx.seed, ctx.step, id, element index).
class DropoutLayer final : public Layer {
 public:
  /// `id` distinguishes this layer's masks from other dropout layers'.
  DropoutLayer(std::size_t width, float p, std::uint64_t id);
  std::string_view kind() const override { return "dropout"; }
  std::size_t inputs() const override { return width_; }
  std::size_t outputs() const override { return width_; }
  void forward(const Matrix& x, Matrix& y, const ForwardContext& ctx) override;
  void backward(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix* dx) override;
  float probability() const { return p_; }

 private:
  std::size_t width_;
  float p_;
  std::uint64_t id_;
  bool active_ = false;      // whether the last forward applied a mask
  std::vector<float> mask_;  // 0 or 1/(1-p) per element of the last forward
};

/// Softmax cross-entropy, mean over the batch (torch.nn.functional.cross_entropy).
struct LossResult {
  double loss = 0.0;        ///< mean over the batch of -log softmax(z)[label]
  std::size_t correct = 0;  ///< samples whose argmax (first on ties) is the label
};
/// logits: [batch, classes]; labels: batch values in [0, classes). If dlogits is
/// not null it receives dL/dlogits = (softmax(z) - onehot) / batch.
LossResult softmax_cross_entropy(const Matrix& logits, const std::uint8_t* labels, Matrix* dlogits);

/// Row-major sgemm: C[m,n] = alpha * op(A) op(B) + beta * C, op = transpose if
/// the flag is set; A is [m,k] (or [k,m] transposed), B is [k,n] (or [n,k]).
void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, const float* b,
           float beta, float* c);

/// OpenBLAS's thread count (set_blas_threads(n) calls openblas_set_num_threads).
int blas_threads();
void set_blas_threads(int n);

/// While alive, OpenBLAS runs single-threaded (its setting is process-wide:
/// create it outside parallel regions only). GEMMs called from several
/// threads at once must not each wake OpenBLAS's own threads, and a GEMM's
/// summation order must not depend on OpenBLAS's thread count.
class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int saved_;
};

/// Puts OpenBLAS's worker threads to sleep now. After the library starts and
/// after every multi-threaded GEMM they spin (sched_yield) before sleeping:
/// about 0.1 s of CPU per process on the other cores, which the engine's
/// threads or other MPI ranks of the node want. The next multi-threaded GEMM
/// wakes them again. Call it only while no other thread of the process can be
/// in a BLAS call (snnsim's main thread between phases, not a library).
void release_blas_threads();

/// This machine as far as training reproducibility goes: the CPU
/// (/proc/cpuinfo) and the OpenBLAS kernels in use (openblas_get_corename(),
/// chosen by CPU model unless $OPENBLAS_CORETYPE pins them).
MachineRecord machine_record();

/// Index of the first largest value in row `r` of `m`.
std::size_t argmax_row(const Matrix& m, std::size_t r);

/// Resizes `m` to rows x cols, keeping its allocation when it shrinks.
void reshape(Matrix& m, std::size_t rows, std::size_t cols);

}  // namespace snn::conversion
