#include "snn/conversion/onnx_import.h"

#include "snn/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <utility>

#if SNNSIM_HAS_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace snn::conversion {

std::size_t OnnxModel::weight_index(std::size_t layer) const {
  std::size_t index = 0;
  for (std::size_t i = 0; i < layer; ++i) index += layers[i].has_weights() ? 1 : 0;
  return index;
}

std::size_t OnnxModel::parameters(std::size_t layer) const {
  if (!layers[layer].has_weights()) return 0;
  const std::size_t w = weight_index(layer);
  return weights[w].data.size() + biases[w].size();
}

std::size_t OnnxModel::parameters() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) total += parameters(i);
  return total;
}

WeightSet to_weight_set(const OnnxModel& model) {
  WeightSet w;
  w.input = model.input;
  w.architecture = model.layers;
  w.layers = model.weights;
  w.biases = model.biases;
  for (const LayerSpec& l : model.layers)
    if (l.has_weights()) w.names.push_back(l.name);
  // None at all is "no biases": the weight directory then has no bias files.
  if (!w.has_bias()) w.biases.clear();
  return w;
}

std::string describe(const OnnxModel& model) {
  std::string out = fmt::format("ONNX model {} (opset {}{})\n", model.file.string(), model.opset,
                                model.producer.empty() ? "" : ", " + model.producer);
  out += fmt::format("input {}\n", to_string(model.input));
  out += fmt::format("{:>3}  {:<10} {:<28} {:<10} {:>10}  {}\n", "#", "layer", "kind", "output", "parameters", "bias");
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    const LayerSpec& layer = model.layers[i];
    std::string bias = "-";
    if (layer.has_weights()) bias = model.biases[model.weight_index(i)].empty() ? "no" : "yes";
    out += fmt::format("{:>3}  {:<10} {:<28} {:<10} {:>10}  {}\n", i + 1, layer.name, snn::describe(layer),
                       to_string(model.shapes[i]), model.parameters(i), bias);
  }
  out +=
      fmt::format("total parameters {}; ReLU after the last layer: {}\n", model.parameters(), model.output_relu ? "yes" : "no");
  out += "ONNX nodes:\n";
  for (const OnnxNodeInfo& node : model.nodes) {
    out += fmt::format("  {:<28} {:<20} {}\n", node.name, node.op_type, node.action);
  }
  return out;
}

#if !SNNSIM_HAS_ONNX

bool onnx_supported() { return false; }

OnnxModel import_onnx(const std::filesystem::path& file) {
  throw Error(
      "cannot read the ONNX model '{}': this snnsim was built without ONNX support (install Debian's "
      "libonnx-dev and libprotobuf-dev, then configure with -DSNNSIM_ONNX=ON)",
      file.string());
}

#else

bool onnx_supported() { return true; }

namespace {

constexpr std::int64_t kMinOpset = 9;
constexpr std::int64_t kMaxOpset = 18;

// A constant tensor's values, widened to double (int64 shape constants are
// far below 2^53, so they stay exact).
struct Tensor {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
};

// Where a constant comes from: an initializer or a Constant node's value.
struct ConstSource {
  const onnx::TensorProto* tensor = nullptr;
  Tensor inline_value;  // Constant nodes with value_float(s) / value_int(s)
};

template <typename T>
std::vector<double> raw_values(const std::string& raw, std::size_t count, const std::string& name) {
  if (raw.size() != count * sizeof(T)) {
    throw Error("tensor '{}' holds {} bytes of data, its shape needs {} (truncated or corrupt model)", name, raw.size(),
                count * sizeof(T));
  }
  std::vector<double> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));  // ONNX raw_data is little-endian, as this host
    out[i] = static_cast<double>(v);
  }
  return out;
}

template <typename Field>
std::vector<double> field_values(const Field& field, std::size_t count, const std::string& name) {
  if (static_cast<std::size_t>(field.size()) != count) {
    throw Error("tensor '{}' holds {} values, its shape needs {} (truncated or corrupt model)", name, field.size(), count);
  }
  return std::vector<double>(field.begin(), field.end());
}

Tensor decode(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location = "?";
    for (const auto& entry : t.external_data()) {
      if (entry.key() == "location") location = entry.value();
    }
    throw Error(
        "tensor '{}' is stored in the external data file '{}'; snnsim reads self-contained models only "
        "(re-save it with onnx.save_model(model, path, save_as_external_data=False))",
        t.name(), location);
  }
  Tensor out;
  std::size_t count = 1;
  for (std::int64_t d : t.dims()) {
    if (d < 0 || d > (std::int64_t{1} << 31)) throw Error("tensor '{}' has an invalid dimension {}", t.name(), d);
    count *= static_cast<std::size_t>(d);
    if (count > (std::size_t{1} << 31)) throw Error("tensor '{}' is too large ({}+ values)", t.name(), count);
    out.dims.push_back(d);
  }
  const bool raw = t.has_raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      out.values = raw ? raw_values<float>(t.raw_data(), count, t.name()) : field_values(t.float_data(), count, t.name());
      break;
    case onnx::TensorProto::DOUBLE:
      out.values = raw ? raw_values<double>(t.raw_data(), count, t.name()) : field_values(t.double_data(), count, t.name());
      break;
    case onnx::TensorProto::INT64:
      out.values = raw ? raw_values<std::int64_t>(t.raw_data(), count, t.name()) : field_values(t.int64_data(), count, t.name());
      break;
    case onnx::TensorProto::INT32:
      out.values = raw ? raw_values<std::int32_t>(t.raw_data(), count, t.name()) : field_values(t.int32_data(), count, t.name());
      break;
    default:
      throw Error("tensor '{}' has ONNX data type {} (snnsim reads float32, float64, int32 and int64 tensors)", t.name(),
                  t.data_type());
  }
  for (std::size_t i = 0; i < out.values.size(); ++i) {
    if (!std::isfinite(out.values[i])) throw Error("tensor '{}' holds a non-finite value at index {}", t.name(), i);
  }
  return out;
}

std::string shape_text(const std::vector<std::int64_t>& dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

std::string node_name(const onnx::NodeProto& node, std::size_t index) {
  return node.name().empty() ? fmt::format("#{}", index) : node.name();
}

const onnx::AttributeProto* find_attr(const onnx::NodeProto& node, std::string_view name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}
std::int64_t attr_int(const onnx::NodeProto& node, std::string_view name, std::int64_t fallback) {
  const auto* a = find_attr(node, name);
  return a ? a->i() : fallback;
}
float attr_float(const onnx::NodeProto& node, std::string_view name, float fallback) {
  const auto* a = find_attr(node, name);
  return a ? a->f() : fallback;
}
std::string attr_string(const onnx::NodeProto& node, std::string_view name, std::string fallback) {
  const auto* a = find_attr(node, name);
  return a ? a->s() : fallback;
}
std::vector<std::int64_t> attr_ints(const onnx::NodeProto& node, std::string_view name, std::vector<std::int64_t> fallback) {
  const auto* a = find_attr(node, name);
  if (!a) return fallback;
  return {a->ints().begin(), a->ints().end()};
}

// Refusals of whole operator kinds, with what to do instead.
std::string refusal(const std::string& op) {
  static const std::vector<std::string> kNotRelu{
      "Sigmoid", "Tanh",     "Gelu",     "Erf",         "Elu",       "Selu", "Celu", "LeakyRelu",
      "PRelu",   "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Clip", "ThresholdedRelu",
      "Exp",     "Log",      "Sqrt",     "Pow",         "Abs"};
  if (op == "MaxPool" || op == "GlobalMaxPool") {
    return "max pooling has no rate-coded spiking equivalent in snnsim: use AveragePool (torch.nn.AvgPool2d, "
           "keras AveragePooling2D) and retrain, or replace the pool by a strided Conv";
  }
  if (std::find(kNotRelu.begin(), kNotRelu.end(), op) != kNotRelu.end()) {
    return fmt::format(
        "{} is not ReLU-convertible: integrate-and-fire neurons compute a ReLU of their input current{}; "
        "retrain the network with ReLU activations",
        op, op == "Erf" ? " (torch exports GELU as Div, Erf, Add, Mul)" : "");
  }
  if (op == "Shape" || op == "Gather" || op == "Concat" || op == "Unsqueeze" || op == "Squeeze") {
    return fmt::format(
        "{} computes shapes at run time (dynamic shapes): export with a fixed input size (torch.onnx.export "
        "without dynamic_axes, or only on the batch axis)",
        op);
  }
  return fmt::format(
      "unsupported operator {} (snnsim converts chains of Gemm, MatMul, Conv, Relu, AveragePool, "
      "GlobalAveragePool, Flatten, Reshape, BatchNormalization and foldable Add/Sub/Mul/Div: see docs/models.md)",
      op);
}

enum class Phase {
  Input,      // no layer yet: element-wise affine ops are input normalisation
  Linear,     // after a weighted layer, before its ReLU: affine ops fold into it
  Rectified,  // after a ReLU or a pool
};

class Importer {
 public:
  explicit Importer(const onnx::ModelProto& model) : model_(model), graph_(model.graph()) {}
  OnnxModel run();

 private:
  void read_opset();
  void collect_constants();
  std::string read_input();
  void walk(std::string current);
  std::string process(const onnx::NodeProto& node, std::size_t index, const std::string& current);

  Tensor constant(const onnx::NodeProto& node, int input) const;
  bool has_input(const onnx::NodeProto& node, int input) const { return node.input_size() > input && !node.input(input).empty(); }
  std::vector<double> broadcast(const Tensor& c) const;

  void gemm(const onnx::NodeProto& node);
  void matmul(const onnx::NodeProto& node);
  void conv(const onnx::NodeProto& node);
  void batch_norm(const onnx::NodeProto& node);
  void elementwise(const onnx::NodeProto& node, const std::string& current);
  void average_pool(const onnx::NodeProto& node, bool global);
  void flatten(const onnx::NodeProto& node, bool reshape);
  void pad(const onnx::NodeProto& node);
  void relu();
  void affine(const std::vector<double>& scale, const std::vector<double>& shift, std::string_view what);

  void add_layer(LayerSpec spec);
  void add_weighted(LayerSpec spec, Matrix weights, std::vector<float> bias);
  void fold_input(Matrix& weights, std::vector<float>& bias, const LayerSpec& spec) const;
  void fold_output(const std::vector<double>& scale, const std::vector<double>& shift);
  std::size_t current_size() const;
  Shape current_shape() const;

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  OnnxModel out_;
  std::map<std::string, ConstSource> constants_;
  std::vector<std::int64_t> dims_;  // the activation's ONNX dims without the batch axis
  Phase phase_ = Phase::Input;
  std::string action_;                       // what the node being processed did, for nodes
  std::vector<double> in_scale_, in_shift_;  // input normalisation, per element of dims_ at the first layer
  bool in_affine_ = false;
  std::map<LayerKind, std::size_t> kind_count_;
  bool last_node_ = false;          // the node being processed writes the graph's output
  std::size_t weighted_layer_ = 0;  // index into out_.layers of the last dense/conv layer
};

OnnxModel Importer::run() {
  read_opset();
  if (!model_.producer_name().empty()) {
    out_.producer = model_.producer_name() + (model_.producer_version().empty() ? "" : " " + model_.producer_version());
  }
  collect_constants();
  walk(read_input());
  if (out_.layers.empty() ||
      std::none_of(out_.layers.begin(), out_.layers.end(), [](const LayerSpec& l) { return l.has_weights(); })) {
    throw Error("the graph has no Conv, Gemm or MatMul layer: nothing to convert");
  }
  out_.output_relu = phase_ == Phase::Rectified;
  out_.shapes = infer_shapes(out_.input, out_.layers);
  return std::move(out_);
}

void Importer::read_opset() {
  bool found = false;
  for (const auto& op : model_.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") {
      out_.opset = op.version();
      found = true;
    }
  }
  if (!found) throw Error("the model declares no ONNX (default-domain) opset (a truncated or non-ONNX file?)");
  if (out_.opset < kMinOpset || out_.opset > kMaxOpset) {
    throw Error("opset {} is outside the supported {} to {}: re-export with, e.g., opset_version=13", out_.opset, kMinOpset,
                kMaxOpset);
  }
}

void Importer::collect_constants() {
  for (const auto& t : graph_.initializer()) constants_[t.name()].tensor = &t;
  for (int index = 0; index < graph_.node_size(); ++index) {
    const auto& node = graph_.node(index);
    if (node.op_type() != "Constant" || node.output_size() != 1) continue;
    ConstSource& source = constants_[node.output(0)];
    for (const auto& a : node.attribute()) {
      if (a.name() == "value") {
        source.tensor = &a.t();
      } else if (a.name() == "value_float") {
        source.inline_value = Tensor{{}, {a.f()}};
      } else if (a.name() == "value_floats") {
        source.inline_value = Tensor{{a.floats_size()}, {a.floats().begin(), a.floats().end()}};
      } else if (a.name() == "value_int") {
        source.inline_value = Tensor{{}, {static_cast<double>(a.i())}};
      } else if (a.name() == "value_ints") {
        source.inline_value = Tensor{{a.ints_size()}, {a.ints().begin(), a.ints().end()}};
      } else {
        throw Error("node '{}' (Constant): its '{}' value is not supported (numeric tensors only)",
                    node_name(node, static_cast<std::size_t>(index)), a.name());
      }
    }
  }
}

std::string Importer::read_input() {
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& in : graph_.input()) {
    if (!constants_.contains(in.name())) inputs.push_back(&in);  // IR < 4 lists initializers as inputs too
  }
  if (inputs.size() != 1) {
    std::vector<std::string> names;
    for (const auto* in : inputs) names.push_back("'" + in->name() + "'");
    throw Error("the graph has {} inputs ({}); snnsim converts networks with exactly one", inputs.size(), fmt::join(names, ", "));
  }
  const auto& in = *inputs.front();
  if (!in.type().has_tensor_type() || in.type().tensor_type().elem_type() != onnx::TensorProto::FLOAT) {
    throw Error("the input '{}' is not a float32 tensor", in.name());
  }
  const auto& shape = in.type().tensor_type().shape();
  const int rank = shape.dim_size();
  if (rank != 2 && rank != 4) {
    throw Error("the input '{}' has rank {}; snnsim takes [batch, features] or [batch, channels, height, width]", in.name(),
                rank);
  }
  static const char* kAxis[] = {"batch", "channels", "height", "width"};
  for (int axis = 1; axis < rank; ++axis) {
    const auto& d = shape.dim(axis);
    if (!d.has_dim_value() || d.dim_value() <= 0) {
      throw Error(
          "the input '{}' has a dynamic {} axis ('{}'): dynamic shapes are not supported; export with a fixed "
          "input size (a dynamic batch axis is fine)",
          in.name(), rank == 2 ? "feature" : kAxis[axis], d.dim_param());
    }
    if (d.dim_value() > (std::int64_t{1} << 20)) {
      throw Error("the input '{}' has a {} axis of {}: too large", in.name(), rank == 2 ? "feature" : kAxis[axis], d.dim_value());
    }
    dims_.push_back(d.dim_value());
  }
  if (current_size() > (std::size_t{1} << 28)) {
    throw Error("the input '{}' of shape {} is too large", in.name(), shape_text(dims_));
  }
  out_.input = current_shape();
  return in.name();
}

void Importer::walk(std::string current) {
  std::map<std::string, std::vector<std::size_t>> consumers;
  for (int i = 0; i < graph_.node_size(); ++i) {
    if (graph_.node(i).op_type() == "Constant") continue;
    for (const auto& name : graph_.node(i).input()) {
      if (!name.empty()) consumers[name].push_back(static_cast<std::size_t>(i));
    }
  }
  if (graph_.output_size() != 1) {
    throw Error("the graph has {} outputs; snnsim converts networks with exactly one", graph_.output_size());
  }
  const std::string& output = graph_.output(0).name();
  std::vector<bool> visited(static_cast<std::size_t>(graph_.node_size()), false);
  for (int i = 0; i < graph_.node_size(); ++i) {
    const auto& node = graph_.node(i);
    out_.nodes.push_back({node_name(node, static_cast<std::size_t>(i)), node.op_type(), "", std::nullopt});
    if (node.op_type() == "Constant") {
      visited[static_cast<std::size_t>(i)] = true;
      out_.nodes.back().action = "constant";
    }
  }
  while (current != output) {
    const auto it = consumers.find(current);
    if (it == consumers.end()) {
      throw Error("tensor '{}' is used by no node and is not the graph's output '{}': the graph is not a chain", current, output);
    }
    const std::vector<std::size_t>& users = it->second;
    if (users.size() > 1) {
      std::vector<std::string> names;
      for (std::size_t u : users) names.push_back(fmt::format("'{}' ({})", out_.nodes[u].name, out_.nodes[u].op_type));
      throw Error(
          "the graph is not a chain: tensor '{}' feeds {} nodes ({}); snnsim converts a plain chain of layers "
          "(no residual or branching connections){}",
          current, users.size(), fmt::join(names, ", "),
          std::any_of(users.begin(), users.end(), [&](std::size_t u) { return out_.nodes[u].op_type == "Shape"; })
              ? "; a Shape node means dynamic shapes: export with a fixed input size"
              : "");
    }
    const std::size_t index = users.front();
    const auto& node = graph_.node(static_cast<int>(index));
    if (visited[index]) {
      throw Error("node '{}' ({}) is reached twice: the graph has a cycle", out_.nodes[index].name, node.op_type());
    }
    visited[index] = true;
    last_node_ = node.output_size() > 0 && node.output(0) == output;
    action_.clear();
    const std::size_t layers_before = out_.layers.size();
    try {
      current = process(node, index, current);
    } catch (const Error& e) { throw Error("node '{}' ({}): {}", out_.nodes[index].name, node.op_type(), e.what()); }
    out_.nodes[index].action = action_;
    if (out_.layers.size() > layers_before) {
      out_.nodes[index].layer = out_.layers.size() - 1;
    } else if (action_.starts_with("folded into layer")) {
      out_.nodes[index].layer = weighted_layer_;
    }
  }
  for (std::size_t i = 0; i < visited.size(); ++i) {
    if (!visited[i]) {
      throw Error("node '{}' ({}) is not on the chain from the input to the output '{}': the graph is not a chain",
                  out_.nodes[i].name, out_.nodes[i].op_type, output);
    }
  }
}

std::string Importer::process(const onnx::NodeProto& node, std::size_t /*index*/, const std::string& current) {
  if (!node.domain().empty() && node.domain() != "ai.onnx") {
    throw Error("operator domain '{}' is not supported (only the default ONNX domain)", node.domain());
  }
  if (node.output_size() < 1) throw Error("the node has no output");
  for (int o = 1; o < node.output_size(); ++o) {
    bool used = false;
    for (const auto& other : graph_.node()) {
      used = used || std::find(other.input().begin(), other.input().end(), node.output(o)) != other.input().end();
    }
    for (const auto& g : graph_.output()) used = used || g.name() == node.output(o);
    if (!node.output(o).empty() && used) {
      throw Error("its extra output '{}' is used (training-mode outputs are not supported)", node.output(o));
    }
  }
  const std::string& op = node.op_type();
  const bool data_first = node.input_size() > 0 && node.input(0) == current;
  if (!data_first && op != "Add" && op != "Sub" && op != "Mul" && op != "Div") {
    throw Error("the activation must be its first input");
  }
  if (op == "Gemm") {
    gemm(node);
  } else if (op == "MatMul") {
    matmul(node);
  } else if (op == "Conv") {
    conv(node);
  } else if (op == "BatchNormalization") {
    batch_norm(node);
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    elementwise(node, current);
  } else if (op == "Relu") {
    relu();
  } else if (op == "AveragePool" || op == "GlobalAveragePool") {
    average_pool(node, op == "GlobalAveragePool");
  } else if (op == "Flatten" || op == "Reshape") {
    flatten(node, op == "Reshape");
  } else if (op == "Pad") {
    pad(node);
  } else if (op == "Identity" || op == "Dropout") {
    action_ = "dropped (no-op at inference)";
  } else if (op == "Softmax" || op == "LogSoftmax") {
    if (!last_node_) throw Error("{} is supported only as the last node (dropped: it does not change the class)", op);
    action_ = "dropped (trailing softmax: the class is the largest logit)";
  } else {
    throw Error("{}", refusal(op));
  }
  return node.output(0);
}

Tensor Importer::constant(const onnx::NodeProto& node, int input) const {
  if (!has_input(node, input)) throw Error("it has no input {} (a weight or parameter)", input + 1);
  const std::string& name = node.input(input);
  const auto it = constants_.find(name);
  if (it == constants_.end()) {
    throw Error(
        "its input {} '{}' is not a constant (an initializer or Constant node); snnsim needs constant "
        "weights and a single activation path",
        input + 1, name);
  }
  Tensor t = it->second.tensor ? decode(*it->second.tensor) : it->second.inline_value;
  std::size_t count = 1;
  for (std::int64_t d : t.dims) count *= static_cast<std::size_t>(d);
  if (t.values.size() != count || count == 0) {
    throw Error("its constant input '{}' of shape {} holds {} values", name, shape_text(t.dims), t.values.size());
  }
  return t;
}

// A constant broadcast (numpy rules) onto the activation [1, dims_...]: one
// value per element in CHW order.
std::vector<double> Importer::broadcast(const Tensor& c) const {
  std::vector<std::int64_t> target{1};
  target.insert(target.end(), dims_.begin(), dims_.end());
  if (c.dims.size() > target.size()) {
    throw Error("its constant of shape {} has more axes than the activation {}", shape_text(c.dims), shape_text(target));
  }
  const std::size_t offset = target.size() - c.dims.size();
  for (std::size_t a = 0; a < c.dims.size(); ++a) {
    if (c.dims[a] != 1 && c.dims[a] != target[a + offset]) {
      throw Error("its constant of shape {} does not broadcast onto the activation {}", shape_text(c.dims), shape_text(target));
    }
  }
  const std::size_t n = current_size();
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Walk the target axes from the last, mapping each index into c.
    std::size_t rest = i, ci = 0, cstride = 1;
    for (std::size_t a = target.size(); a-- > 1;) {
      const std::size_t extent = static_cast<std::size_t>(target[a]);
      const std::size_t idx = rest % extent;
      rest /= extent;
      if (a >= offset) {
        const std::size_t cext = static_cast<std::size_t>(c.dims[a - offset]);
        if (cext != 1) ci += idx * cstride;
        cstride *= cext;
      }
    }
    out[i] = c.values[ci];
  }
  return out;
}

std::size_t Importer::current_size() const {
  std::size_t n = 1;
  for (std::int64_t d : dims_) n *= static_cast<std::size_t>(d);
  return n;
}

Shape Importer::current_shape() const {
  if (dims_.size() == 1) return Shape{static_cast<std::size_t>(dims_[0]), 1, 1};
  return Shape{static_cast<std::size_t>(dims_[0]), static_cast<std::size_t>(dims_[1]), static_cast<std::size_t>(dims_[2])};
}

void Importer::add_layer(LayerSpec spec) {
  const std::size_t n = ++kind_count_[spec.kind];
  static const std::map<LayerKind, std::string_view> kPrefix{
      {LayerKind::Dense, "fc"}, {LayerKind::Conv, "conv"}, {LayerKind::AvgPool, "pool"}, {LayerKind::Flatten, "flatten"}};
  spec.name = fmt::format("{}{}", kPrefix.at(spec.kind), n);
  const Shape in = current_shape();
  const Shape shape = output_shape(spec, in, out_.layers.size() + 1);
  if (spec.kind == LayerKind::Flatten) {
    dims_ = {static_cast<std::int64_t>(shape.size())};
  } else if (spec.kind == LayerKind::Dense) {
    dims_ = {static_cast<std::int64_t>(shape.channels)};
  } else {
    dims_ = {static_cast<std::int64_t>(shape.channels), static_cast<std::int64_t>(shape.height),
             static_cast<std::int64_t>(shape.width)};
  }
  action_ = fmt::format("layer {}: {} '{}' -> {}", out_.layers.size() + 1, snn::describe(spec), spec.name, to_string(shape));
  out_.layers.push_back(std::move(spec));
}

void Importer::add_weighted(LayerSpec spec, Matrix weights, std::vector<float> bias) {
  if (phase_ == Phase::Linear) {
    throw Error(
        "it follows layer {} ('{}') with no Relu between: snnsim's spiking neurons rectify every layer, so two "
        "linear layers in a row would not compute the same function; add a ReLU (or merge the two layers)",
        weighted_layer_ + 1, out_.layers[weighted_layer_].name);
  }
  if (in_affine_) {
    fold_input(weights, bias, spec);
    in_affine_ = false;
  }
  add_layer(std::move(spec));
  weighted_layer_ = out_.layers.size() - 1;
  if (!bias.empty()) action_ += " (with bias)";
  out_.weights.push_back(std::move(weights));
  out_.biases.push_back(std::move(bias));
  phase_ = Phase::Linear;
}

// y = W (s .* x + t) + b = (W diag(s)) x + (b + W t): the input normalisation
// becomes part of the first layer. For a convolution s and t must be the same
// at every position of a channel (the kernel is shared), and a shift cannot
// survive zero padding (the padded zeros would become -t/s in input units).
void Importer::fold_input(Matrix& weights, std::vector<float>& bias, const LayerSpec& spec) const {
  const std::size_t outputs = weights.rows;
  std::vector<double> extra(outputs, 0.0);
  bool shifted = false;
  if (spec.kind == LayerKind::Dense) {
    for (std::size_t o = 0; o < outputs; ++o) {
      float* row = weights.row(o);
      for (std::size_t i = 0; i < weights.cols; ++i) {
        extra[o] += static_cast<double>(row[i]) * in_shift_[i];
        row[i] = static_cast<float>(row[i] * in_scale_[i]);
      }
    }
    shifted = std::any_of(in_shift_.begin(), in_shift_.end(), [](double t) { return t != 0.0; });
  } else {
    const Shape in = current_shape();
    const std::size_t plane = in.height * in.width, kernel = spec.kernel_h * spec.kernel_w;
    for (std::size_t c = 0; c < in.channels; ++c) {
      const double s = in_scale_[c * plane], t = in_shift_[c * plane];
      for (std::size_t p = 0; p < plane; ++p) {
        if (in_scale_[c * plane + p] != s || in_shift_[c * plane + p] != t) {
          throw Error(
              "the input normalisation before it varies across the positions of channel {}; it folds into a Conv "
              "only per channel",
              c);
        }
      }
      shifted = shifted || t != 0.0;
      for (std::size_t o = 0; o < outputs; ++o) {
        float* w = weights.row(o) + c * kernel;
        for (std::size_t k = 0; k < kernel; ++k) {
          extra[o] += static_cast<double>(w[k]) * t;
          w[k] = static_cast<float>(w[k] * s);
        }
      }
    }
    if (shifted && (spec.pad_h || spec.pad_w)) {
      throw Error(
          "the input normalisation before it shifts the input, which cannot be folded into a padded Conv "
          "exactly (its zero padding would mean a different value); normalise outside the model or use padding 0");
    }
  }
  if (!shifted) return;
  if (bias.empty()) bias.assign(outputs, 0.0f);
  for (std::size_t o = 0; o < outputs; ++o) bias[o] = static_cast<float>(bias[o] + extra[o]);
}

// y' = s .* y + t after a weighted layer: W row o *= s_o, b_o = s_o b_o + t_o.
// s and t must be per output channel.
void Importer::fold_output(const std::vector<double>& scale, const std::vector<double>& shift) {
  const std::size_t layer = out_.weights.size() - 1;
  Matrix& w = out_.weights[layer];
  std::vector<float>& bias = out_.biases[layer];
  const std::size_t channels = w.rows, plane = current_size() / channels;
  for (std::size_t c = 0; c < channels; ++c) {
    const double s = scale[c * plane], t = shift[c * plane];
    for (std::size_t p = 1; p < plane; ++p) {
      if (scale[c * plane + p] != s || shift[c * plane + p] != t) {
        throw Error("its constant varies across the positions of channel {}; it folds into a Conv only per channel", c);
      }
    }
    for (std::size_t k = 0; k < w.cols; ++k) w(c, k) = static_cast<float>(w(c, k) * s);
    if (t != 0.0 && bias.empty()) bias.assign(channels, 0.0f);
    if (!bias.empty()) bias[c] = static_cast<float>(bias[c] * s + t);
  }
}

void Importer::gemm(const onnx::NodeProto& node) {
  if (dims_.size() != 1) throw Error("it needs a flat input (add a Flatten before it)");
  if (attr_int(node, "transA", 0) != 0) throw Error("transA = 1 is not supported (the activation is not transposed)");
  const bool trans_b = attr_int(node, "transB", 0) != 0;
  const double alpha = attr_float(node, "alpha", 1.0f), beta = attr_float(node, "beta", 1.0f);
  const Tensor b = constant(node, 1);
  if (b.dims.size() != 2) throw Error("its weight has shape {}, expected 2-D", shape_text(b.dims));
  const auto k = static_cast<std::size_t>(trans_b ? b.dims[1] : b.dims[0]);
  const auto n = static_cast<std::size_t>(trans_b ? b.dims[0] : b.dims[1]);
  if (k != current_size()) {
    throw Error("its weight {} (transB = {}) takes {} inputs, the activation has {}", shape_text(b.dims), trans_b ? 1 : 0, k,
                current_size());
  }
  Matrix w(n, k);
  for (std::size_t o = 0; o < n; ++o) {
    for (std::size_t i = 0; i < k; ++i) w(o, i) = static_cast<float>(alpha * b.values[trans_b ? o * k + i : i * n + o]);
  }
  std::vector<float> bias;
  if (has_input(node, 2)) {
    const Tensor c = constant(node, 2);
    const std::vector<std::int64_t> saved = dims_;
    dims_ = {static_cast<std::int64_t>(n)};
    const std::vector<double> values = broadcast(c);
    dims_ = saved;
    for (double v : values) bias.push_back(static_cast<float>(beta * v));
  }
  add_weighted(LayerSpec::dense(n), std::move(w), std::move(bias));
}

void Importer::matmul(const onnx::NodeProto& node) {
  if (dims_.size() != 1) throw Error("it needs a flat input (add a Flatten before it)");
  const Tensor b = constant(node, 1);
  if (b.dims.size() != 2 || static_cast<std::size_t>(b.dims[0]) != current_size()) {
    throw Error("its weight has shape {}, expected [{}, outputs]", shape_text(b.dims), current_size());
  }
  const auto k = static_cast<std::size_t>(b.dims[0]), n = static_cast<std::size_t>(b.dims[1]);
  Matrix w(n, k);
  for (std::size_t o = 0; o < n; ++o) {
    for (std::size_t i = 0; i < k; ++i) w(o, i) = static_cast<float>(b.values[i * n + o]);
  }
  add_weighted(LayerSpec::dense(n), std::move(w), {});
}

void Importer::conv(const onnx::NodeProto& node) {
  if (dims_.size() != 3) throw Error("it needs a channels x height x width input, gets a flat vector");
  const Tensor w = constant(node, 1);
  if (w.dims.size() != 4) {
    throw Error("its weight has shape {}; snnsim converts 2-D convolutions only ([out, in, kh, kw])", shape_text(w.dims));
  }
  if (std::any_of(w.dims.begin(), w.dims.end(), [](std::int64_t d) { return d <= 0; })) {
    throw Error("its weight has an empty shape {}", shape_text(w.dims));
  }
  if (const std::int64_t group = attr_int(node, "group", 1); group != 1) {
    throw Error(
        "group = {} (grouped or depthwise convolution) is not supported; use group 1 (a full convolution) and "
        "retrain, or expand the kernel to a full one with zeros",
        group);
  }
  for (std::int64_t d : attr_ints(node, "dilations", {})) {
    if (d != 1) throw Error("dilation {} is not supported (dilation 1 only)", d);
  }
  if (w.dims[1] != dims_[0]) {
    throw Error("its weight {} expects {} input channels, the activation has {}", shape_text(w.dims), w.dims[1], dims_[0]);
  }
  const auto kernel = attr_ints(node, "kernel_shape", {w.dims[2], w.dims[3]});
  if (kernel.size() != 2 || kernel[0] != w.dims[2] || kernel[1] != w.dims[3]) {
    throw Error("kernel_shape {} does not match its weight {}", shape_text(kernel), shape_text(w.dims));
  }
  const auto strides = attr_ints(node, "strides", {1, 1});
  std::vector<std::int64_t> pads = attr_ints(node, "pads", {0, 0, 0, 0});
  const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  if (auto_pad == "VALID") {
    pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    if (strides != std::vector<std::int64_t>{1, 1} || kernel[0] % 2 == 0 || kernel[1] % 2 == 0) {
      throw Error("auto_pad {} with stride {} and kernel {} pads unevenly; write explicit symmetric pads", auto_pad,
                  shape_text(strides), shape_text(kernel));
    }
    pads = {kernel[0] / 2, kernel[1] / 2, kernel[0] / 2, kernel[1] / 2};
  } else if (auto_pad != "NOTSET" && !auto_pad.empty()) {
    throw Error("auto_pad '{}' is not supported", auto_pad);
  }
  if (strides.size() != 2 || pads.size() != 4 || strides[0] < 1 || strides[1] < 1 || pads[0] < 0 || pads[1] < 0) {
    throw Error("strides {} or pads {} are not 2-D", shape_text(strides), shape_text(pads));
  }
  if (pads[0] != pads[2] || pads[1] != pads[3]) {
    throw Error("asymmetric pads {} (top, left, bottom, right) are not supported; pad equally on both sides", shape_text(pads));
  }
  LayerSpec spec;
  spec.kind = LayerKind::Conv;
  spec.outputs = static_cast<std::size_t>(w.dims[0]);
  spec.kernel_h = static_cast<std::size_t>(kernel[0]);
  spec.kernel_w = static_cast<std::size_t>(kernel[1]);
  spec.stride_h = static_cast<std::size_t>(strides[0]);
  spec.stride_w = static_cast<std::size_t>(strides[1]);
  spec.pad_h = static_cast<std::size_t>(pads[0]);
  spec.pad_w = static_cast<std::size_t>(pads[1]);
  Matrix m(spec.outputs, w.values.size() / spec.outputs);
  for (std::size_t i = 0; i < w.values.size(); ++i) m.data[i] = static_cast<float>(w.values[i]);
  std::vector<float> bias;
  if (has_input(node, 2)) {
    const Tensor b = constant(node, 2);
    if (b.values.size() != spec.outputs) {
      throw Error("its bias has {} values for {} output channels", b.values.size(), spec.outputs);
    }
    for (double v : b.values) bias.push_back(static_cast<float>(v));
  }
  add_weighted(std::move(spec), std::move(m), std::move(bias));
}

void Importer::batch_norm(const onnx::NodeProto& node) {
  if (attr_int(node, "training_mode", 0) != 0) throw Error("training_mode = 1: export the model in eval mode");
  if (node.input_size() != 5) throw Error("it has {} inputs, expected 5", node.input_size());
  const double eps = attr_float(node, "epsilon", 1e-5f);
  const Tensor gamma = constant(node, 1), beta = constant(node, 2), mean = constant(node, 3), var = constant(node, 4);
  const auto channels = static_cast<std::size_t>(dims_[0]);
  for (const Tensor* t : {&gamma, &beta, &mean, &var}) {
    if (t->values.size() != channels) {
      throw Error("its parameters have {} values for {} channels", t->values.size(), channels);
    }
  }
  const std::size_t plane = current_size() / channels;
  std::vector<double> scale(current_size()), shift(current_size());
  for (std::size_t c = 0; c < channels; ++c) {
    if (var.values[c] + eps <= 0.0) throw Error("channel {} has variance {} (+ epsilon) <= 0", c, var.values[c]);
    const double s = gamma.values[c] / std::sqrt(var.values[c] + eps);
    for (std::size_t p = 0; p < plane; ++p) {
      scale[c * plane + p] = s;
      shift[c * plane + p] = beta.values[c] - mean.values[c] * s;
    }
  }
  affine(scale, shift, "batch norm");
}

// A per-element y = scale .* x + shift: input normalisation before the first
// layer, or folded into the weighted layer it follows.
void Importer::affine(const std::vector<double>& scale, const std::vector<double>& shift, std::string_view what) {
  switch (phase_) {
    case Phase::Rectified:
      throw Error(
          "it scales or shifts a rectified activation (after a ReLU or pool), which cannot be folded into a "
          "layer; place it directly after the Conv/Gemm, before the ReLU");
    case Phase::Input:
      if (!in_affine_) {
        in_scale_.assign(current_size(), 1.0);
        in_shift_.assign(current_size(), 0.0);
        in_affine_ = true;
      }
      for (std::size_t i = 0; i < scale.size(); ++i) {
        in_scale_[i] *= scale[i];
        in_shift_[i] = in_shift_[i] * scale[i] + shift[i];
      }
      action_ = fmt::format("folded into the first layer ({}: input normalisation)", what);
      return;
    case Phase::Linear:
      fold_output(scale, shift);
      action_ = fmt::format("folded into layer {} ({})", weighted_layer_ + 1, what);
      return;
  }
}

void Importer::elementwise(const onnx::NodeProto& node, const std::string& current) {
  const std::string& op = node.op_type();
  if (node.input_size() != 2) throw Error("it has {} inputs, expected 2", node.input_size());
  const int data = node.input(0) == current ? 0 : 1;
  const std::vector<double> c = broadcast(constant(node, 1 - data));
  std::vector<double> scale(c.size(), 1.0), shift(c.size(), 0.0);
  if (op == "Add") {
    shift = c;
  } else if (op == "Mul") {
    scale = c;
  } else if (op == "Sub") {
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (data == 0) {
        shift[i] = -c[i];
      } else {
        scale[i] = -1.0;
        shift[i] = c[i];
      }
    }
  } else {  // Div
    if (data == 1) throw Error("it divides a constant by the activation, which is not linear");
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (c[i] == 0.0) throw Error("it divides by zero (element {} of its constant)", i);
      scale[i] = 1.0 / c[i];
    }
  }
  const std::string what = phase_ == Phase::Linear && op == "Add" ? "bias" : op;
  affine(scale, shift, what);
}

void Importer::relu() {
  switch (phase_) {
    case Phase::Input: throw Error("a Relu on the input, before any Conv/Gemm, has no spiking equivalent; remove it");
    case Phase::Linear:
      phase_ = Phase::Rectified;
      action_ = fmt::format("ReLU of layer {} (the spiking neurons)", weighted_layer_ + 1);
      return;
    case Phase::Rectified: action_ = "dropped (already rectified)"; return;
  }
}

void Importer::average_pool(const onnx::NodeProto& node, bool global) {
  if (dims_.size() != 3) throw Error("it needs a channels x height x width input, gets a flat vector");
  if (phase_ == Phase::Linear) {
    throw Error(
        "it pools layer {} ('{}') before its ReLU; snnsim's neurons rectify every layer before pooling, so "
        "apply the ReLU first (ReLU then pool)",
        weighted_layer_ + 1, out_.layers[weighted_layer_].name);
  }
  if (in_affine_) {
    throw Error(
        "it comes between the input normalisation and the first Conv/Gemm; the normalisation must come "
        "directly before that layer to be folded into it");
  }
  LayerSpec spec;
  spec.kind = LayerKind::AvgPool;
  if (global) {
    spec.kernel_h = spec.stride_h = static_cast<std::size_t>(dims_[1]);
    spec.kernel_w = spec.stride_w = static_cast<std::size_t>(dims_[2]);
  } else {
    const auto kernel = attr_ints(node, "kernel_shape", {});
    const auto strides = attr_ints(node, "strides", {1, 1});
    if (kernel.size() != 2 || strides.size() != 2 || kernel[0] < 1 || kernel[1] < 1 || strides[0] < 1 || strides[1] < 1) {
      throw Error("kernel_shape {} or strides {} are not 2-D", shape_text(kernel), shape_text(strides));
    }
    for (std::int64_t p : attr_ints(node, "pads", {})) {
      if (p != 0) throw Error("padded average pooling is not supported; use padding 0");
    }
    const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
    if (auto_pad != "NOTSET" && auto_pad != "VALID" && !auto_pad.empty()) {
      throw Error("auto_pad '{}' is not supported (pads the input); use padding 0", auto_pad);
    }
    for (std::int64_t d : attr_ints(node, "dilations", {})) {
      if (d != 1) throw Error("dilation {} is not supported", d);
    }
    spec.kernel_h = static_cast<std::size_t>(kernel[0]);
    spec.kernel_w = static_cast<std::size_t>(kernel[1]);
    spec.stride_h = static_cast<std::size_t>(strides[0]);
    spec.stride_w = static_cast<std::size_t>(strides[1]);
  }
  add_layer(std::move(spec));
}

void Importer::flatten(const onnx::NodeProto& node, bool reshape) {
  if (reshape) {
    const Tensor shape = constant(node, 1);
    const auto size = static_cast<double>(current_size());
    const bool allow_zero = attr_int(node, "allowzero", 0) != 0;
    const auto& v = shape.values;
    const bool batch_ok = v.size() == 2 && (v[0] == 1 || v[0] == -1 || (v[0] == 0 && !allow_zero));
    const bool features_ok = v.size() == 2 && (v[1] == size || (v[1] == -1 && v[0] != -1));
    if (!batch_ok || !features_ok) {
      std::vector<std::int64_t> target(v.begin(), v.end());
      throw Error("Reshape to {} is not supported: only to [batch, {}] (a flatten)", shape_text(target), current_size());
    }
  } else {
    const std::int64_t axis = attr_int(node, "axis", 1);
    if (axis != 1 && axis != -static_cast<std::int64_t>(dims_.size())) {
      throw Error("axis = {} is not supported (only 1: keep the batch axis, flatten the rest)", axis);
    }
  }
  if (current_shape().flat()) {
    dims_ = {static_cast<std::int64_t>(current_size())};
    action_ = "dropped (already flat)";
    return;
  }
  add_layer(LayerSpec::flatten());
}

void Importer::pad(const onnx::NodeProto& node) {
  if (const std::string mode = attr_string(node, "mode", "constant"); mode != "constant") {
    throw Error("mode '{}' is not supported", mode);
  }
  std::vector<double> pads;
  if (out_.opset < 11) {
    for (std::int64_t p : attr_ints(node, "pads", {})) pads.push_back(static_cast<double>(p));
  } else {
    pads = constant(node, 1).values;
  }
  if (std::any_of(pads.begin(), pads.end(), [](double p) { return p != 0.0; })) {
    throw Error(
        "non-zero padding as a separate Pad node is not supported; pad inside the Conv (its pads attribute, "
        "torch's Conv2d(padding=...)), and pool without padding");
  }
  action_ = "dropped (all pads zero)";
}

}  // namespace

OnnxModel import_onnx(const std::filesystem::path& file) {
  GOOGLE_PROTOBUF_VERIFY_VERSION;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot open the ONNX model '{}': {}", file.string(), std::strerror(errno));
  onnx::ModelProto model;
  if (!model.ParseFromIstream(&in)) {
    throw Error("'{}' is not a valid ONNX model: protobuf parsing failed (garbage, truncated or not an ONNX file)",
                file.string());
  }
  if (!model.has_graph() || model.graph().node_size() == 0) {
    throw Error("'{}' is not an ONNX model: it holds no graph nodes (garbage, truncated or not an ONNX file)", file.string());
  }
  try {
    OnnxModel result = Importer(model).run();
    result.file = file;
    return result;
  } catch (const Error& e) { throw Error("ONNX model '{}': {}", file.string(), e.what()); }
}

#endif

}  // namespace snn::conversion
