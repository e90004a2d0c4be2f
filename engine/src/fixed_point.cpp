#include "snn/engine/fixed_point.h"

#include "snn/error.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <span>
#include <type_traits>

namespace snn::engine {

namespace {

// The weights a connection stores, in its own order: dense rows, CSR entries,
// the conv kernel ([out, in * kh * kw]), or the pool's single weight. They are
// quantised one by one; generated fan-outs reuse them. A view, not a copy
// (the seed MLP's 2.4 M weights: a 9.6 MB copy and its page faults per load).
std::span<const Weight> stored_weights(const Connection& conn) {
  switch (conn.format()) {
    case FanOutFormat::Dense: return conn.dense().weights;
    case FanOutFormat::Sparse: return {conn.sparse().weights.data(), conn.sparse().weights.size()};
    case FanOutFormat::Conv: return conn.conv().weights.data;
    case FanOutFormat::AvgPool: return {&conn.pool().weight, 1};
  }
  return {};
}

// std::llround, inline: a library call per weight was most of the load-time
// quantisation. Exact for |x| < 2^52: x - trunc(x) is computed without
// rounding, so halves are found exactly and go away from zero.
// Branch-free: the halves' side is random, so a branch on it mispredicts.
inline double round_half_away(double x) {
  const double t = std::trunc(x);
  return t + std::copysign(static_cast<double>(std::fabs(x - t) >= 0.5), x);
}

// Max over targets of sum |w_q| over the target's real fan-in (conv: taps
// that fall inside the input, not on padding).
std::int64_t max_fan_in_sum(const Connection& conn, std::span<const FixedWeight> q, const std::vector<Potential>& bias) {
  std::vector<std::int64_t> sums(conn.target_size(), 0);
  // A bias is one more constant term of the target's sum.
  for (std::size_t t = 0; t < bias.size(); ++t) sums[t] = std::abs(static_cast<std::int64_t>(bias[t]));
  switch (conn.format()) {
    case FanOutFormat::Dense: {
      const std::size_t n = conn.target_size();
      for (std::size_t s = 0; s < conn.source_size(); ++s)
        for (std::size_t t = 0; t < n; ++t) sums[t] += std::abs(static_cast<std::int64_t>(q[s * n + t]));
      break;
    }
    case FanOutFormat::Sparse: {
      const SparseFanOut& sp = conn.sparse();
      for (std::size_t e = 0; e < q.size(); ++e) sums[sp.target_ids[e]] += std::abs(static_cast<std::int64_t>(q[e]));
      break;
    }
    case FanOutFormat::Conv: {
      const WindowGeometry& g = conn.conv().geometry;
      const std::size_t kk = g.kernel_h * g.kernel_w;
      for (std::size_t o = 0; o < g.output.channels; ++o)
        for (std::size_t oy = 0; oy < g.output.height; ++oy)
          for (std::size_t ox = 0; ox < g.output.width; ++ox) {
            std::int64_t sum = 0;
            for (std::size_t ky = 0; ky < g.kernel_h; ++ky) {
              const std::size_t yp = oy * g.stride_h + ky;  // padded coordinates
              if (yp < g.pad_h || yp >= g.pad_h + g.input.height) continue;
              for (std::size_t kx = 0; kx < g.kernel_w; ++kx) {
                const std::size_t xp = ox * g.stride_w + kx;
                if (xp < g.pad_w || xp >= g.pad_w + g.input.width) continue;
                for (std::size_t c = 0; c < g.input.channels; ++c)
                  sum += std::abs(static_cast<std::int64_t>(q[(o * g.input.channels + c) * kk + ky * g.kernel_w + kx]));
              }
            }
            sums[(o * g.output.height + oy) * g.output.width + ox] += sum;
          }
      break;
    }
    case FanOutFormat::AvgPool: {
      const WindowGeometry& g = conn.pool().geometry;
      const std::int64_t window = static_cast<std::int64_t>(g.kernel_h * g.kernel_w) * std::abs(static_cast<std::int64_t>(q[0]));
      for (auto& x : sums) x += window;
      break;
    }
  }
  return sums.empty() ? 0 : *std::max_element(sums.begin(), sums.end());
}

// w scaled by `scale` and rounded into out, all of which must fit `limit`
// (and 2^24): false as soon as a chunk of them holds one that does not. Within
// a chunk the checks are gathered without a branch per weight (the flags are
// near random), and a value out of range (NaN too) is converted as 0, never
// as itself (undefined behaviour): its result is dropped anyway.
bool quantise_all(std::span<const Weight> w, double scale, std::int64_t limit, FixedWeight* out) {
  constexpr std::size_t kChunk = 4096;
  const auto lim = static_cast<double>(limit);
  for (std::size_t first = 0; first < w.size(); first += kChunk) {
    const std::size_t last = std::min(w.size(), first + kChunk);
    bool fits = true;
    for (std::size_t i = first; i < last; ++i) {
      const double x = static_cast<double>(w[i]) * scale;
      const double r = round_half_away(x);
      const bool in_range = std::fabs(r) <= lim;  // false for NaN too
      fits &= (std::fabs(x) < static_cast<double>(kExactSumLimit)) & in_range;
      out[i] = static_cast<FixedWeight>(in_range ? r : 0.0);
    }
    if (!fits) return false;
  }
  return true;
}

// Quantises the weights for k bits into q (its buffer reused from k to k), or
// returns false when some target's sum |w_q| reaches kExactSumLimit (then a
// smaller k is tried). `bias` (the target's, model units, may be empty) is
// quantised into `bias_q`. With `max_weight` (< 2^24), some |w_q| above it (a
// narrower weight table) also asks for a smaller k; biases stay int32 and only
// obey the 2^24 bound.
bool quantise(const Connection& conn, std::span<const Weight> w, const std::vector<Weight>& bias, double theta, int bits,
              std::int64_t max_weight, std::int64_t& max_sum, std::vector<Potential>& bias_q, TableVector<FixedWeight>& q) {
  const double scale = std::ldexp(1.0, bits) / theta;
  q.resize(w.size());
  if (!quantise_all(w, scale, max_weight, q.data())) return false;
  bias_q.resize(bias.size());
  if (!quantise_all(bias, scale, kExactSumLimit, bias_q.data())) return false;
  max_sum = max_fan_in_sum(conn, q, bias_q);
  return max_sum < kExactSumLimit;
}

// Output positions covered by each input row (or column) of one axis.
std::vector<std::uint32_t> axis_reach(const WindowGeometry& g, bool rows) {
  std::vector<std::uint32_t> reach(rows ? g.input.height : g.input.width);
  for (std::size_t i = 0; i < reach.size(); ++i) {
    const auto [lo, hi] = rows ? g.rows_of(i) : g.cols_of(i);
    reach[i] = lo <= hi ? static_cast<std::uint32_t>(hi - lo + 1) : 0;
  }
  return reach;
}

}  // namespace

OpCount FixedConnection::dense_macs() const {
  switch (format) {
    case FanOutFormat::Dense:
    case FanOutFormat::Sparse: return static_cast<OpCount>(sources) * targets;
    case FanOutFormat::Conv:
      return static_cast<OpCount>(targets) * geometry.input.channels * geometry.kernel_h * geometry.kernel_w;
    case FanOutFormat::AvgPool: return static_cast<OpCount>(targets) * geometry.kernel_h * geometry.kernel_w;
  }
  return 0;
}

namespace {

// Narrow copy of 32-bit weights already checked to fit T.
template <typename T>
TableVector<T> narrow(const TableVector<FixedWeight>& w) {
  return TableVector<T>(w.begin(), w.end());
}

// A conv kernel [out, in * kh * kw] tap-major, [in * kh * kw, out]. Stride-1
// columns are stored reversed (kx -> kw - 1 - kx): then the taps one source
// meets along an output row are adjacent, in the order of the targets
// (add_conv's flat row add).
TableVector<FixedWeight> tap_major_of(const TableVector<FixedWeight>& kernel, const WindowGeometry& g) {
  const std::size_t oc = g.output.channels, k = kernel.size() / oc;
  const std::size_t kw = g.kernel_w;
  const bool reversed = g.stride_w == 1;
  TableVector<FixedWeight> taps(kernel.size());
  for (std::size_t o = 0; o < oc; ++o)
    for (std::size_t i = 0; i < k; ++i) {
      const std::size_t kx = i % kw, row = i - kx;
      taps[(row + (reversed ? kw - 1 - kx : kx)) * oc + o] = kernel[o * k + i];
    }
  return taps;
}

}  // namespace

FixedNetwork::FixedNetwork(const Network& network, int bits, int weight_bits) : weight_bits_(weight_bits) {
  if (bits < 0 || bits > kMaxFixedPointBits) throw Error("fixed-point bits must be in 0 .. {}, got {}", kMaxFixedPointBits, bits);
  if (!valid_weight_bits(weight_bits)) throw Error("weight bits must be 32, 16 or 8, got {}", weight_bits);
  const std::int64_t max_weight = weight_bits == 32 ? kExactSumLimit : max_weight_of(weight_bits);
  for (const Population& pop : network.populations()) sizes_.push_back(pop.size);
  params_.resize(sizes_.size());
  biases_.resize(sizes_.size());
  for (std::size_t c = 0; c < network.connection_count(); ++c) {
    const Connection& conn = network.connection(c);
    const PopulationId target = conn.target();
    const Population& pop = network.population(target);
    const double theta = pop.params.threshold;

    int k = bits;
    std::int64_t max_sum = 0;
    TableVector<FixedWeight> q;
    bool fits = false;
    const std::span<const Weight> w = stored_weights(conn);
    for (; k >= 0; --k) {
      fits = quantise(conn, w, pop.bias, theta, k, max_weight, max_sum, biases_[target], q);
      if (fits) break;
    }
    if (!fits)
      throw Error(
          "population {} ('{}'): weights too large for fixed point: even with 0 bits (unit = theta = {}) "
          "some neuron's sum of |w| over its inputs (and |bias|) reaches 2^24 units, or some |w| exceeds {} "
          "units ({}-bit weights)",
          target, pop.name, theta, max_weight, weight_bits);

    QuantisationReport rep;
    rep.target = target;
    rep.requested_bits = bits;
    rep.bits = k;
    rep.weight_bits = weight_bits;
    rep.unit = theta / std::ldexp(1.0, k);
    rep.max_fan_in_sum = max_sum;
    double sq = 0.0;
    double max_w = 0.0;
    // Over the stored weights (conv: each kernel weight once; pool: its one weight).
    std::size_t i = 0;
    for (const Weight x : w) {
      const double err = std::fabs(static_cast<double>(x) - static_cast<double>(q[i]) * rep.unit);
      rep.max_abs_error = std::max(rep.max_abs_error, err);
      sq += err * err;
      max_w = std::max(max_w, std::fabs(static_cast<double>(x)));
      if (x != 0.0f && q[i] == 0) ++rep.zeroed;
      rep.nonzero += x != 0.0f;
      rep.max_abs_weight = std::max<std::int64_t>(rep.max_abs_weight, std::abs(static_cast<std::int64_t>(q[i])));
      ++i;
    }
    rep.rms_error = i ? std::sqrt(sq / static_cast<double>(i)) : 0.0;
    for (std::size_t j = 0; j < pop.bias.size(); ++j) {
      const double err = std::fabs(static_cast<double>(pop.bias[j]) - static_cast<double>(biases_[target][j]) * rep.unit);
      rep.bias_max_abs_error = std::max(rep.bias_max_abs_error, err);
      rep.biases += biases_[target][j] != 0;
    }
    // All-zero quantised biases add nothing: drop them (no per-step pass).
    if (rep.biases == 0) biases_[target].clear();
    rep.max_relative_error = max_w > 0.0 ? rep.max_abs_error / max_w : 0.0;
    reports_.push_back(rep);

    FixedNeuronParams fp;
    fp.threshold = Potential{1} << k;
    fp.reset = pop.params.reset;
    fp.beta = pop.params.beta == 1.0 ? kBetaOne : std::llround(pop.params.beta * static_cast<double>(kBetaOne));
    fp.refractory = pop.params.refractory;
    params_[target] = fp;

    FixedConnection fc;
    fc.source = conn.source();
    fc.delay = conn.delay();
    fc.format = conn.format();
    fc.weight_bits = weight_bits;
    fc.sources = conn.source_size();
    fc.targets = conn.target_size();
    TableVector<FixedWeight> weights = std::move(q);
    if (fc.format == FanOutFormat::Sparse) {
      const SparseFanOut& sp = conn.sparse();
      fc.offsets.assign(sp.offsets.begin(), sp.offsets.end());
      fc.target_ids = TableArray<NeuronId>(TableVector<NeuronId>(sp.target_ids.begin(), sp.target_ids.end()));
      fc.fan_out.resize(fc.sources);
      for (std::size_t s = 0; s < fc.sources; ++s) fc.fan_out[s] = static_cast<std::uint32_t>(sp.row_size(s));
    }
    TableVector<FixedWeight> tap_major;
    if (fc.format == FanOutFormat::Conv || fc.format == FanOutFormat::AvgPool) {
      fc.geometry = fc.format == FanOutFormat::Conv ? conn.conv().geometry : conn.pool().geometry;
      fc.locator = SourceLocator(fc.geometry);
      fc.row_reach = axis_reach(fc.geometry, true);
      fc.col_reach = axis_reach(fc.geometry, false);
      if (fc.format == FanOutFormat::Conv) tap_major = tap_major_of(weights, fc.geometry);
    }
    // Narrow tables replace the 32-bit ones delivery would read (a conv keeps
    // its int32 kernel, small, for the dense baseline; a pool its one weight).
    const bool conv = fc.format == FanOutFormat::Conv;
    TableVector<FixedWeight>& table = conv ? tap_major : weights;
    if (weight_bits == 16 && fc.format != FanOutFormat::AvgPool)
      (conv ? fc.tap_major16 : fc.weights16) = TableArray<std::int16_t>(narrow<std::int16_t>(table));
    else if (weight_bits == 8 && fc.format != FanOutFormat::AvgPool)
      (conv ? fc.tap_major8 : fc.weights8) = TableArray<std::int8_t>(narrow<std::int8_t>(table));
    else if (conv)
      fc.tap_major = TableArray<FixedWeight>(std::move(tap_major));
    if (conv || weight_bits == 32 || fc.format == FanOutFormat::AvgPool) fc.weights = TableArray<FixedWeight>(std::move(weights));
    max_delay_ = std::max(max_delay_, fc.delay);
    connections_.push_back(std::move(fc));
  }
}

std::vector<float> FixedNetwork::dense_float_weights(std::size_t c) const {
  const FixedConnection& fc = connections_.at(c);
  std::vector<float> w(fc.sources * fc.targets, 0.0f);
  // |w_q| < 2^24: exactly representable as float.
  for (std::size_t s = 0; s < fc.sources; ++s)
    fc.for_each_target(s, [&](std::size_t t, FixedWeight x) { w[s * fc.targets + t] = static_cast<float>(x); });
  return w;
}

namespace {

// Calls f(array) for each delivery table of `fc` that share_tables moves, in
// the order of the shared layout (a conv's or pool's `weights` stays: the
// kernel for the dense baseline, the pool's one weight).
template <class Connection, class F>
void for_each_table(Connection& fc, F&& f) {
  if (fc.format == FanOutFormat::Dense || fc.format == FanOutFormat::Sparse) f(fc.weights);
  f(fc.weights16);
  f(fc.weights8);
  f(fc.target_ids);
  f(fc.tap_major);
  f(fc.tap_major16);
  f(fc.tap_major8);
}

std::size_t aligned(std::size_t n) { return (n + kTableAlignment - 1) / kTableAlignment * kTableAlignment; }

// The start of shared table memory: what layout follows, so a reader built
// from another network (or a memory nobody wrote) is refused, not misread.
struct TableHeader {
  std::uint64_t magic;
  std::uint64_t bytes;        // table_bytes()
  std::uint64_t connections;  // connection_count()
  std::uint64_t weight_bits;
};
constexpr std::uint64_t kTableMagic = 0x31626174'6e6e73ULL;  // "snntab1"
static_assert(sizeof(TableHeader) <= kTableAlignment);

}  // namespace

std::size_t FixedNetwork::table_bytes() const {
  std::size_t b = kTableAlignment;  // the header
  for (const FixedConnection& fc : connections_)
    for_each_table(fc, [&](const auto& t) { b += aligned(t.size() * sizeof(t[0])); });
  return b;
}

void FixedNetwork::share_tables(std::byte* memory, std::shared_ptr<const void> owner, bool write) {
  if (tables_shared_) throw Error("fixed-point network: its tables were already moved to shared memory");
  if (memory == nullptr || reinterpret_cast<std::uintptr_t>(memory) % kTableAlignment != 0)
    throw Error("fixed-point network: shared table memory at {} is not aligned to {} bytes", static_cast<const void*>(memory),
                kTableAlignment);
  const TableHeader mine{kTableMagic, table_bytes(), connections_.size(), static_cast<std::uint64_t>(weight_bits_)};
  if (write) {
    std::memcpy(memory, &mine, sizeof mine);
  } else {
    TableHeader theirs;
    std::memcpy(&theirs, memory, sizeof theirs);
    if (theirs.magic != mine.magic || theirs.bytes != mine.bytes || theirs.connections != mine.connections ||
        theirs.weight_bits != mine.weight_bits)
      throw Error(
          "fixed-point network: the shared table memory holds {} ({} bytes, {} connections, {}-bit weights), not this "
          "network's tables ({} bytes, {} connections, {}-bit weights)",
          theirs.magic == kTableMagic ? "another network's tables" : "no tables", theirs.bytes, theirs.connections,
          theirs.weight_bits, mine.bytes, mine.connections, mine.weight_bits);
  }
  std::size_t offset = kTableAlignment;
  for (FixedConnection& fc : connections_)
    for_each_table(fc, [&](auto& t) {
      using T = std::remove_cvref_t<decltype(t[0])>;
      const std::size_t n = t.size() * sizeof(T);
      t.move_to(reinterpret_cast<T*>(memory + offset), write);
      offset += aligned(n);
    });
  tables_shared_ = true;
  table_owner_ = std::move(owner);
}

std::size_t FixedNetwork::bytes() const {
  std::size_t b = 0;
  for (const FixedConnection& fc : connections_)
    b += (fc.weights.size() + fc.tap_major.size()) * sizeof(FixedWeight) +
         (fc.weights16.size() + fc.tap_major16.size()) * sizeof(std::int16_t) + fc.weights8.size() + fc.tap_major8.size() +
         fc.offsets.size() * sizeof(std::uint64_t) + fc.target_ids.size() * sizeof(NeuronId) +
         fc.fan_out.size() * sizeof(std::uint32_t) + (fc.row_reach.size() + fc.col_reach.size()) * sizeof(std::uint32_t);
  return b;
}

}  // namespace snn::engine
