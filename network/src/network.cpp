#include "snn/network/network.h"

#include "snn/error.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace snn {

std::string_view to_string(ResetMode mode) {
  switch (mode) {
    case ResetMode::Subtract: return "subtract";
    case ResetMode::Zero: return "zero";
  }
  return "?";
}

ResetMode parse_reset_mode(std::string_view text) {
  if (text == "subtract") return ResetMode::Subtract;
  if (text == "zero") return ResetMode::Zero;
  throw Error("unknown reset mode '{}' (expected 'subtract' or 'zero')", text);
}

std::string_view to_string(FanOutFormat format) {
  switch (format) {
    case FanOutFormat::Dense: return "dense";
    case FanOutFormat::Sparse: return "sparse";
  }
  return "?";
}

FanOutFormat parse_fan_out_format(std::string_view text) {
  if (text == "dense") return FanOutFormat::Dense;
  if (text == "sparse") return FanOutFormat::Sparse;
  throw Error("unknown fan-out format '{}' (expected 'dense' or 'sparse')", text);
}

void validate_neuron_params(const NeuronParams& params, std::string_view what) {
  if (!std::isfinite(params.threshold) || params.threshold <= 0.0)
    throw Error("{}: threshold must be finite and > 0, got {}", what, params.threshold);
  if (!std::isfinite(params.beta) || params.beta <= 0.0 || params.beta > 1.0)
    throw Error("{}: beta must be in (0, 1], got {}", what, params.beta);
  if (params.refractory < 0)
    throw Error("{}: refractory period must be >= 0 steps, got {}", what, params.refractory);
}

namespace {

void validate_matrix(const Matrix& weights, std::string_view what) {
  if (weights.rows == 0 || weights.cols == 0)
    throw Error("{}: weight matrix is empty ({} x {})", what, weights.rows, weights.cols);
  if (weights.data.size() != weights.rows * weights.cols)
    throw Error("{}: weight matrix holds {} values, shape {} x {} needs {}", what, weights.data.size(),
                weights.rows, weights.cols, weights.rows * weights.cols);
  for (std::size_t r = 0; r < weights.rows; ++r)
    for (std::size_t c = 0; c < weights.cols; ++c)
      if (!std::isfinite(weights(r, c)))
        throw Error("{}: weight [{}, {}] is not finite ({})", what, r, c, weights(r, c));
}

}  // namespace

DenseFanOut make_dense_fan_out(const Matrix& weights) {
  validate_matrix(weights, "dense fan-out");
  DenseFanOut table;
  table.sources = weights.cols;
  table.targets = weights.rows;
  table.weights.resize(weights.rows * weights.cols);
  // Blocked transpose: [out, in] -> [in, out], so each source's weights become
  // one contiguous row.
  constexpr std::size_t kBlock = 32;
  for (std::size_t r0 = 0; r0 < weights.rows; r0 += kBlock)
    for (std::size_t c0 = 0; c0 < weights.cols; c0 += kBlock)
      for (std::size_t r = r0; r < std::min(r0 + kBlock, weights.rows); ++r)
        for (std::size_t c = c0; c < std::min(c0 + kBlock, weights.cols); ++c)
          table.weights[c * table.targets + r] = weights(r, c);
  return table;
}

SparseFanOut make_sparse_fan_out(const Matrix& weights, double cutoff) {
  validate_matrix(weights, "sparse fan-out");
  if (!std::isfinite(cutoff) || cutoff < 0.0)
    throw Error("sparse fan-out: cutoff must be finite and >= 0, got {}", cutoff);
  auto kept = [cutoff](float w) { return w != 0.0f && std::fabs(static_cast<double>(w)) >= cutoff; };
  SparseFanOut table;
  table.sources = weights.cols;
  table.targets = weights.rows;
  table.offsets.resize(weights.cols + 1, boost::container::default_init);
  // Count per source (column of [out, in]), prefix-sum, then fill: target ids
  // come out sorted because rows are visited in order.
  std::vector<std::uint64_t> counts(weights.cols, 0);
  for (std::size_t r = 0; r < weights.rows; ++r)
    for (std::size_t c = 0; c < weights.cols; ++c)
      if (kept(weights(r, c))) ++counts[c];
  table.offsets[0] = 0;
  for (std::size_t c = 0; c < weights.cols; ++c) table.offsets[c + 1] = table.offsets[c] + counts[c];
  const std::uint64_t total = table.offsets[weights.cols];
  table.target_ids.resize(total, boost::container::default_init);
  table.weights.resize(total, boost::container::default_init);
  std::vector<std::uint64_t> next(table.offsets.begin(), table.offsets.end() - 1);
  for (std::size_t r = 0; r < weights.rows; ++r)
    for (std::size_t c = 0; c < weights.cols; ++c) {
      const float w = weights(r, c);
      if (!kept(w)) continue;
      const std::uint64_t e = next[c]++;
      table.target_ids[e] = static_cast<NeuronId>(r);
      table.weights[e] = w;
    }
  return table;
}

Connection::Connection(PopulationId source, std::size_t source_size, std::size_t target_size, Step delay,
                       std::variant<DenseFanOut, SparseFanOut> table)
    : source_(source), source_size_(source_size), target_size_(target_size), delay_(delay),
      table_(std::move(table)) {
  if (delay < 0) throw Error("connection {} -> {}: delay must be >= 0 steps, got {}", source, source + 1, delay);
  const auto [s, t] = std::visit([](const auto& tab) { return std::pair(tab.sources, tab.targets); }, table_);
  if (s != source_size || t != target_size)
    throw Error("connection {} -> {}: fan-out table is {} x {}, populations are {} -> {}", source, source + 1, s,
                t, source_size, target_size);
}

const DenseFanOut& Connection::dense() const {
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) return *d;
  throw Error("connection {} -> {} is sparse, not dense", source_, source_ + 1);
}

const SparseFanOut& Connection::sparse() const {
  if (const auto* s = std::get_if<SparseFanOut>(&table_)) return *s;
  throw Error("connection {} -> {} is dense, not sparse", source_, source_ + 1);
}

std::size_t Connection::fan_out(std::size_t source) const {
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) return d->targets;
  return std::get<SparseFanOut>(table_).row_size(source);
}

std::size_t Connection::synapses() const {
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) return d->weights.size();
  return std::get<SparseFanOut>(table_).target_ids.size();
}

Matrix Connection::to_matrix() const {
  Matrix m(target_size_, source_size_);
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) {
    for (std::size_t s = 0; s < d->sources; ++s)
      for (std::size_t t = 0; t < d->targets; ++t) m(t, s) = d->row(s)[t];
  } else {
    const auto& sp = std::get<SparseFanOut>(table_);
    for (std::size_t s = 0; s < sp.sources; ++s)
      for (std::uint64_t e = sp.offsets[s]; e < sp.offsets[s + 1]; ++e) m(sp.target_ids[e], s) = sp.weights[e];
  }
  return m;
}

Network::Network(std::size_t input_size, std::string input_name) {
  if (input_size == 0) throw Error("network: input population must have at least one neuron, got 0");
  if (input_size > std::size_t{1} << 31)
    throw Error("network: input population of {} neurons exceeds the 2^31 neuron ids", input_size);
  populations_.push_back(Population{std::move(input_name), input_size, NeuronParams{}});
}

PopulationId Network::add_layer(const Matrix& weights, const NeuronParams& params, const ConnectionSpec& spec,
                                std::string name) {
  const auto p = static_cast<PopulationId>(populations_.size());
  if (name.empty()) name = fmt::format("layer{}", p);
  const std::string what = fmt::format("population {} ('{}')", p, name);
  validate_neuron_params(params, what);
  const std::size_t source_size = populations_.back().size;
  if (weights.cols != source_size)
    throw Error("{}: weight matrix is [{} out, {} in] but the previous population '{}' has {} neurons", what,
                weights.rows, weights.cols, populations_.back().name, source_size);
  if (weights.rows == 0) throw Error("{}: weight matrix has 0 rows (no neurons)", what);
  if (weights.rows > std::size_t{1} << 31)
    throw Error("{}: {} neurons exceed the 2^31 neuron ids", what, weights.rows);
  if (spec.delay < 0) throw Error("{}: connection delay must be >= 0 steps, got {}", what, spec.delay);
  if (!std::isfinite(spec.cutoff) || spec.cutoff < 0.0)
    throw Error("{}: connection cutoff must be finite and >= 0, got {}", what, spec.cutoff);
  if (spec.format == FanOutFormat::Dense && spec.cutoff != 0.0)
    throw Error("{}: a cutoff ({}) needs the sparse format; dense keeps every weight", what, spec.cutoff);
  std::variant<DenseFanOut, SparseFanOut> table;
  try {
    if (spec.format == FanOutFormat::Dense)
      table = make_dense_fan_out(weights);
    else
      table = make_sparse_fan_out(weights, spec.cutoff);
  } catch (const Error& e) {
    throw Error("{}: {}", what, e.what());
  }
  connections_.emplace_back(p - 1, source_size, weights.rows, spec.delay, std::move(table));
  populations_.push_back(Population{std::move(name), weights.rows, params});
  return p;
}

Network Network::from_matrices(const std::vector<Matrix>& layers, const std::vector<NeuronParams>& params,
                               const std::vector<ConnectionSpec>& specs, const std::vector<std::string>& names) {
  if (layers.empty()) throw Error("network: no weight layers given");
  const std::size_t n = layers.size();
  if (params.size() != 1 && params.size() != n)
    throw Error("network: {} neuron parameter sets for {} layers (give 1 or {})", params.size(), n, n);
  if (specs.size() > 1 && specs.size() != n)
    throw Error("network: {} connection specs for {} layers (give 0, 1 or {})", specs.size(), n, n);
  if (!names.empty() && names.size() != n)
    throw Error("network: {} layer names for {} layers", names.size(), n);
  Network net(layers.front().cols);
  for (std::size_t i = 0; i < n; ++i) {
    const NeuronParams& p = params.size() == 1 ? params.front() : params[i];
    const ConnectionSpec spec = specs.empty() ? ConnectionSpec{} : (specs.size() == 1 ? specs.front() : specs[i]);
    net.add_layer(layers[i], p, spec, names.empty() ? std::string{} : names[i]);
  }
  return net;
}

}  // namespace snn
