#include "snn/conversion/normalise.h"

#include "snn/conversion/trainer.h"
#include "snn/error.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace snn::conversion {

namespace {

std::size_t layers_to_scale(const std::vector<Matrix>& layers, bool include_last) {
  if (layers.empty()) throw Error("normalisation: the network has no layers");
  return include_last ? layers.size() : layers.size() - 1;
}

void scale(Matrix& m, double divisor) {
  // In double, then rounded once: W / f is the correctly rounded quotient.
  for (float& w : m.data) w = static_cast<float>(static_cast<double>(w) / divisor);
}

std::vector<double> apply_lambdas(std::vector<Matrix>& layers, const std::vector<double>& lambdas, bool include_last,
                                  const char* what) {
  const std::size_t n = layers_to_scale(layers, include_last);
  if (lambdas.size() < n) throw Error("{} normalisation: {} per-layer values for {} layers to scale", what, lambdas.size(), n);
  for (std::size_t l = 0; l < n; ++l)
    if (!(lambdas[l] > 0.0) || !std::isfinite(lambdas[l]))
      throw Error("{} normalisation: layer {} has scale {} (expected a finite value > 0: is the layer never active?)", what, l,
                  lambdas[l]);
  std::vector<double> factors;
  double previous = 1.0;
  for (std::size_t l = 0; l < n; ++l) {
    const double applied = lambdas[l] / previous;
    scale(layers[l], applied);
    factors.push_back(applied);
    previous = lambdas[l];
  }
  return factors;
}

}  // namespace

std::vector<double> normalise_model(std::vector<Matrix>& layers, bool include_last) {
  const std::size_t n = layers_to_scale(layers, include_last);
  std::vector<double> factors;
  for (std::size_t l = 0; l < n; ++l) {
    Matrix& m = layers[l];
    double max_input = 0.0;
    for (std::size_t r = 0; r < m.rows; ++r) {
      double sum = 0.0;
      const float* row = m.row(r);
      for (std::size_t c = 0; c < m.cols; ++c) sum += row[c] > 0.0f ? row[c] : 0.0f;
      max_input = std::max(max_input, sum);
    }
    if (max_input <= 0.0) throw Error("model normalisation: layer {} has no positive weight, its factor would be 0", l);
    scale(m, max_input);
    factors.push_back(max_input);
  }
  return factors;
}

std::vector<double> normalise_data(std::vector<Matrix>& layers, const std::vector<double>& max_activations, bool include_last) {
  const std::size_t n = layers_to_scale(layers, include_last);
  if (max_activations.size() < n)
    throw Error("data normalisation: {} activation maxima for {} layers to scale", max_activations.size(), n);
  std::vector<double> lambdas;
  for (std::size_t l = 0; l < n; ++l) {
    double max_weight = 0.0;
    for (float w : layers[l].data) max_weight = std::max(max_weight, static_cast<double>(w));
    lambdas.push_back(std::max(max_weight, max_activations[l]));
  }
  return apply_lambdas(layers, lambdas, include_last, "data");
}

std::vector<double> normalise_robust(std::vector<Matrix>& layers, const std::vector<double>& percentiles, bool include_last) {
  return apply_lambdas(layers, percentiles, include_last, "robust");
}

std::vector<double> max_activations(const std::vector<Matrix>& layers, const Dataset& data, std::size_t samples) {
  std::vector<float> maxima(layers.size(), 0.0f);
  for_each_activation(layers, data, samples, [&](std::size_t l, const Matrix& a) {
    float m = maxima[l];
    for (float v : a.data) m = std::max(m, v);
    maxima[l] = m;
  });
  return {maxima.begin(), maxima.end()};
}

std::vector<double> activation_percentiles(const std::vector<Matrix>& layers, const Dataset& data, double percentile,
                                           std::size_t samples) {
  if (!(percentile > 0.0 && percentile <= 100.0))
    throw Error("robust normalisation: percentile {} is not in (0, 100]", percentile);
  std::vector<PercentileHistogram> hist(layers.size());
  for_each_activation(layers, data, samples, [&](std::size_t l, const Matrix& a) { hist[l].add(a.data.data(), a.data.size()); });
  return percentiles_of(hist, percentile);
}

std::vector<double> percentiles_of(const std::vector<PercentileHistogram>& hist, double percentile) {
  std::vector<double> out;
  for (std::size_t l = 0; l < hist.size(); ++l) {
    if (hist[l].count() == 0) throw Error("robust normalisation: layer {} has no non-zero activation on the samples", l);
    out.push_back(hist[l].percentile(percentile));
  }
  return out;
}

// ---- any architecture ----

namespace {

// Per spiking layer: the index of its weight matrix, or -1 for an avgpool.
std::vector<long> spiking_weight_index(const WeightSet& w) {
  std::vector<long> out;
  long k = 0;
  for (const LayerSpec& l : w.layer_specs()) {
    if (l.has_weights())
      out.push_back(k++);
    else if (l.spiking())
      out.push_back(-1);
  }
  if (out.empty() || static_cast<std::size_t>(k) != w.layers.size())
    throw Error("normalisation: the architecture has {} dense/conv layers for {} weight matrices", k, w.layers.size());
  if (out.back() < 0) throw Error("normalisation: the last layer must be dense or conv");
  return out;
}

std::vector<float>* bias_of(WeightSet& w, long k) {
  if (k < 0 || static_cast<std::size_t>(k) >= w.biases.size() || w.biases[static_cast<std::size_t>(k)].empty()) return nullptr;
  return &w.biases[static_cast<std::size_t>(k)];
}

void scale_bias(std::vector<float>* b, double divisor) {
  if (!b) return;
  for (float& v : *b) v = static_cast<float>(static_cast<double>(v) / divisor);
}

// lambdas: per spiking layer, used for dense/conv layers only (an avgpool
// takes its input's lambda). Returns the applied factors.
std::vector<double> apply_lambdas(WeightSet& w, const std::vector<double>& lambdas, bool include_last, const char* what) {
  const std::vector<long> index = spiking_weight_index(w);
  const std::size_t n = include_last ? index.size() : index.size() - 1;
  if (lambdas.size() < n)
    throw Error("{} normalisation: {} per-layer values for {} spiking layers to scale", what, lambdas.size(), n);
  std::vector<double> factors;
  double previous = 1.0;
  for (std::size_t s = 0; s < index.size(); ++s) {
    const long k = index[s];
    if (s >= n) {  // the output layer, left unscaled: only its bias follows the input's scale
      scale_bias(bias_of(w, k), previous);
      continue;
    }
    if (k < 0) {
      factors.push_back(1.0);
      continue;
    }
    const double lambda = lambdas[s];
    if (!(lambda > 0.0) || !std::isfinite(lambda))
      throw Error("{} normalisation: spiking layer {} has scale {} (expected a finite value > 0: is the layer never active?)",
                  what, s, lambda);
    const double applied = lambda / previous;
    scale(w.layers[static_cast<std::size_t>(k)], applied);
    scale_bias(bias_of(w, k), lambda);
    factors.push_back(applied);
    previous = lambda;
  }
  return factors;
}

}  // namespace

double pool_weight(const LayerSpec& pool, double factor) {
  return 1.0 / static_cast<double>(pool.kernel_h * pool.kernel_w) / factor;
}

std::vector<double> normalise_model(WeightSet& w, bool include_last) {
  const std::vector<long> index = spiking_weight_index(w);
  const std::size_t n = include_last ? index.size() : index.size() - 1;
  std::vector<double> factors;
  double scale_before = 1.0;  // overall scale of the layers so far
  for (std::size_t s = 0; s < index.size(); ++s) {
    const long k = index[s];
    if (k < 0) {
      if (s < n) factors.push_back(1.0);
      continue;
    }
    std::vector<float>* b = bias_of(w, k);
    scale_bias(b, scale_before);
    if (s >= n) continue;
    Matrix& m = w.layers[static_cast<std::size_t>(k)];
    double max_input = 0.0;
    for (std::size_t r = 0; r < m.rows; ++r) {
      double sum = b && (*b)[r] > 0.0f ? (*b)[r] : 0.0;
      const float* row = m.row(r);
      for (std::size_t c = 0; c < m.cols; ++c) sum += row[c] > 0.0f ? row[c] : 0.0f;
      max_input = std::max(max_input, sum);
    }
    if (max_input <= 0.0) throw Error("model normalisation: spiking layer {} has no positive weight, its factor would be 0", s);
    scale(m, max_input);
    scale_bias(b, max_input);
    factors.push_back(max_input);
    scale_before *= max_input;
  }
  return factors;
}

std::vector<double> normalise_data(WeightSet& w, const std::vector<double>& max_activations, bool include_last) {
  const std::vector<long> index = spiking_weight_index(w);
  const std::size_t n = include_last ? index.size() : index.size() - 1;
  if (max_activations.size() < n)
    throw Error("data normalisation: {} activation maxima for {} spiking layers to scale", max_activations.size(), n);
  std::vector<double> lambdas(index.size(), 0.0);
  for (std::size_t s = 0; s < n; ++s) {
    if (index[s] < 0) continue;
    double max_weight = 0.0;
    for (float v : w.layers[static_cast<std::size_t>(index[s])].data) max_weight = std::max(max_weight, static_cast<double>(v));
    lambdas[s] = std::max(max_weight, max_activations[s]);
  }
  return apply_lambdas(w, lambdas, include_last, "data");
}

std::vector<double> normalise_robust(WeightSet& w, const std::vector<double>& percentiles, bool include_last) {
  return apply_lambdas(w, percentiles, include_last, "robust");
}

std::vector<double> max_activations(const WeightSet& w, const Dataset& data, std::size_t samples) {
  std::vector<float> maxima;
  for_each_activation(w, data, samples, [&](std::size_t l, const Matrix& a) {
    if (maxima.size() <= l) maxima.resize(l + 1, 0.0f);
    float m = maxima[l];
    for (float v : a.data) m = std::max(m, v);
    maxima[l] = m;
  });
  return {maxima.begin(), maxima.end()};
}

std::vector<double> activation_percentiles(const WeightSet& w, const Dataset& data, double percentile, std::size_t samples) {
  if (!(percentile > 0.0 && percentile <= 100.0))
    throw Error("robust normalisation: percentile {} is not in (0, 100]", percentile);
  std::vector<PercentileHistogram> hist(spiking_weight_index(w).size());
  for_each_activation(w, data, samples, [&](std::size_t l, const Matrix& a) { hist.at(l).add(a.data.data(), a.data.size()); });
  std::vector<double> out;
  for (std::size_t l = 0; l < hist.size(); ++l) {
    if (hist[l].count() == 0) throw Error("robust normalisation: spiking layer {} has no non-zero activation on the samples", l);
    out.push_back(hist[l].percentile(percentile));
  }
  return out;
}

std::vector<double> max_activations_in(const WeightSet& w, const Dataset& data, std::size_t first, std::size_t count) {
  // Sized up front: a shard may hold no image at all.
  std::vector<float> maxima(spiking_weight_index(w).size(), 0.0f);
  for_each_activation_in(
      w, data, first, count,
      [&](std::size_t l, const Matrix& a) {
        float m = maxima.at(l);
        for (float v : a.data) m = std::max(m, v);
        maxima[l] = m;
      },
      kActivationBatch);
  return {maxima.begin(), maxima.end()};
}

std::vector<PercentileHistogram> activation_histograms_in(const WeightSet& w, const Dataset& data, std::size_t first,
                                                          std::size_t count) {
  std::vector<PercentileHistogram> hist(spiking_weight_index(w).size());
  for_each_activation_in(
      w, data, first, count, [&](std::size_t l, const Matrix& a) { hist.at(l).add(a.data.data(), a.data.size()); },
      kActivationBatch);
  return hist;
}

// ---- histogram ----

namespace {
constexpr int kShift = 23 - PercentileHistogram::kMantissaBits;  // drop the low mantissa bits
}

PercentileHistogram::PercentileHistogram() : bins_(kBins, 0) {}

void PercentileHistogram::add(float value) {
  if (value == 0.0f) return;
  if (!(value > 0.0f) || !std::isfinite(value))
    throw Error("percentile histogram: value {} is not a finite non-negative number", value);
  // For positive floats the bit pattern orders like the value, so its top bits
  // are a bin index that preserves order.
  ++bins_[std::bit_cast<std::uint32_t>(value) >> kShift];
  ++count_;
  max_ = std::max(max_, value);
}

void PercentileHistogram::add(const float* values, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) add(values[i]);
}

float PercentileHistogram::percentile(double p) const {
  if (!(p > 0.0 && p <= 100.0)) throw Error("percentile {} is not in (0, 100]", p);
  if (count_ == 0) throw Error("percentile of no values");
  const double exact = p / 100.0 * static_cast<double>(count_);
  auto k = static_cast<std::uint64_t>(std::ceil(exact - 1e-9 * std::max(1.0, exact)));
  k = std::clamp<std::uint64_t>(k, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBins; ++b) {
    seen += bins_[b];
    if (seen >= k) {
      const float upper = std::bit_cast<float>(static_cast<std::uint32_t>((b + 1) << kShift));
      return std::min(upper, max_);
    }
  }
  return max_;  // unreachable: the bins hold count_ values
}

void PercentileHistogram::merge(const PercentileHistogram& other) {
  for (std::size_t b = 0; b < kBins; ++b) bins_[b] += other.bins_[b];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

PercentileHistogram PercentileHistogram::from_bins(std::vector<std::uint64_t> bins, float max) {
  if (bins.size() != kBins) throw Error("percentile histogram: {} bins given, {} expected", bins.size(), kBins);
  PercentileHistogram h;
  h.bins_ = std::move(bins);
  for (std::uint64_t c : h.bins_) h.count_ += c;
  h.max_ = max;
  return h;
}

// ---- tool entry ----

void normalise(WeightSet& weights, const NormaliseOptions& options, const Dataset* train) {
  if (weights.normalisation.method != Normalisation::None)
    throw Error("the weights are already normalised ({}); start from the unnormalised set",
                to_string(weights.normalisation.method));
  NormalisationRecord record;
  record.method = options.method;
  switch (options.method) {
    case Normalisation::None: return;
    case Normalisation::Model: record.factors = normalise_model(weights, options.include_last.value_or(false)); break;
    case Normalisation::Data:
    case Normalisation::Robust: {
      if (!train) throw Error("{} normalisation needs the training set", to_string(options.method));
      record.samples = options.samples == 0 ? train->count : std::min(options.samples, train->count);
      const bool last = options.include_last.value_or(true);
      if (options.method == Normalisation::Data) {
        record.factors = normalise_data(weights, max_activations(weights, *train, options.samples), last);
      } else {
        record.percentile = options.percentile;
        record.factors =
            normalise_robust(weights, activation_percentiles(weights, *train, options.percentile, options.samples), last);
      }
      break;
    }
  }
  weights.normalisation = record;
}

void normalise_with(WeightSet& weights, const NormaliseOptions& options, std::size_t samples, const std::vector<double>& scales) {
  if (weights.normalisation.method != Normalisation::None)
    throw Error("the weights are already normalised ({}); start from the unnormalised set",
                to_string(weights.normalisation.method));
  if (options.method != Normalisation::Data && options.method != Normalisation::Robust)
    throw Error("normalise_with: {} normalisation takes no activation statistics", to_string(options.method));
  NormalisationRecord record;
  record.method = options.method;
  record.samples = samples;
  const bool last = options.include_last.value_or(true);
  if (options.method == Normalisation::Data) {
    record.factors = normalise_data(weights, scales, last);
  } else {
    record.percentile = options.percentile;
    record.factors = normalise_robust(weights, scales, last);
  }
  weights.normalisation = record;
}

}  // namespace snn::conversion
