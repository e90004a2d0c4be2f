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
    case FanOutFormat::Conv: return "conv";
    case FanOutFormat::AvgPool: return "avgpool";
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
  if (params.refractory < 0) throw Error("{}: refractory period must be >= 0 steps, got {}", what, params.refractory);
}

namespace {

void validate_matrix(const Matrix& weights, std::string_view what) {
  if (weights.rows == 0 || weights.cols == 0)
    throw Error("{}: weight matrix is empty ({} x {})", what, weights.rows, weights.cols);
  if (weights.data.size() != weights.rows * weights.cols)
    throw Error("{}: weight matrix holds {} values, shape {} x {} needs {}", what, weights.data.size(), weights.rows,
                weights.cols, weights.rows * weights.cols);
  for (std::size_t r = 0; r < weights.rows; ++r)
    for (std::size_t c = 0; c < weights.cols; ++c)
      if (!std::isfinite(weights(r, c))) throw Error("{}: weight [{}, {}] is not finite ({})", what, r, c, weights(r, c));
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
  if (!std::isfinite(cutoff) || cutoff < 0.0) throw Error("sparse fan-out: cutoff must be finite and >= 0, got {}", cutoff);
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

Connection::Connection(PopulationId source, std::size_t source_size, std::size_t target_size, Step delay, FanOutTable table)
    : source_(source), source_size_(source_size), target_size_(target_size), delay_(delay), table_(std::move(table)) {
  if (delay < 0) throw Error("connection {} -> {}: delay must be >= 0 steps, got {}", source, source + 1, delay);
  const auto [s, t] = std::visit(
      [](const auto& tab) {
        if constexpr (requires { tab.geometry; })
          return std::pair(tab.geometry.input.size(), tab.geometry.output.size());
        else
          return std::pair(tab.sources, tab.targets);
      },
      table_);
  if (s != source_size || t != target_size)
    throw Error("connection {} -> {}: fan-out table is {} x {}, populations are {} -> {}", source, source + 1, s, t, source_size,
                target_size);
}

// Connection::format() is the variant's index: the two must list the kinds in
// the same order.
static_assert(
    std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(FanOutFormat::Dense), FanOutTable>, DenseFanOut> &&
    std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(FanOutFormat::Sparse), FanOutTable>, SparseFanOut> &&
    std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(FanOutFormat::Conv), FanOutTable>, ConvFanOut> &&
    std::is_same_v<std::variant_alternative_t<static_cast<std::size_t>(FanOutFormat::AvgPool), FanOutTable>, PoolFanOut>);

namespace {

std::string_view kind_name(const FanOutTable& t) { return to_string(static_cast<FanOutFormat>(t.index())); }

}  // namespace

const DenseFanOut& Connection::dense() const {
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) return *d;
  throw Error("connection {} -> {} is {}, not dense", source_, source_ + 1, kind_name(table_));
}

const SparseFanOut& Connection::sparse() const {
  if (const auto* s = std::get_if<SparseFanOut>(&table_)) return *s;
  throw Error("connection {} -> {} is {}, not sparse", source_, source_ + 1, kind_name(table_));
}

const ConvFanOut& Connection::conv() const {
  if (const auto* s = std::get_if<ConvFanOut>(&table_)) return *s;
  throw Error("connection {} -> {} is {}, not conv", source_, source_ + 1, kind_name(table_));
}

const PoolFanOut& Connection::pool() const {
  if (const auto* s = std::get_if<PoolFanOut>(&table_)) return *s;
  throw Error("connection {} -> {} is {}, not avgpool", source_, source_ + 1, kind_name(table_));
}

std::size_t WindowGeometry::positions_of(std::size_t y, std::size_t x) const {
  const auto [r0, r1] = rows_of(y);
  const auto [c0, c1] = cols_of(x);
  if (r0 > r1 || c0 > c1) return 0;
  return (r1 - r0 + 1) * (c1 - c0 + 1);
}

std::size_t Connection::fan_out(std::size_t source) const {
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) return d->targets;
  if (const auto* sp = std::get_if<SparseFanOut>(&table_)) return sp->row_size(source);
  const WindowGeometry& g =
      std::holds_alternative<ConvFanOut>(table_) ? std::get<ConvFanOut>(table_).geometry : std::get<PoolFanOut>(table_).geometry;
  const std::size_t plane = g.input.height * g.input.width;
  const std::size_t pos = source % plane;
  const std::size_t n = g.positions_of(pos / g.input.width, pos % g.input.width);
  // A conv source reaches every output channel; a pool source only its own.
  return std::holds_alternative<ConvFanOut>(table_) ? n * g.output.channels : n;
}

std::size_t Connection::synapses() const {
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) return d->weights.size();
  if (const auto* sp = std::get_if<SparseFanOut>(&table_)) return sp->target_ids.size();
  std::size_t n = 0;
  for (std::size_t s = 0; s < source_size_; ++s) n += fan_out(s);
  return n;
}

std::size_t Connection::table_bytes() const {
  return std::visit(
      [](const auto& t) -> std::size_t {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, DenseFanOut>)
          return t.weights.size() * sizeof(Weight);
        else if constexpr (std::is_same_v<T, SparseFanOut>)
          return t.offsets.size() * sizeof(std::uint64_t) + t.target_ids.size() * sizeof(NeuronId) +
                 t.weights.size() * sizeof(Weight);
        else if constexpr (std::is_same_v<T, ConvFanOut>)
          return t.weights.data.size() * sizeof(float);
        else
          return sizeof(Weight);
      },
      table_);
}

Matrix Connection::to_matrix() const {
  Matrix m(target_size_, source_size_);
  if (const auto* d = std::get_if<DenseFanOut>(&table_)) {
    for (std::size_t s = 0; s < d->sources; ++s)
      for (std::size_t t = 0; t < d->targets; ++t) m(t, s) = d->row(s)[t];
  } else if (const auto* sp = std::get_if<SparseFanOut>(&table_)) {
    for (std::size_t s = 0; s < sp->sources; ++s)
      for (std::uint64_t e = sp->offsets[s]; e < sp->offsets[s + 1]; ++e) m(sp->target_ids[e], s) = sp->weights[e];
  } else {
    // Target-side loop over windows: written independently of the engine's
    // source-side generation, so tests can compare the two.
    const bool conv = std::holds_alternative<ConvFanOut>(table_);
    const WindowGeometry& g = conv ? std::get<ConvFanOut>(table_).geometry : std::get<PoolFanOut>(table_).geometry;
    const std::size_t kh = g.kernel_h, kw = g.kernel_w;
    for (std::size_t o = 0; o < g.output.channels; ++o)
      for (std::size_t oy = 0; oy < g.output.height; ++oy)
        for (std::size_t ox = 0; ox < g.output.width; ++ox) {
          const std::size_t t = (o * g.output.height + oy) * g.output.width + ox;
          for (std::size_t c = 0; c < g.input.channels; ++c) {
            if (!conv && c != o) continue;
            for (std::size_t ky = 0; ky < kh; ++ky)
              for (std::size_t kx = 0; kx < kw; ++kx) {
                const auto y = static_cast<long>(oy * g.stride_h + ky) - static_cast<long>(g.pad_h);
                const auto x = static_cast<long>(ox * g.stride_w + kx) - static_cast<long>(g.pad_w);
                if (y < 0 || x < 0 || y >= static_cast<long>(g.input.height) || x >= static_cast<long>(g.input.width)) continue;
                const std::size_t s =
                    (c * g.input.height + static_cast<std::size_t>(y)) * g.input.width + static_cast<std::size_t>(x);
                m(t, s) =
                    conv ? std::get<ConvFanOut>(table_).weights(o, (c * kh + ky) * kw + kx) : std::get<PoolFanOut>(table_).weight;
              }
          }
        }
  }
  return m;
}

namespace {

WindowGeometry window_geometry(const LayerSpec& layer, const Shape& input, const Shape& output) {
  WindowGeometry g;
  g.input = input;
  g.output = output;
  g.kernel_h = layer.kernel_h;
  g.kernel_w = layer.kernel_w;
  g.stride_h = layer.stride_h;
  g.stride_w = layer.stride_w;
  g.pad_h = layer.pad_h;
  g.pad_w = layer.pad_w;
  return g;
}

}  // namespace

ConvFanOut make_conv_fan_out(const LayerSpec& layer, const Shape& input, const Matrix& weights, std::size_t index) {
  if (layer.kind != LayerKind::Conv) throw Error("layer {} '{}' is not a convolution", index, describe(layer));
  const Shape out = output_shape(layer, input, index);
  const auto ws = weight_shape(layer, input);
  const std::size_t cols = ws[1] * ws[2] * ws[3];
  if (weights.rows != ws[0] || weights.cols != cols)
    throw Error("layer {} '{}': kernel is [{}, {}], a {} input needs [{}, {}] ({} x {}x{}x{} as view(out, -1))", index,
                describe(layer), weights.rows, weights.cols, to_string(input), ws[0], cols, ws[0], ws[1], ws[2], ws[3]);
  try {
    validate_matrix(weights, "kernel");
  } catch (const Error& e) { throw Error("layer {} '{}': {}", index, describe(layer), e.what()); }
  return ConvFanOut{window_geometry(layer, input, out), weights};
}

PoolFanOut make_pool_fan_out(const LayerSpec& layer, const Shape& input, double scale, std::size_t index) {
  if (layer.kind != LayerKind::AvgPool) throw Error("layer {} '{}' is not an average pooling", index, describe(layer));
  const Shape out = output_shape(layer, input, index);
  if (!std::isfinite(scale) || scale <= 0.0)
    throw Error("layer {} '{}': pool scale must be finite and > 0, got {}", index, describe(layer), scale);
  const double w = scale / static_cast<double>(layer.kernel_h * layer.kernel_w);
  return PoolFanOut{window_geometry(layer, input, out), static_cast<Weight>(w)};
}

Network::Network(std::size_t input_size, std::string input_name) {
  if (input_size == 0) throw Error("network: input population must have at least one neuron, got 0");
  if (input_size > std::size_t{1} << 31)
    throw Error("network: input population of {} neurons exceeds the 2^31 neuron ids", input_size);
  populations_.push_back(Population{std::move(input_name), input_size, NeuronParams{}, Shape{input_size, 1, 1}, {}});
}

Network::Network(const Shape& input, std::string input_name) : Network(input.size(), std::move(input_name)) {
  populations_.front().shape = input;
}

PopulationId Network::add_layer(const Matrix& weights, const NeuronParams& params, const ConnectionSpec& spec, std::string name) {
  const auto p = static_cast<PopulationId>(populations_.size());
  if (name.empty()) name = fmt::format("layer{}", p);
  const std::string what = fmt::format("population {} ('{}')", p, name);
  validate_neuron_params(params, what);
  const std::size_t source_size = populations_.back().size;
  if (weights.cols != source_size)
    throw Error("{}: weight matrix is [{} out, {} in] but the previous population '{}' has {} neurons", what, weights.rows,
                weights.cols, populations_.back().name, source_size);
  if (weights.rows == 0) throw Error("{}: weight matrix has 0 rows (no neurons)", what);
  if (weights.rows > std::size_t{1} << 31) throw Error("{}: {} neurons exceed the 2^31 neuron ids", what, weights.rows);
  if (spec.delay < 0) throw Error("{}: connection delay must be >= 0 steps, got {}", what, spec.delay);
  if (!std::isfinite(spec.cutoff) || spec.cutoff < 0.0)
    throw Error("{}: connection cutoff must be finite and >= 0, got {}", what, spec.cutoff);
  if (spec.format == FanOutFormat::Dense && spec.cutoff != 0.0)
    throw Error("{}: a cutoff ({}) needs the sparse format; dense keeps every weight", what, spec.cutoff);
  FanOutTable table;
  try {
    if (spec.format == FanOutFormat::Dense)
      table = make_dense_fan_out(weights);
    else
      table = make_sparse_fan_out(weights, spec.cutoff);
  } catch (const Error& e) { throw Error("{}: {}", what, e.what()); }
  connections_.emplace_back(p - 1, source_size, weights.rows, spec.delay, std::move(table));
  populations_.push_back(Population{std::move(name), weights.rows, params, Shape{weights.rows, 1, 1}, {}});
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
  if (!names.empty() && names.size() != n) throw Error("network: {} layer names for {} layers", names.size(), n);
  Network net(layers.front().cols);
  for (std::size_t i = 0; i < n; ++i) {
    const NeuronParams& p = params.size() == 1 ? params.front() : params[i];
    const ConnectionSpec spec = specs.empty() ? ConnectionSpec{} : (specs.size() == 1 ? specs.front() : specs[i]);
    net.add_layer(layers[i], p, spec, names.empty() ? std::string{} : names[i]);
  }
  return net;
}

namespace {

// Checks shared by add_conv and add_pool: the population's name and message
// prefix, neuron parameters and a connection spec that fits a window layer.
std::string window_layer_what(PopulationId p, std::string& name, const LayerSpec& layer, const NeuronParams& params,
                              const ConnectionSpec& spec) {
  if (name.empty()) name = layer.name.empty() ? fmt::format("layer{}", p) : layer.name;
  const std::string what = fmt::format("population {} ('{}', {})", p, name, describe(layer));
  validate_neuron_params(params, what);
  if (spec.delay < 0) throw Error("{}: connection delay must be >= 0 steps, got {}", what, spec.delay);
  if (spec.format == FanOutFormat::Sparse || spec.cutoff != 0.0)
    throw Error("{}: the sparse format and cutoffs apply to dense layers only", what);
  return what;
}

}  // namespace

void Network::set_bias(PopulationId p, std::vector<Weight> bias) {
  if (p == 0 || p >= populations_.size())
    throw Error("bias: population {} does not exist or is the input (populations 1 .. {})", p, populations_.size() - 1);
  Population& pop = populations_[p];
  if (!bias.empty() && bias.size() != pop.size)
    throw Error("population {} ('{}'): {} biases for {} neurons", p, pop.name, bias.size(), pop.size);
  for (std::size_t j = 0; j < bias.size(); ++j)
    if (!std::isfinite(bias[j]))
      throw Error("population {} ('{}'): bias of neuron {} is not finite ({})", p, pop.name, j, bias[j]);
  pop.bias = std::move(bias);
}

PopulationId Network::add_conv(const LayerSpec& layer, const Matrix& weights, const NeuronParams& params,
                               const ConnectionSpec& spec, std::string name) {
  const auto p = static_cast<PopulationId>(populations_.size());
  const std::string what = window_layer_what(p, name, layer, params, spec);
  ConvFanOut table;
  try {
    table = make_conv_fan_out(layer, populations_.back().shape, weights, p);
  } catch (const Error& e) { throw Error("{}: {}", what, e.what()); }
  const Shape out = table.geometry.output;
  if (out.size() > std::size_t{1} << 31) throw Error("{}: {} neurons exceed the 2^31 neuron ids", what, out.size());
  connections_.emplace_back(p - 1, populations_.back().size, out.size(), spec.delay, std::move(table));
  populations_.push_back(Population{std::move(name), out.size(), params, out, {}});
  return p;
}

PopulationId Network::add_pool(const LayerSpec& layer, const NeuronParams& params, const ConnectionSpec& spec, std::string name) {
  const auto p = static_cast<PopulationId>(populations_.size());
  const std::string what = window_layer_what(p, name, layer, params, spec);
  PoolFanOut table;
  try {
    table = make_pool_fan_out(layer, populations_.back().shape, spec.pool_scale, p);
  } catch (const Error& e) { throw Error("{}: {}", what, e.what()); }
  const Shape out = table.geometry.output;
  connections_.emplace_back(p - 1, populations_.back().size, out.size(), spec.delay, std::move(table));
  populations_.push_back(Population{std::move(name), out.size(), params, out, {}});
  return p;
}

Network Network::from_layers(const Shape& input, const std::vector<LayerSpec>& layers, const std::vector<Matrix>& weights,
                             const std::vector<NeuronParams>& params, const std::vector<ConnectionSpec>& specs,
                             const std::vector<std::vector<Weight>>& biases) {
  const std::vector<Shape> shapes = infer_shapes(input, layers);  // throws naming the layer at fault
  std::size_t spiking = 0, weighted = 0;
  for (const LayerSpec& l : layers) {
    spiking += l.spiking();
    weighted += l.has_weights();
  }
  if (spiking == 0) throw Error("network: the layer list has no spiking layer (only flatten)");
  if (weights.size() != weighted)
    throw Error("network: {} weight matrices for {} dense or conv layers", weights.size(), weighted);
  if (params.size() != 1 && params.size() != spiking)
    throw Error("network: {} neuron parameter sets for {} spiking layers (give 1 or {})", params.size(), spiking, spiking);
  if (specs.size() > 1 && specs.size() != spiking)
    throw Error("network: {} connection specs for {} connections (give 0, 1 or {})", specs.size(), spiking, spiking);
  if (!biases.empty() && biases.size() != spiking)
    throw Error("network: {} bias vectors for {} spiking layers (give 0 or {})", biases.size(), spiking, spiking);
  Network net(input);
  Shape in = input;
  std::size_t w = 0, pop = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    if (!l.spiking()) {
      // Flatten: CHW order is kept, only the shape's reading changes (the
      // population keeps its CHW shape; a dense layer reads it flat).
      in = shapes[i];
      continue;
    }
    const NeuronParams& np = params.size() == 1 ? params.front() : params[pop];
    const ConnectionSpec spec = specs.empty() ? ConnectionSpec{} : (specs.size() == 1 ? specs.front() : specs[pop]);
    const std::string what = fmt::format("layer {} '{}'", i + 1, describe(l));
    if (l.has_weights()) {
      const auto ws = weight_shape(l, in);
      const Matrix& m = weights[w++];
      const std::size_t cols = l.kind == LayerKind::Conv ? ws[1] * ws[2] * ws[3] : ws[1];
      if (m.rows != ws[0] || m.cols != cols)
        throw Error("{}: weight matrix {} is [{}, {}], the layer on a {} input needs [{}, {}]", what, w - 1, m.rows, m.cols,
                    to_string(in), ws[0], cols);
    }
    try {
      if (l.kind == LayerKind::Dense) {
        net.add_layer(weights[w - 1], np, spec, l.name);
      } else {
        // One spec for all connections: its format and cutoff are meant for
        // the dense layers; a conv or pool layer has one kind of table.
        ConnectionSpec cs = spec;
        if (specs.size() == 1) {
          cs.format = FanOutFormat::Dense;
          cs.cutoff = 0.0;
        }
        if (l.kind == LayerKind::Conv)
          net.add_conv(l, weights[w - 1], np, cs, l.name);
        else
          net.add_pool(l, np, cs, l.name);
      }
      if (!biases.empty()) net.set_bias(static_cast<PopulationId>(pop + 1), biases[pop]);
    } catch (const Error& e) { throw Error("{}: {}", what, e.what()); }
    in = shapes[i];
    ++pop;
  }
  return net;
}

}  // namespace snn
