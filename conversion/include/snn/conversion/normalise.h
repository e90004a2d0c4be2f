// Weight normalisation for converting a ReLU network into a spiking one, so
// that no neuron needs to fire faster than once per step (Diehl et al. 2015;
// robust variant: Rueckauer et al. 2017). Every function scales the weights in
// place and returns the divisors it applied: layer l's weights were divided by
// factors[l] (the list may be shorter than the layer count when the last
// layer is left alone). Weights are [out, in] (row = a neuron's incoming weights).
//
// Robust normalisation's percentile, with bounded memory: activations are
// counted in a histogram over the bit patterns of positive floats, one bin per
// (exponent, top 10 mantissa bits): 2^18 bins of 64-bit counts, 2 MiB per
// layer whatever the number of samples, in one pass, exact counts, independent
// of the order values arrive in. The p-th percentile of the n non-zero values
// is defined by nearest rank: the k-th smallest, k = ceil(p/100 * n) (clamped
// to [1, n]; a 1e-9 slack absorbs p's decimal rounding, so p = 99.9 of 1000
// values is rank 999). The histogram returns the upper edge of the bin holding
// rank k, capped at the exact maximum: for the true k-th value x (a normal
// float) the result r satisfies x <= r <= x * (1 + 2^-10), i.e. it overestimates
// by at most 0.098 % and never underestimates (a slightly larger lambda only
// lowers rates a little, it never saturates a neuron that the exact value would
// not). p = 100 gives the exact maximum. (numpy.percentile, which Rueckauer's
// toolbox calls, interpolates between ranks k-1 and k instead; the two differ
// by at most the gap between neighbouring order statistics.)
#pragma once

#include "snn/network/dataset.h"
#include "snn/network/matrix.h"
#include "snn/network/weights.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace snn::conversion {

/// Model-based (the seed's model_norm): for layers 0..L-2 (and L-1 if
/// include_last), factor = max over the layer's neurons of the sum of that
/// neuron's positive incoming weights; W /= factor. Throws snn::Error naming
/// the layer if a factor is 0 (no neuron has a positive weight).
std::vector<double> normalise_model(std::vector<Matrix>& layers, bool include_last = false);

/// Data-based (the seed's data_norm), given a_l = the largest ReLU activation
/// of each layer: lambda_l = max(largest weight of layer l, a_l) (the largest
/// weight counts from 0: a layer of negative weights gives 0), lambda_0 = 1
/// before the first layer; W_l *= lambda_{l-1} / lambda_l for layers 0..L-2
/// (and L-1 if include_last). Returns the applied factors lambda_l / lambda_{l-1}.
/// Throws snn::Error if some lambda_l is 0.
std::vector<double> normalise_data(std::vector<Matrix>& layers, const std::vector<double>& max_activations,
                                   bool include_last = true);

/// Robust (Rueckauer et al. 2017), given lambda_l = the p-th percentile of
/// layer l's non-zero activations (activation_percentiles): W_l *= lambda_{l-1}
/// / lambda_l with lambda_0 = 1, as data-based but without the weight term.
std::vector<double> normalise_robust(std::vector<Matrix>& layers, const std::vector<double>& percentiles,
                                     bool include_last = true);

/// Largest ReLU activation of each layer over the first `samples` images of
/// `data` (0: all), no dropout (for_each_activation).
std::vector<double> max_activations(const std::vector<Matrix>& layers, const Dataset& data, std::size_t samples = 0);

/// The p-th percentile (0 < p <= 100) of each layer's non-zero activations over
/// the first `samples` images (0: all), by PercentileHistogram. Throws
/// snn::Error naming the layer if it has no non-zero activation.
std::vector<double> activation_percentiles(const std::vector<Matrix>& layers, const Dataset& data, double percentile,
                                           std::size_t samples = 0);

/// Images per forward batch of the activation passes; a shard of the
/// training set that starts at a multiple of it computes exactly the batches
/// the whole-set pass does (for_each_activation_in).
inline constexpr std::size_t kActivationBatch = 500;

class PercentileHistogram;

/// Per-layer maxima over images [first, first + count) only: the maxima of
/// disjoint shards starting at multiples of kActivationBatch, merged by max,
/// equal max_activations over their union bit for bit.
std::vector<double> max_activations_in(const WeightSet& weights, const Dataset& data, std::size_t first, std::size_t count);

/// Per-layer histograms of the non-zero activations of images [first, first +
/// count), to be merged (PercentileHistogram::merge) across shards.
std::vector<PercentileHistogram> activation_histograms_in(const WeightSet& weights, const Dataset& data, std::size_t first,
                                                          std::size_t count);

/// The p-th percentile of each layer's merged histogram; throws snn::Error
/// naming the layer if it holds no value.
std::vector<double> percentiles_of(const std::vector<PercentileHistogram>& histograms, double percentile);

/// Bounded-memory percentile of positive floats (see the top of this header
/// for the binning and its error bound). Zeros are ignored; negative or NaN
/// values are an error.
class PercentileHistogram {
 public:
  static constexpr int kMantissaBits = 10;
  static constexpr std::size_t kBins = std::size_t{1} << (8 + kMantissaBits);  // 2^18: every positive finite float has a bin

  PercentileHistogram();
  void add(float value);
  void add(const float* values, std::size_t n);
  std::uint64_t count() const { return count_; }  ///< non-zero values added
  float max() const { return max_; }
  /// Nearest-rank p-th percentile, 0 < p <= 100; throws snn::Error when empty.
  float percentile(double p) const;
  /// Adds every value `other` counted: the result is the histogram of both
  /// sets of values, exactly (counts add, maxima take the larger).
  void merge(const PercentileHistogram& other);
  /// The kBins counts, for sending a histogram elsewhere (MPI) and back
  /// through from_bins.
  const std::vector<std::uint64_t>& bins() const { return bins_; }
  /// A histogram of the given counts and exact maximum (count() is their sum);
  /// throws snn::Error unless there are kBins counts.
  static PercentileHistogram from_bins(std::vector<std::uint64_t> bins, float max);

 private:
  std::vector<std::uint64_t> bins_;
  std::uint64_t count_ = 0;
  float max_ = 0.0f;
};

// ---- any architecture (dense, conv, avgpool, flatten) ----
//
// The same three methods on a WeightSet, Diehl et al.'s way for ConvNets: the
// spiking layers are the dense, conv and avgpool layers in order (flatten adds
// none), and every function returns one factor per spiking layer (shorter by
// one when the last layer is left alone). A dense or conv layer's weights were
// divided by its factor. An avgpool layer is a spiking layer whose weights are
// 1/(kh*kw): its lambda is its input's (it passes its input's scale on, so the
// next layer's factor is lambda_next / lambda_input), its factor is 1 and its
// connection weight stays 1/(kh*kw) (pool_weight). Biases, if any, end as
// b_l / lambda_l (Rueckauer et al. 2017), lambda_l being layer l's overall
// scale (the product of the factors up to and including l); a last layer left
// unscaled keeps W and gets b / lambda_{l-1}, so it computes its original
// pre-activation divided by lambda_{l-1} (same argmax).

/// The connection weight of an avgpool layer given its recorded factor: 1/(kh*kw)/factor.
double pool_weight(const LayerSpec& pool, double factor = 1.0);

/// Model-based: for a dense or conv layer, factor = max over its output
/// neurons/channels of (sum of the positive weights of its row + its bias if
/// positive, the bias taken at the scale of the layers before): the largest
/// input a neuron can get when every input spikes at every step (for conv
/// with padding this over-estimates at the borders, as Diehl's code does).
std::vector<double> normalise_model(WeightSet& weights, bool include_last = false);
/// Data-based: lambda of a dense/conv layer = max(largest weight, a_l) as
/// the dense form; `max_activations` has one entry per spiking layer (the
/// avgpool entries are not used).
std::vector<double> normalise_data(WeightSet& weights, const std::vector<double>& max_activations, bool include_last = true);
/// Robust: lambda of a dense/conv layer = its activations' p-th percentile
/// (one entry per spiking layer; avgpool entries not used).
std::vector<double> normalise_robust(WeightSet& weights, const std::vector<double>& percentiles, bool include_last = true);
/// Largest activation of each spiking layer (for_each_activation on a WeightSet).
std::vector<double> max_activations(const WeightSet& weights, const Dataset& data, std::size_t samples = 0);
/// p-th percentile of each spiking layer's non-zero activations.
std::vector<double> activation_percentiles(const WeightSet& weights, const Dataset& data, double percentile,
                                           std::size_t samples = 0);

/// What to apply, for the tool: method, and when not None, whether the last
/// layer is scaled (default: no for model-based, yes for data and robust),
/// how many training images to use (0: all) and the percentile (robust).
struct NormaliseOptions {
  Normalisation method = Normalisation::None;
  std::optional<bool> include_last;
  std::size_t samples = 0;
  double percentile = 99.9;
};

/// Normalises `weights` (any architecture) in place by `options` and records
/// method, factors (one per spiking layer), samples and percentile in
/// weights.normalisation. `train` is needed for
/// data and robust (snn::Error otherwise). Throws if the set is already
/// normalised.
void normalise(WeightSet& weights, const NormaliseOptions& options, const Dataset* train);

/// The same for data and robust normalisation with the training-set pass
/// already done (by shards, say): `scales` are the per-layer maxima (data) or
/// percentiles (robust) over `samples` training images.
void normalise_with(WeightSet& weights, const NormaliseOptions& options, std::size_t samples, const std::vector<double>& scales);

}  // namespace snn::conversion
