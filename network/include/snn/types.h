// Named aliases for the quantities snnsim passes around (after Auryn's
// auryn_definitions.h and NEST's nest_types.h). Include this rather than using
// raw integer and float types for ids, times and weights.
#pragma once

#include <cstdint>

namespace snn {

/// Index of a neuron within its population, 0-based.
using NeuronId = std::uint32_t;
/// Index of a population within a network, 0-based; the input population is 0.
using PopulationId = std::uint32_t;
/// Index of a sample within a dataset split, 0-based.
using SampleId = std::uint32_t;
/// Simulated time, as a whole number of steps of length dt. Step 0 is the first step.
using Step = std::int32_t;
/// Synaptic weight in model units (the trained ANN's float weight, after normalisation).
using Weight = float;
/// Weight and membrane potential in the engine's fixed-point units: an integer
/// count of 2^-k of the target population's threshold (see engine docs).
using FixedWeight = std::int32_t;
using Potential = std::int32_t;
/// Count of synaptic operations (one spike delivered to one target) or of MACs.
using OpCount = std::uint64_t;

}  // namespace snn
