// Training checkpoints: everything train() needs to continue after its last
// completed epoch and end bit-identical to a run that was never interrupted:
// the weights, Adam's moments and step count, and the epoch count. (The
// shuffles and dropout masks are counter-based functions of the seed, the
// epoch and the step, so no generator state needs saving.)
//
// One binary file, written atomically (write_file_atomically) after every
// epoch, so a crash leaves either the previous checkpoint or the new one:
//   "SNNCKPT1"  magic and format version
//   u64 fingerprint, u64 epochs_done, u64 step, f64 seconds
//   u64 reports, then per report: f64 loss, f64 train_accuracy, f64 seconds
//   u64 tensors, then per tensor: u64 rows, u64 cols
//   float32 data: per tensor its weights, then Adam's m, then Adam's v
//   u64 FNV-1a 64 of every byte before it
// All numbers little-endian (snnsim targets little-endian hosts only).
#pragma once

#include "snn/conversion/trainer.h"
#include "snn/network/dataset.h"
#include "snn/network/matrix.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace snn::conversion {

struct TrainCheckpoint {
  std::uint64_t fingerprint = 0;           ///< training_fingerprint() of the training that wrote it
  std::size_t epochs_done = 0;             ///< completed epochs
  std::uint64_t step = 0;                  ///< optimiser steps taken (Adam's t; dropout masks' step counter)
  double seconds = 0.0;                    ///< training wall time so far
  std::vector<EpochReport> epochs;         ///< one per completed epoch
  std::vector<Matrix> weights;             ///< the weight layers (Model::weights), input side first
  std::vector<std::vector<float>> adam_m;  ///< Adam's first moments, one per weight tensor, same sizes
  std::vector<std::vector<float>> adam_v;  ///< Adam's second moments
};

/// Writes `checkpoint` to `file` atomically. Throws snn::Error if it is
/// inconsistent (moment sizes differ from the weights') or cannot be written.
void save_checkpoint(const std::filesystem::path& file, const TrainCheckpoint& checkpoint);

/// Reads and validates a checkpoint (magic, sizes against the file's length,
/// checksum, consistency). Throws snn::Error naming the file and what is wrong.
TrainCheckpoint load_checkpoint(const std::filesystem::path& file);

/// A 64-bit hash of everything that shapes a training's trajectory: the
/// network spec (not the layer names), batch size, Adam settings, init range,
/// seed, the training samples used (their pixels and labels) and the OpenBLAS
/// thread count. Not the epoch count, so a checkpoint can be continued into a
/// longer training.
std::uint64_t training_fingerprint(const TrainConfig& config, const Dataset& train, int blas_threads);

}  // namespace snn::conversion
