#include "snn/tool/row_add_bound.h"

#include "snn/engine/delivery.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>

namespace snn::tool {

namespace {

template <typename T>
double run_once(const engine::TableVector<T>& matrix, std::size_t rows, std::size_t width, int threads, double seconds) {
  std::vector<double> rates(static_cast<std::size_t>(threads));
  auto worker = [&](int id) {
    std::mt19937 rng(static_cast<unsigned>(id) * 7919u + 1u);
    std::vector<NeuronId> order(4096);
    for (auto& r : order) r = static_cast<NeuronId>(rng() % rows);
    std::vector<std::int32_t> acc(width, 0);
    std::size_t done = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    do {
      engine::add_dense_rows(acc.data(), matrix.data(), width, order, 0, width);
      done += order.size();
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (elapsed < seconds);
    // Keep the result observable so the adds cannot be optimised away.
    volatile std::int32_t sink = acc[width / 2];
    (void)sink;
    rates[static_cast<std::size_t>(id)] = static_cast<double>(done) * static_cast<double>(width) / elapsed;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();
  double total = 0;
  for (double r : rates) total += r;
  return total;
}

template <typename T>
std::vector<RowAddBound> measure(std::size_t width, int threads, double seconds, int repeats) {
  struct Level {
    const char* name;
    std::size_t bytes;
  };
  // L2 half a megabyte, L3 the size of the seed's first layer, DRAM well past any cache.
  const Level levels[] = {{"L2", std::size_t{512} << 10}, {"L3", std::size_t{784} * 1200 * 4}, {"DRAM", std::size_t{96} << 20}};
  std::vector<RowAddBound> out;
  for (const auto& level : levels) {
    const std::size_t rows = std::max<std::size_t>(1, level.bytes / (width * sizeof(std::int32_t)));
    engine::TableVector<T> matrix(rows * width);  // aligned as the engine's tables
    std::mt19937 rng(42);
    for (auto& v : matrix) v = static_cast<T>(static_cast<int>(rng() % 201) - 100);
    std::vector<double> samples;
    for (int r = 0; r < repeats; ++r) samples.push_back(run_once(matrix, rows, width, threads, seconds));
    std::sort(samples.begin(), samples.end());
    out.push_back({level.name, rows, width, static_cast<double>(rows * width * sizeof(T)), samples[samples.size() / 2], threads,
                   static_cast<int>(8 * sizeof(T))});
  }
  return out;
}

}  // namespace

std::vector<RowAddBound> measure_row_add_bound(std::size_t width, int threads, double seconds, int repeats, int element_bits) {
  if (element_bits == 8) return measure<std::int8_t>(width, threads, seconds, repeats);
  if (element_bits == 16) return measure<std::int16_t>(width, threads, seconds, repeats);
  return measure<std::int32_t>(width, threads, seconds, repeats);
}

}  // namespace snn::tool
