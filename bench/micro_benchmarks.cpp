// Google Benchmark micro-benchmarks of the hot paths, each on the shapes of
// the seed's network (784-1200-1200-10, an MNIST-like input at p = 2x):
// fan-out delivery, the threshold pass, input encoding, and the dense
// baseline's GEMM. They print times and rates; nothing here is a pass/fail test.
//   build/bench/micro_benchmarks [--benchmark_filter=Delivery]
#include "snn/engine/delivery.h"
#include "snn/engine/encoder.h"
#include "snn/engine/neuron.h"

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

namespace {

using namespace snn;
using namespace snn::engine;

constexpr std::size_t kInputs = 784, kHidden = 1200;

std::vector<FixedWeight> random_table(std::size_t rows, std::size_t cols) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<FixedWeight> w(-3000, 3000);
  std::vector<FixedWeight> t(rows * cols);
  for (auto& x : t) x = w(rng);
  return t;
}

// A synthetic digit: a blob of bright pixels, about as many non-zero pixels as MNIST's mean (~150).
std::vector<std::uint8_t> digit_like() {
  std::vector<std::uint8_t> x(kInputs, 0);
  std::mt19937 rng(2);
  for (int r = 6; r < 22; ++r)
    for (int c = 9; c < 19; ++c)
      if (rng() % 10 < 9) x[r * 28 + c] = static_cast<std::uint8_t>(rng() % 2 ? 255 : 40 + rng() % 200);
  return x;
}

// Delivery of N spikes of the input layer (a 784 x 1200 int32 table, 3.8 MB).
void BM_Delivery(benchmark::State& state) {
  const auto table = random_table(kInputs, kHidden);
  std::vector<Potential> acc(kHidden, 0);
  std::mt19937 rng(3);
  std::vector<NeuronId> ids(static_cast<std::size_t>(state.range(0)));
  for (auto& id : ids) id = static_cast<NeuronId>(rng() % kInputs);
  for (auto _ : state) {
    add_dense_rows(acc.data(), table.data(), kHidden, ids, 0, kHidden);
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  state.counters["adds/s"] =
      benchmark::Counter(static_cast<double>(ids.size() * kHidden), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Delivery)->Arg(1)->Arg(4)->Arg(20)->Arg(128);

// The threshold pass over one population of 1200 neurons (reset by subtraction, beta = 1).
void BM_ThresholdPass(benchmark::State& state) {
  FixedNeuronParams params;
  params.threshold = Potential{1} << 16;
  std::vector<Potential> v(kHidden, 0), current(kHidden);
  std::vector<Step> refractory(kHidden, 0);
  std::mt19937 rng(4);
  // Currents that make a few percent of the neurons fire per step, as in the seed's hidden layers.
  for (auto& c : current) c = static_cast<Potential>(rng() % 8000) - 2000;
  SpikeList spikes;
  spikes.reserve(kHidden);
  for (auto _ : state) {
    spikes.clear();
    benchmark::DoNotOptimize(update_neurons(params, v.data(), refractory.data(), current.data(), 0, kHidden, spikes));
  }
  state.counters["neurons/s"] = benchmark::Counter(static_cast<double>(kHidden), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ThresholdPass);

// Input encoding of one step: the Philox draws for the inputs with 0 < p < 1.
void BM_InputEncoding(benchmark::State& state) {
  const auto x = digit_like();
  PreparedInput input;
  prepare_input(x.data(), x.size(), 2.0, input);
  std::vector<NeuronId> spikes;
  Step t = 0;
  for (auto _ : state) {
    spikes.clear();
    random_input_spikes(input, 7, 0, t++, spikes);
    benchmark::DoNotOptimize(spikes.data());
  }
  state.counters["random inputs"] = static_cast<double>(input.random.size());
  state.counters["steps/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_InputEncoding);

// The dense baseline's product per step: batch x 784 spikes times 784 x 1200 weights.
void BM_Gemm(benchmark::State& state) {
  const auto m = static_cast<int>(state.range(0));
  std::vector<float> a(static_cast<std::size_t>(m) * kInputs), b(kInputs * kHidden), c(static_cast<std::size_t>(m) * kHidden);
  std::mt19937 rng(5);
  for (auto& x : a) x = static_cast<float>(rng() % 2);
  for (auto& x : b) x = static_cast<float>(static_cast<int>(rng() % 2001) - 1000);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, static_cast<int>(kHidden), static_cast<int>(kInputs), 1.0f,
                a.data(), static_cast<int>(kInputs), b.data(), static_cast<int>(kHidden), 0.0f, c.data(),
                static_cast<int>(kHidden));
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * m * kInputs * kHidden, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Gemm)->Arg(100)->Arg(2000)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
