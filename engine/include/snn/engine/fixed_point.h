// The engine's fixed-point view of a Network (docs/design.md, "Fixed-point
// potentials"). Every weight of connection c is quantised once, at load time,
// into its target population's unit u = theta / 2^k; potentials are int32 in
// that unit and the threshold is the integer 2^k. Integer sums do not depend
// on their order, so the event engine, the dense baseline and every thread
// partitioning compute the same potentials bit for bit.
//
// Exactness of the dense baseline: it feeds these integer weights to sgemm as
// floats. A float32 sum of integers is exact while every partial sum stays
// below 2^24 in magnitude, which holds when, for every target neuron, the sum
// of |w| over its fan-in is < 2^24 units (kExactSumLimit). When k bits break
// that bound, k is lowered until it holds; the report says which k was used.
#pragma once

#include "snn/network/network.h"
#include "snn/types.h"

#include <boost/align/aligned_allocator.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace snn::engine {

/// Default fixed-point bits k: unit = theta / 2^16.
inline constexpr int kDefaultFixedPointBits = 16;
/// Largest k accepted (threshold 2^24 stays far below the potential limit).
inline constexpr int kMaxFixedPointBits = 24;
/// Weight table element widths (simulation.weight_bits): 32 (int32, the
/// default), 16 (int16) or 8 (int8). Potentials stay int32 whatever the width.
inline constexpr int kDefaultWeightBits = 32;
/// True for the widths the engine stores: 8, 16, 32.
inline constexpr bool valid_weight_bits(int b) { return b == 8 || b == 16 || b == 32; }
/// Largest |w_q| a weight of `bits` bits holds (symmetric: -127 .. 127 for 8).
inline constexpr std::int64_t max_weight_of(int bits) { return (std::int64_t{1} << (bits - 1)) - 1; }
/// Per-target bound on sum |w| (units) that keeps float32 GEMM sums exact.
inline constexpr std::int64_t kExactSumLimit = std::int64_t{1} << 24;
/// Potentials stay within [-kPotentialLimit, kPotentialLimit]; with |current|
/// < 2^24 per step, v + current then never overflows int32. Leaving the range
/// is an error (snn::Error), never a silent wrap-around.
inline constexpr Potential kPotentialLimit = Potential{1} << 30;
/// beta is applied as the integer factor round(beta * 2^30) / 2^30.
inline constexpr int kBetaShift = 30;
inline constexpr std::int64_t kBetaOne = std::int64_t{1} << kBetaShift;

/// A population's neuron parameters in fixed point.
struct FixedNeuronParams {
  Potential threshold = 0;  ///< 2^k: theta in units
  ResetMode reset = ResetMode::Subtract;
  std::int64_t beta = kBetaOne;  ///< round(beta * 2^30); kBetaOne = no leak
  Step refractory = 0;
  bool leaks() const { return beta != kBetaOne; }
};

/// How connection c's weights were quantised (they share the target's unit).
struct QuantisationReport {
  PopulationId target = 0;
  int requested_bits = kDefaultFixedPointBits;
  int bits = kDefaultFixedPointBits;     ///< k actually used (lowered if the 2^24 bound or the weight width required it)
  int weight_bits = kDefaultWeightBits;  ///< element width of the connection's fan-out table: 32, 16 or 8
  double unit = 0.0;                     ///< model units per fixed-point unit: theta / 2^k
  double max_abs_error = 0.0;            ///< max |w - w_q * unit| over synapses, model units (<= unit / 2)
  double rms_error = 0.0;                ///< root mean square of the same, model units
  double max_relative_error = 0.0;       ///< max_abs_error / max |w| (0 if all weights are 0)
  std::size_t zeroed = 0;                ///< non-zero weights that quantised to 0
  std::size_t nonzero = 0;               ///< non-zero stored weights (zeroed is out of these)
  std::int64_t max_abs_weight = 0;       ///< max |w_q| (units): fits the weight width
  /// Large enough to warn about: the largest weight's relative error above
  /// kWarnRelativeError, or more than kWarnZeroedFraction of the non-zero
  /// weights rounded to 0 (e.g. simulation.fixed_point_bits = 4).
  bool large() const;
  std::int64_t max_fan_in_sum = 0;  ///< max over targets of sum |w_q| + |b_q| (units), < 2^24
  std::size_t biases = 0;           ///< neurons of the target with a non-zero quantised bias
  double bias_max_abs_error = 0.0;  ///< max |b - b_q * unit| over the target's biases, model units
};

/// QuantisationReport::large(): max relative error above 1 % (8-bit weights
/// scaled to their range stay below 1/128 = 0.8 %) ...
inline constexpr double kWarnRelativeError = 0.01;
/// ... or more than 10 % of the non-zero weights rounded to zero.
inline constexpr double kWarnZeroedFraction = 0.10;
inline bool QuantisationReport::large() const {
  return max_relative_error > kWarnRelativeError ||
         (nonzero > 0 && static_cast<double>(zeroed) > kWarnZeroedFraction * static_cast<double>(nonzero));
}

/// Source id -> (channel, row, column) of a conv or pool input, by multiply
/// and shift instead of division (per spike; pool spikes add one weight each,
/// so the divisions dominated their delivery). Exact for all 32-bit ids: with
/// M = floor(2^64 / d) + 1, n / d = (M * n) >> 64 for n, d < 2^32 (Lemire,
/// Kaser and Kurz, "Faster remainder by direct computation", 2019). Planes
/// of fewer than 2^32 neurons (every id is 32-bit).
class SourceLocator {
 public:
  SourceLocator() = default;
  explicit SourceLocator(const WindowGeometry& g)
      : w_(static_cast<std::uint32_t>(g.input.width)),
        plane_(static_cast<std::uint32_t>(g.input.height) * w_),
        mw_(magic(w_)),
        mp_(magic(plane_)) {}
  /// Channel c and position pos = y * width + x of source s.
  void split(NeuronId s, std::uint32_t& c, std::uint32_t& pos) const {
    c = div(s, plane_, mp_);
    pos = s - c * plane_;
  }
  void operator()(NeuronId s, std::uint32_t& c, std::uint32_t& y, std::uint32_t& x) const {
    c = div(s, plane_, mp_);
    const std::uint32_t pos = s - c * plane_;
    y = div(pos, w_, mw_);
    x = pos - y * w_;
  }

 private:
  __extension__ using U128 = unsigned __int128;
  static std::uint64_t magic(std::uint32_t d) { return d <= 1 ? 0 : ~std::uint64_t{0} / d + 1; }
  static std::uint32_t div(std::uint32_t n, std::uint32_t d, std::uint64_t m) {
    return d <= 1 ? n : static_cast<std::uint32_t>((U128{m} * n) >> 64);
  }
  std::uint32_t w_ = 1, plane_ = 1;
  std::uint64_t mw_ = 0, mp_ = 0;
};

/// Every delivery table starts at a multiple of this many bytes (one cache
/// line), whether the network owns it (TableVector) or share_tables moved it.
inline constexpr std::size_t kTableAlignment = 64;

/// A delivery table's storage: 64-byte (cache-line) aligned. malloc starts a
/// large block 16 bytes past a line, so every 64-byte load of a 32-bit row and
/// every other 32-byte load of a 16-bit row straddled two lines. Aligned (with
/// the fused dense step), the seed data-norm run's engine took 0.381 s against
/// 0.464 s at 32 bits and 0.278 s against 0.327 s at 16 (`snnsim run`, 2
/// threads, medians of 5 alternating with the unaligned build, load 3.9).
template <typename T>
using TableVector = std::vector<T, boost::alignment::aligned_allocator<T, kTableAlignment>>;

/// Neuron state that the vectorised passes read and write 64 bytes at a time
/// (potentials, currents, the constant input current, biases): cache-line
/// aligned like the tables. From malloc, where such a block starts within a
/// line depends on the heap's history, so a simulator's 64-byte accesses
/// straddled two lines or not from one process or thread to the next: the
/// seed run's input-layer step at 16 bits took 2.0 or 1.35 kcycles, which made
/// its 16-bit times vary by 15 % between runs. The same storage as a table.
template <typename T>
using StateVector = TableVector<T>;

/// The elements of one delivery table: its own (kTableAlignment-aligned)
/// copy as built, or, once FixedNetwork::share_tables moved them, a
/// read-only view of memory that the network's table owner keeps alive (then
/// it holds none of its own). Reads the same either way; copies of a view
/// view the same memory.
template <typename T>
class TableArray {
 public:
  TableArray() = default;
  explicit TableArray(TableVector<T> v) : own_(std::move(v)), data_(own_.data()), size_(own_.size()) {}
  TableArray(const TableArray& o) : own_(o.own_), data_(o.shared_ ? o.data_ : own_.data()), size_(o.size_), shared_(o.shared_) {}
  TableArray& operator=(const TableArray& o) {
    if (this != &o) *this = TableArray(o);
    return *this;
  }
  // A moved vector keeps its buffer, so data_ stays valid.
  TableArray(TableArray&&) noexcept = default;
  TableArray& operator=(TableArray&&) noexcept = default;

  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  /// True once the elements live in memory this array does not own.
  bool shared() const { return shared_; }
  /// Makes `memory` (room for size() elements) the elements: copies them
  /// there first when `write`, else it must already hold them. Frees the vector.
  void move_to(T* memory, bool write) {
    if (write) std::copy(own_.begin(), own_.end(), memory);
    TableVector<T>().swap(own_);
    data_ = memory;
    shared_ = true;
  }

 private:
  TableVector<T> own_;
  const T* data_ = nullptr;
  std::size_t size_ = 0;
  bool shared_ = false;
};

/// One connection with integer weights, whichever its kind (`format`):
///  - Dense: `weights` is sources x targets, row s contiguous;
///  - Sparse: CSR as in SparseFanOut (`offsets`, `target_ids`, `weights`);
///  - Conv: `weights` is the kernel [out_channels, in_channels * kh * kw]
///    (torch's view(out, -1)), fan-out generated from `geometry`;
///  - AvgPool: `weights` holds the one uniform weight, fan-out from `geometry`.
/// With `weight_bits` 16 or 8, dense and sparse tables are stored only in
/// `weights16` / `weights8` (same layout; `weights` is then empty), and a conv's
/// `tap_major` only in `tap_major16` / `tap_major8` (its int32 `weights` kept for
/// the dense baseline). Read a weight with weight(i); delivery uses table<T>().
/// Conv and pool hold O(kernel + height + width) memory, independent of
/// neurons x fan-out. Delivery is in delivery.h.
/// The delivery tables (the TableArray members but a conv's or pool's int32
/// `weights`) may live in memory shared with other processes
/// (FixedNetwork::share_tables); they are read-only after construction.
struct FixedConnection {
  PopulationId source = 0;
  Step delay = 0;
  FanOutFormat format = FanOutFormat::Dense;
  std::size_t sources = 0;
  std::size_t targets = 0;
  int weight_bits = kDefaultWeightBits;  ///< 32, 16 or 8: the element type of the delivery tables
  TableArray<FixedWeight> weights;
  TableArray<std::int16_t> weights16;  ///< dense/sparse with weight_bits 16
  TableArray<std::int8_t> weights8;    ///< dense/sparse with weight_bits 8
  std::vector<std::uint64_t> offsets;  ///< sparse only: sources + 1
  TableArray<NeuronId> target_ids;     ///< sparse only
  std::vector<std::uint32_t> fan_out;  ///< sparse only: synapses per source
  WindowGeometry geometry;             ///< conv and pool only
  /// Conv only: the kernel tap-major, [in_channels * kh * kw, out_channels],
  /// so one tap's weights to every output channel are contiguous (delivery);
  /// with stride_w == 1 each kernel row's columns are reversed (entry kx holds
  /// tap kw - 1 - kx), so a source's taps along an output row are adjacent.
  TableArray<FixedWeight> tap_major;
  TableArray<std::int16_t> tap_major16;  ///< conv with weight_bits 16
  TableArray<std::int8_t> tap_major8;    ///< conv with weight_bits 8
  /// Conv and pool: output positions covered by input row y / column x
  /// (the fan-out of (c, y, x) is their product, times out_channels for conv).
  std::vector<std::uint32_t> row_reach, col_reach;

  /// Conv and pool: output rows [r0, r0 + row_reach[y]) and columns [c0, c0 +
  /// col_reach[x]) that input (y, x) reaches; in 32-bit arithmetic, with no
  /// division for strides 1 and 2 (delivery calls this per spike).
  void window_of(std::uint32_t y, std::uint32_t x, std::uint32_t& r0, std::uint32_t& c0) const {
    r0 = last_of(y + static_cast<std::uint32_t>(geometry.pad_h), geometry.stride_h, geometry.output.height) + 1 - row_reach[y];
    c0 = last_of(x + static_cast<std::uint32_t>(geometry.pad_w), geometry.stride_w, geometry.output.width) + 1 - col_reach[x];
  }

  /// Conv and pool: `geometry`'s source locator (set with it at load time).
  SourceLocator locator;
  /// Conv and pool: source s as (channel c, row y, column x) of the input
  /// (multiply and shift, no division: SynOps call this per spike).
  void locate(NeuronId s, std::uint32_t& c, std::uint32_t& y, std::uint32_t& x) const { locator(s, c, y, x); }

  // min(ip / stride, out - 1): the last output whose window starts at or before ip.
  static std::uint32_t last_of(std::uint32_t ip, std::size_t stride, std::size_t out) {
    const std::uint32_t q = stride == 1 ? ip : stride == 2 ? ip >> 1 : ip / static_cast<std::uint32_t>(stride);
    return std::min(q, static_cast<std::uint32_t>(out - 1));
  }
  /// Dense row s of a 32-bit table (weight_bits == 32 only; else use weight()).
  const FixedWeight* row(std::size_t s) const { return weights.data() + s * targets; }
  /// Stored weight i (dense: s * targets + t; sparse: CSR entry; conv: kernel), any width.
  FixedWeight weight(std::size_t i) const {
    if (format == FanOutFormat::Conv || format == FanOutFormat::AvgPool || weight_bits == 32) return weights[i];
    return weight_bits == 16 ? FixedWeight{weights16[i]} : FixedWeight{weights8[i]};
  }
  /// The delivery table of element type T (dense/sparse: the weights; conv: tap-major kernel).
  template <typename T>
  const T* table() const {
    const bool conv = format == FanOutFormat::Conv;
    if constexpr (sizeof(T) == 1)
      return conv ? tap_major8.data() : weights8.data();
    else if constexpr (sizeof(T) == 2)
      return conv ? tap_major16.data() : weights16.data();
    else
      return conv ? tap_major.data() : weights.data();
  }
  /// Targets one spike of source s reaches (its SynOps).
  std::size_t fan_out_of(std::size_t s) const {
    switch (format) {
      case FanOutFormat::Dense: return targets;
      case FanOutFormat::Sparse: return fan_out[s];
      case FanOutFormat::Conv:
      case FanOutFormat::AvgPool: {
        std::uint32_t c, y, x;
        locate(static_cast<NeuronId>(s), c, y, x);
        const std::size_t n = std::size_t{row_reach[y]} * col_reach[x];
        return format == FanOutFormat::Conv ? n * geometry.output.channels : n;
      }
    }
    return 0;
  }
  /// SynOps of delivering spikes `ids`: the sum of their fan-outs.
  OpCount synops(std::span<const NeuronId> ids) const {
    if (format == FanOutFormat::Dense) return static_cast<OpCount>(ids.size()) * targets;
    OpCount n = 0;
    if (format == FanOutFormat::Sparse) {
      for (NeuronId s : ids) n += fan_out[s];
      return n;
    }
    // Conv and pool: one flat loop (the engine counts every step's spikes).
    for (NeuronId s : ids) {
      std::uint32_t c, y, x;
      locator(s, c, y, x);
      n += OpCount{row_reach[y]} * col_reach[x];
    }
    return format == FanOutFormat::Conv ? n * geometry.output.channels : n;
  }
  /// Dense equivalent MACs per step: in x out (dense, sparse), out x
  /// in_channels x kh x kw (conv, im2col), out x kh x kw (pool).
  OpCount dense_macs() const;
  /// Calls f(target, weight) for every synapse of source s (any order within
  /// the source; for load-time work, tests and the analog input, not the hot loop).
  template <typename F>
  void for_each_target(std::size_t s, F&& f) const;
};

/// The quantised network the simulators run. Population 0 is the input.
class FixedNetwork {
 public:
  /// Quantises `network` with k = `bits` (0 .. kMaxFixedPointBits) per target
  /// population, lowered per population where the 2^24 bound needs it, or
  /// where the largest |w_q| would not fit `weight_bits` (32, 16 or 8): the
  /// connection's scale is then the power of two 2^k / theta that fits its
  /// largest weight into the width (like a chip's per-connection weight
  /// exponent), and the target's potentials and threshold use the same unit.
  /// Throws snn::Error if even k = 0 breaks the bound (weights >= 2^24 theta,
  /// or >= 2^(weight_bits-1) theta), or on another weight_bits.
  explicit FixedNetwork(const Network& network, int bits = kDefaultFixedPointBits, int weight_bits = kDefaultWeightBits);

  std::size_t population_count() const { return sizes_.size(); }
  std::size_t connection_count() const { return connections_.size(); }
  std::size_t size(PopulationId p) const { return sizes_[p]; }
  std::size_t input_size() const { return sizes_.front(); }
  std::size_t output_size() const { return sizes_.back(); }
  /// Parameters of population p >= 1.
  const FixedNeuronParams& params(PopulationId p) const { return params_[p]; }
  /// Connection c feeds population c + 1.
  const FixedConnection& connection(std::size_t c) const { return connections_[c]; }
  const QuantisationReport& report(std::size_t c) const { return reports_[c]; }
  /// Per-neuron bias of population p in its units (added to the current at
  /// every step); empty when the population has none.
  const std::vector<Potential>& bias(PopulationId p) const { return biases_[p]; }
  const std::vector<QuantisationReport>& reports() const { return reports_; }
  /// Largest connection delay (steps).
  Step max_delay() const { return max_delay_; }
  /// Weights of connection c as a dense [sources x targets] row-major float
  /// matrix of the integer units (zeros where sparse has no synapse): what the
  /// dense baseline multiplies with.
  std::vector<float> dense_float_weights(std::size_t c) const;
  /// Bytes of the weight tables (wherever they live: see share_tables).
  std::size_t bytes() const;
  /// Element width of the fan-out tables (32, 16 or 8).
  int weight_bits() const { return weight_bits_; }

  /// Bytes share_tables() needs: a 64-byte header, then every connection's
  /// delivery tables in connection order (dense and sparse weights at their
  /// width, sparse target ids, conv tap-major kernels), each starting at a
  /// multiple of kTableAlignment. The same for every FixedNetwork built from
  /// the same Network, bits and weight_bits.
  std::size_t table_bytes() const;
  /// Moves the delivery tables into `memory` (table_bytes() bytes, aligned to
  /// kTableAlignment), so processes mapping one memory read one copy: with
  /// `write` this network copies its tables in (with a header describing the
  /// layout); without, `memory` must already hold what a writer built from
  /// the same Network, bits and weight_bits wrote (the header is checked:
  /// snn::Error otherwise). Afterwards the network holds no table of its own
  /// and keeps `owner` (whatever keeps `memory` mapped) alive as long as it
  /// or a copy of it lives; every reader sees the same values as before.
  /// Call it before an Engine or DenseSimulator takes the network, at most
  /// once (snn::Error otherwise); readers only after the writer finished.
  void share_tables(std::byte* memory, std::shared_ptr<const void> owner, bool write);
  /// True after share_tables().
  bool tables_shared() const { return tables_shared_; }

 private:
  std::vector<std::size_t> sizes_;
  std::vector<FixedNeuronParams> params_;  // index 0 unused (input)
  std::vector<std::vector<Potential>> biases_;
  std::vector<FixedConnection> connections_;
  std::vector<QuantisationReport> reports_;
  Step max_delay_ = 0;
  int weight_bits_ = kDefaultWeightBits;
  bool tables_shared_ = false;
  std::shared_ptr<const void> table_owner_;  // keeps the shared tables' memory alive (share_tables)
};

template <typename F>
void FixedConnection::for_each_target(std::size_t s, F&& f) const {
  switch (format) {
    case FanOutFormat::Dense:
      for (std::size_t t = 0; t < targets; ++t) f(t, weight(s * targets + t));
      return;
    case FanOutFormat::Sparse:
      for (std::uint64_t e = offsets[s]; e < offsets[s + 1]; ++e) f(std::size_t{target_ids[e]}, weight(e));
      return;
    case FanOutFormat::Conv:
    case FanOutFormat::AvgPool: {
      const WindowGeometry& g = geometry;
      const std::size_t plane = g.input.height * g.input.width;
      const std::size_t c = s / plane, y = s % plane / g.input.width, x = s % g.input.width;
      const auto [r0, r1] = g.rows_of(y);
      const auto [c0, c1] = g.cols_of(x);
      const bool conv = format == FanOutFormat::Conv;
      const std::size_t o0 = conv ? 0 : c, o1 = conv ? g.output.channels : c + 1;
      const std::size_t kk = g.kernel_h * g.kernel_w;
      for (std::size_t o = o0; o < o1; ++o)
        for (std::size_t oy = r0; oy <= r1 && r0 <= r1; ++oy)
          for (std::size_t ox = c0; ox <= c1 && c0 <= c1; ++ox) {
            const std::size_t ky = y + g.pad_h - oy * g.stride_h, kx = x + g.pad_w - ox * g.stride_w;
            const std::size_t t = (o * g.output.height + oy) * g.output.width + ox;
            f(t, conv ? weights[(o * g.input.channels + c) * kk + ky * g.kernel_w + kx] : weights[0]);
          }
      return;
    }
  }
}

/// Rounds s / 255 to the nearest integer (255 is odd: no ties). Used for the
/// constant "analog" input current sum_i byte_i * w_q[i] / 255.
inline std::int64_t round_div_255(std::int64_t s) { return s >= 0 ? (s + 127) / 255 : -((-s + 127) / 255); }

}  // namespace snn::engine
