#include "snn/tool/report.h"

#include "snn/conversion/layers.h"
#include "snn/engine/run.h"
#include "snn/error.h"
#include "snn/network/atomic_file.h"
#include "snn/tool/mpi.h"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <utility>

namespace snn::tool {

namespace fs = std::filesystem;
using nlohmann::json;

double SnnReport::synops_per_sample() const {
  double s = 0;
  for (const auto& c : connections)
    if (!c.analog_input) s += c.synops_per_sample;
  return s;
}

double SnnReport::analog_input_macs_per_sample() const {
  double s = 0;
  for (const auto& c : connections)
    if (c.analog_input) s += c.synops_per_sample;
  return s;
}

double SnnReport::dense_macs_per_sample() const {
  double s = 0;
  for (const auto& c : connections) s += c.dense_macs_per_sample;
  return s;
}

Step SnnReport::steps_to_fraction(double fraction) const {
  const double target = fraction * accuracy();
  for (std::size_t i = 0; i < accuracy_curve.size(); ++i)
    if (accuracy_curve[i] >= target) return static_cast<Step>(i + 1);
  return steps;
}

bool SnnReport::above_chance() const {
  std::vector<std::size_t> count(classes(), 0);
  for (auto l : labels) ++count[l];
  const std::size_t most = count.empty() ? 0 : *std::max_element(count.begin(), count.end());
  return !labels.empty() && accuracy() * static_cast<double>(labels.size()) > static_cast<double>(most) + 0.5;
}

std::size_t SnnReport::classes() const {
  std::size_t k = connections.empty() ? 0 : connections.back().out;
  for (auto l : labels) k = std::max<std::size_t>(k, l + 1u);
  for (auto p : predictions) k = std::max<std::size_t>(k, p + 1u);
  return k;
}

std::optional<std::size_t> SnnReport::silent_samples() const {
  if (output_spikes.empty()) return std::nullopt;
  return static_cast<std::size_t>(std::count(output_spikes.begin(), output_spikes.end(), 0u));
}

std::vector<std::vector<std::size_t>> confusion_matrix(const SnnReport& s) {
  const std::size_t k = s.classes();
  std::vector<std::vector<std::size_t>> m(k, std::vector<std::size_t>(k, 0));
  for (std::size_t i = 0; i < std::min(s.labels.size(), s.predictions.size()); ++i) ++m[s.labels[i]][s.predictions[i]];
  return m;
}

std::vector<ClassReport> per_class(const SnnReport& s) {
  const std::size_t k = s.classes();
  std::vector<ClassReport> out(k);
  for (std::size_t c = 0; c < k; ++c) {
    out[c].label = c;
    if (!s.output_spikes.empty()) out[c].silent = 0;
  }
  for (std::size_t i = 0; i < std::min(s.labels.size(), s.predictions.size()); ++i) {
    ClassReport& c = out[s.labels[i]];
    ++c.samples;
    c.correct += s.predictions[i] == s.labels[i];
    if (c.silent && i < s.output_spikes.size() && s.output_spikes[i] == 0) ++*c.silent;
  }
  return out;
}

void record_output_spikes(SnnReport& report, const engine::RunResult& r) {
  report.output_spikes.assign(r.samples, 0);
  for (std::size_t i = 0; i < r.samples; ++i)
    for (std::size_t c = 0; c < r.classes; ++c) report.output_spikes[i] += r.count(i, c);
}

namespace {

json config_as_json(const std::string& toml_text) {
  if (toml_text.empty()) return json::object();
  std::ostringstream out;
  out << toml::json_formatter{toml::parse(toml_text)};
  return json::parse(out.str());
}

std::string csv_accuracy(const SnnReport& s) {
  std::string out = "step,time_ms,accuracy,cumulative_synops_per_sample\n";
  for (std::size_t i = 0; i < s.accuracy_curve.size(); ++i)
    out += fmt::format("{},{:g},{:.6f},{:.1f}\n", i + 1, static_cast<double>(i + 1) * s.dt_ms, s.accuracy_curve[i],
                       i < s.synops_curve.size() ? s.synops_curve[i] : 0.0);
  return out;
}

// label,samples,correct,accuracy,never_spiked,predicted_0..predicted_{k-1}:
// per-class accuracy and the confusion matrix's row (never_spiked empty when
// not recorded).
std::string csv_per_class(const SnnReport& s) {
  const auto matrix = confusion_matrix(s);
  std::string out = "label,samples,correct,accuracy,never_spiked";
  for (std::size_t p = 0; p < matrix.size(); ++p) out += fmt::format(",predicted_{}", p);
  out += "\n";
  for (const auto& c : per_class(s)) {
    out += fmt::format("{},{},{},{:.6f},{}", c.label, c.samples, c.correct, c.accuracy(),
                       c.silent ? fmt::format("{}", *c.silent) : "");
    for (auto n : matrix[c.label]) out += fmt::format(",{}", n);
    out += "\n";
  }
  return out;
}

std::string csv_populations(const SnnReport& s) {
  std::string out = "population,neurons,spikes_per_sample,rate_hz\n";
  for (const auto& p : s.populations)
    out += fmt::format("{},{},{:.3f},{:.4f}\n", p.name, p.neurons, p.spikes_per_sample, p.rate_hz);
  return out;
}

// A gnuplot single-quoted string: quotes inside are doubled, line breaks
// (which would end the command) become spaces.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "''";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out + "'";
}

// Runs gnuplot on `script`. Returns "" on success, else what gnuplot said
// (its last error line) or why it could not run.
std::string run_gnuplot(const std::string& script) {
  char err_path[] = "/tmp/snnsim-gnuplot-XXXXXX";
  const int fd = ::mkstemp(err_path);
  if (fd < 0) return "cannot create a temporary file for gnuplot's messages";
  ::close(fd);
  FILE* pipe = ::popen(fmt::format("gnuplot 2>{}", err_path).c_str(), "w");
  if (!pipe) {
    ::unlink(err_path);
    return "cannot run gnuplot";
  }
  std::fwrite(script.data(), 1, script.size(), pipe);
  const int status = ::pclose(pipe);
  std::ifstream err_file(err_path);
  std::string line, last_error;
  while (std::getline(err_file, line))
    if (line.find("rror") != std::string::npos || line.find("line ") != std::string::npos || last_error.empty())
      last_error = line;
  ::unlink(err_path);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return last_error.empty() ? "gnuplot failed" : last_error;
}

bool has_terminal(const std::string& name) {
  static std::map<std::string, bool> known;
  const auto it = known.find(name);
  if (it != known.end()) return it->second;
  return known[name] = run_gnuplot(fmt::format("set terminal {}\n", name)).empty();
}

// The terminal for `out`'s extension, `width` x `height` pixels (PDF: 1/100 in).
std::string terminal_for(const fs::path& out, int width, int height) {
  std::string ext = out.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string list = "('gnuplot -e \"set terminal\"' lists the terminals it has)";
  if (ext == ".png") {
    if (has_terminal("pngcairo")) return fmt::format("set terminal pngcairo size {},{} font 'sans,11'", width, height);
    if (has_terminal("png")) {
      static bool told = false;
      if (!std::exchange(told, true))
        fmt::print(stderr, "note: this gnuplot has no pngcairo terminal; PNGs are drawn with the plainer 'png' one\n");
      return fmt::format("set terminal png size {},{}", width, height);
    }
    throw Error("cannot draw '{}': this gnuplot has neither the pngcairo nor the png terminal {}; try .svg", out.string(), list);
  }
  if (ext == ".svg") {
    if (has_terminal("svg")) return fmt::format("set terminal svg size {},{} font 'sans,11' background '#ffffff'", width, height);
    throw Error("cannot draw '{}': this gnuplot has no svg terminal {}", out.string(), list);
  }
  if (ext == ".pdf") {
    if (has_terminal("pdfcairo"))
      return fmt::format("set terminal pdfcairo size {:.2f}in,{:.2f}in font 'sans,9'", width / 100.0, height / 100.0);
    throw Error("cannot draw '{}': this gnuplot has no pdfcairo terminal {}", out.string(), list);
  }
  throw Error("cannot draw '{}': the format follows the file's extension, which must be .png, .svg or .pdf", out.string());
}

// Draws `body` into `out`. gnuplot writes to a temporary that is renamed into
// place, so a failed plot never leaves a truncated file under the real name.
// Text is not "enhanced": an underscore in a config name stays an underscore.
void draw(const fs::path& out, int width, int height, const std::string& body) {
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("cannot write '{}': the directory '{}' does not exist", out.string(), dir.string());
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error("cannot write '{}': the directory '{}' is not writable", out.string(), dir.string());
  const std::string terminal = terminal_for(out, width, height);
  const fs::path tmp = dir / fmt::format(".{}.tmp", out.filename().string());
  const std::string script = fmt::format("{}\nset termoption noenhanced\nset output {}\nset grid\n{}\nset output\n", terminal,
                                         quoted(tmp.string()), body);
  const std::string error = run_gnuplot(script);
  if (!error.empty() || !fs::exists(tmp, ec)) {
    fs::remove(tmp, ec);
    throw Error("gnuplot failed to draw '{}': {}", out.string(), error.empty() ? "it wrote nothing" : error);
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("cannot write '{}': {}", out.string(), ec.message());
  }
}

std::string pct(double fraction) { return fmt::format("{:.2f} %", fraction * 100); }

// One run's accuracy curve for the accuracy figures.
struct Series {
  std::string name;
  std::vector<double> time_ms;   ///< simulated time after each step
  std::vector<double> synops;    ///< cumulative SynOps per sample after each step (may be empty)
  std::vector<double> accuracy;  ///< fraction after each step
  std::optional<double> ann;     ///< the ANN's accuracy, if known
};

// An x axis of the accuracy figures: which datablock column, how labelled.
struct Axis {
  int column;  ///< 1: time (ms), 2: SynOps per sample
  std::string label;
  std::string format;  ///< gnuplot tic format ("" = default)
};

// Inline data ($r0, $r1, ...): time_ms, SynOps, accuracy in %.
std::string datablocks(const std::vector<Series>& runs) {
  std::string out;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    out += fmt::format("$r{} << EOD\n", r);
    const auto& s = runs[r];
    for (std::size_t i = 0; i < s.accuracy.size(); ++i)
      out += fmt::format("{:g} {:g} {:.6f}\n", s.time_ms[i], i < s.synops.size() ? s.synops[i] : 0.0, s.accuracy[i] * 100);
    out += "EOD\n";
  }
  return out;
}

// The part of the plot command drawing the ANN accuracies: one black dashed
// line if all runs share one ANN (the usual case: same cached ANN), else one
// dashed line per run in the run's colour.
std::string ann_lines(const std::vector<Series>& runs) {
  std::vector<double> distinct;
  for (const auto& s : runs)
    if (s.ann && std::none_of(distinct.begin(), distinct.end(), [&](double a) { return std::abs(a - *s.ann) < 1e-12; }))
      distinct.push_back(*s.ann);
  std::string out;
  if (distinct.size() == 1)
    return fmt::format(", {:.6f} with lines lc rgb 'black' dt 2 lw 1.5 title {}", distinct[0] * 100,
                       quoted(fmt::format("ANN: {}", pct(distinct[0]))));
  for (std::size_t r = 0; r < runs.size(); ++r)
    if (runs[r].ann)
      out += fmt::format(", {:.6f} with lines lc {} dt 2 lw 1.5 title {}", *runs[r].ann * 100, r + 1,
                         quoted(fmt::format("ANN of {}: {}", runs[r].name, pct(*runs[r].ann))));
  return out;
}

// The zoom of an accuracy figure: x from the first point within 2 points of
// a run's final accuracy to the end; y over what is drawn there (ANN lines
// included), padded and rounded to half points, at least 1 point high.
struct Zoom {
  double x_lo, x_hi, y_lo, y_hi;
};
Zoom zoom_of(const std::vector<Series>& runs, int column) {
  const auto x_of = [&](const Series& s, std::size_t i) { return column == 1 ? s.time_ms[i] : s.synops[i]; };
  Zoom z{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), 100, 0};
  for (const auto& s : runs) {
    if (s.accuracy.empty()) continue;
    std::size_t i = 0;
    while (s.accuracy[i] < s.accuracy.back() - 0.02) ++i;
    z.x_lo = std::min(z.x_lo, x_of(s, i));
    z.x_hi = std::max(z.x_hi, x_of(s, s.accuracy.size() - 1));
  }
  for (const auto& s : runs) {
    for (std::size_t i = 0; i < s.accuracy.size(); ++i)
      if (x_of(s, i) >= z.x_lo) z.y_lo = std::min(z.y_lo, s.accuracy[i] * 100), z.y_hi = std::max(z.y_hi, s.accuracy[i] * 100);
    if (s.ann) z.y_lo = std::min(z.y_lo, *s.ann * 100), z.y_hi = std::max(z.y_hi, *s.ann * 100);
  }
  z.y_lo = std::max(0.0, std::floor((z.y_lo - 0.25) * 2) / 2);
  z.y_hi = std::min(100.0, std::ceil((z.y_hi + 0.25) * 2) / 2);
  if (z.y_hi - z.y_lo < 1) z.y_lo = std::max(0.0, z.y_hi - 1);
  if (!(z.x_lo < z.x_hi)) z.x_lo = z.x_hi * 0.9;  // a one-step run
  return z;
}

// One column of an accuracy figure at horizontal `origin`, `width` (screen
// fractions): above, the whole run on a logarithmic x axis (the rise, which a
// linear axis squeezes into its first tenth); below, the end of the run on a
// linear one, where 94 - 97 % is readable. `extra` is added to the upper plot.
std::string accuracy_column(const std::vector<Series>& runs, const Axis& axis, double origin, double width,
                            const std::string& extra = "") {
  std::string lines;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const auto& s = runs[r];
    lines += fmt::format("{}$r{} using {}:3 with lines lw 2 lc {} title {}", lines.empty() ? "" : ", ", r, axis.column, r + 1,
                         quoted(fmt::format("{}: {} final", s.name, pct(s.accuracy.empty() ? 0.0 : s.accuracy.back()))));
  }
  lines += ann_lines(runs);
  const Zoom z = zoom_of(runs, axis.column);
  std::string out = fmt::format(
      "set origin {},0.36\nset size {},0.58\nset logscale x\nset xrange [*:*]\nset autoscale xfix\nset yrange [0:100]\nset "
      "xlabel {} offset 0,0.5\n"
      "set ylabel 'accuracy (%)'\nset format x {}\nset key bottom right opaque box\nset title 'whole run (log scale)'\n"
      "plot {}{}\n",
      origin, width, quoted(axis.label), quoted(axis.format.empty() ? "% h" : axis.format), lines, extra);
  out += fmt::format(
      "set origin {},0\nset size {},0.36\nunset logscale x\nset xrange [{:g}:{:g}]\nset yrange [{:g}:{:g}]\nunset key\n"
      "set title 'zoom on the end of the run'\nplot {}\n",
      origin, width, z.x_lo, z.x_hi, z.y_lo, z.y_hi, lines);
  return out;
}

std::string accuracy_figure(const std::vector<Series>& runs, const std::vector<Axis>& axes, const std::string& title,
                            const std::string& extra = "") {
  std::string out = datablocks(runs);
  out += fmt::format("set multiplot title {}\nset lmargin 10\n", quoted(title));
  for (std::size_t a = 0; a < axes.size(); ++a)
    out += accuracy_column(runs, axes[a], static_cast<double>(a) / static_cast<double>(axes.size()),
                           1.0 / static_cast<double>(axes.size()), axes[a].column == 2 ? extra : "");
  return out + "unset multiplot\n";
}

const Axis kTimeAxis{1, "simulated time (ms)", ""};
const Axis kSynopsAxis{2, "cumulative SynOps per sample", "%.0s%c"};

Series series_of(const RunReport& r) {
  Series s;
  s.name = "SNN";
  s.accuracy = r.snn.accuracy_curve;
  s.synops = r.snn.synops_curve;
  s.ann = r.ann_accuracy;
  for (std::size_t i = 0; i < s.accuracy.size(); ++i) s.time_ms.push_back(static_cast<double>(i + 1) * r.snn.dt_ms);
  return s;
}

// The confusion matrix as a heat map of each row's fractions, counts written
// in the cells; the per-class accuracy labels the rows.
std::string confusion_figure(const SnnReport& s) {
  const auto matrix = confusion_matrix(s);
  const auto classes = per_class(s);
  const std::size_t k = matrix.size();
  std::string cells = "$cm << EOD\n", diag = "$diag << EOD\n", off = "$off << EOD\n", tics;
  for (std::size_t l = 0; l < k; ++l) {
    const double n = static_cast<double>(std::max<std::size_t>(1, classes[l].samples));
    for (std::size_t p = 0; p < k; ++p) {
      cells += fmt::format("{} {} {:.6f}\n", p, l, static_cast<double>(matrix[l][p]) / n);
      if (matrix[l][p] > 0 && k <= 20) (l == p ? diag : off) += fmt::format("{} {} {}\n", p, l, matrix[l][p]);
    }
    tics += fmt::format("{}{} {}", l ? ", " : "", quoted(fmt::format("{}  {:.1f} %%", l, classes[l].accuracy() * 100)), l);
  }
  const auto silent = s.silent_samples();
  const std::string title =
      fmt::format("Confusion matrix after {} steps: {} of {} samples right ({}){}", s.steps,
                  std::accumulate(classes.begin(), classes.end(), std::size_t{0},
                                  [](std::size_t a, const ClassReport& c) { return a + c.correct; }),
                  s.samples, pct(s.accuracy()), silent ? fmt::format(", {} never spiked at the output", *silent) : "");
  return cells + "EOD\n" + diag + "EOD\n" + off + "EOD\n" +
         fmt::format(
             "set title {}\nunset grid\nunset key\nset xrange [-0.5:{}]\nset yrange [{}:-0.5]\n"
             "set xtics 1 scale 0\nset ytics ({}) scale 0\nset xlabel 'predicted class'\n"
             "set ylabel 'label (per-class accuracy)'\nset cbrange [0:1]\nset cblabel 'fraction of the label''s samples'\n"
             "set palette defined (0 '#ffffff', 0.02 '#fee6ce', 0.1 '#fdae6b', 0.5 '#e6550d', 1 '#7f2704')\n"
             "plot $cm using 1:2:3 with image, $diag using 1:2:3 with labels tc rgb 'white', "
             "$off using 1:2:3 with labels tc rgb 'black'\n",
             quoted(title), k - 0.5, k - 0.5, tics);
}

void draw_report_plots(const RunReport& r, const fs::path& dir, std::vector<fs::path>& written) {
  const SnnReport& s = r.snn;
  const std::vector<Series> runs{series_of(r)};
  const fs::path acc = dir / "accuracy_vs_time.png";
  draw(acc, 900, 760,
       accuracy_figure(runs, {kTimeAxis},
                       fmt::format("Accuracy against simulated time ({} samples, steps of {:g} ms)", s.samples, s.dt_ms)));
  written.push_back(acc);
  if (s.synops_curve.size() == s.accuracy_curve.size()) {
    // The ANN's cost for comparison: one dense pass, in x out MACs per connection.
    const double ann_macs = s.steps > 0 ? s.dense_macs_per_sample() / s.steps : 0.0;
    const std::string extra =
        ann_macs > 0
            ? fmt::format(", $annmacs using 1:2 with lines lc rgb '#555555' dt 3 title {}",
                          quoted(fmt::format("one ANN pass: {} MACs", ann_macs >= 1e6 ? fmt::format("{:.3g} M", ann_macs / 1e6)
                                                                                      : fmt::format("{:.3g} k", ann_macs / 1e3))))
            : "";
    const fs::path syn_acc = dir / "accuracy_vs_synops.png";
    draw(syn_acc, 900, 760,
         fmt::format("$annmacs << EOD\n{0:g} 0\n{0:g} 100\nEOD\n", ann_macs) +
             accuracy_figure(runs, {kSynopsAxis}, fmt::format("Accuracy against SynOps spent ({} samples)", s.samples), extra));
    written.push_back(syn_acc);
  }
  std::string data = "$d << EOD\n";
  for (std::size_t i = 0; i < s.synops_curve.size(); ++i) data += fmt::format("{} {:g}\n", i + 1, s.synops_curve[i]);
  const fs::path syn = dir / "synops_vs_time.png";
  draw(syn, 900, 560,
       data + fmt::format("EOD\nset title 'Cumulative SynOps per sample (log scale)'\nset key top left\n"
                          "set xlabel 'simulated time (steps of {:g} ms)'\nset ylabel 'SynOps per sample'\nset logscale y\n"
                          "set format y '%.0s%c'\nplot $d using 1:2 with lines lw 2 title 'event-driven SynOps', "
                          "$d using 1:($1*{:g}) with lines dt 2 title 'dense time-stepped MACs'\n",
                          s.dt_ms, s.steps > 0 ? s.dense_macs_per_sample() / s.steps : 0.0));
  written.push_back(syn);
  data = "$p << EOD\n";
  for (const auto& p : s.populations) data += fmt::format("\"{}\" {:g}\n", p.name, p.rate_hz);
  const fs::path rates = dir / "firing_rates.png";
  draw(rates, 900, 560,
       data +
           "EOD\nset title 'Mean firing rate per population'\nset style fill solid 0.6\nset boxwidth 0.6\n"
           "set ylabel 'rate (Hz)'\nset yrange [0:*]\nunset key\nplot $p using 0:2:xtic(1) with boxes\n");
  written.push_back(rates);
  if (!s.labels.empty() && s.labels.size() == s.predictions.size()) {
    const fs::path cm = dir / "confusion_matrix.png";
    draw(cm, 800, 720, confusion_figure(s));
    written.push_back(cm);
  }
}

}  // namespace

bool have_gnuplot() { return std::system("gnuplot --version >/dev/null 2>&1") == 0; }

std::string results_json(const RunReport& r) {
  const SnnReport& s = r.snn;
  json j;
  j["schema"] = "snnsim-results/1";
  j["command"] = r.command;
  j["dataset"] = {{"name", r.dataset}, {"train_samples", r.train_samples}, {"test_samples", r.test_samples}};
  j["ann"] = {{"accuracy", r.ann_accuracy ? json(*r.ann_accuracy) : json(nullptr)}};
  const auto machine_json = [](const MachineRecord& m) {
    return json{{"cpu", m.cpu}, {"blas_core", m.blas_core}, {"blas_config", m.blas_config}, {"blas_coretype", m.blas_coretype}};
  };
  // "source" says where the weights came from; an imported model's file is "model" (it has no manifest).
  const bool onnx = r.weights_kind == "onnx";
  j["weights"] = {{"source", r.weights_kind.empty() ? json(nullptr) : json(r.weights_kind)},
                  {"manifest", onnx ? json(nullptr) : json(r.weights)},
                  {"model", onnx ? json(r.weights) : json(nullptr)},
                  {"cached", r.weights_cached},
                  {"training_machine", r.training_machine ? machine_json(*r.training_machine) : json(nullptr)}};
  // The machine that ran this command (its ANN evaluation and normalisation use OpenBLAS too).
  j["machine"] = machine_json(conversion::machine_record());
  j["normalisation"] = {{"method", r.normalisation}, {"factors", r.normalisation_factors}};
  json checkpoints = json::array();
  for (int cp : r.checkpoints)
    if (cp >= 1 && static_cast<std::size_t>(cp) <= s.accuracy_curve.size())
      checkpoints.push_back({{"step", cp}, {"time_ms", cp * s.dt_ms}, {"accuracy", s.accuracy_curve[cp - 1]}});
  json populations = json::array();
  for (const auto& p : s.populations)
    populations.push_back(
        {{"name", p.name}, {"neurons", p.neurons}, {"spikes_per_sample", p.spikes_per_sample}, {"rate_hz", p.rate_hz}});
  json connections = json::array();
  for (const auto& c : s.connections)
    connections.push_back({{"name", c.name},
                           {"kind", c.kind},
                           {"in", c.in},
                           {"out", c.out},
                           {"delay", c.delay},
                           {"synapses", c.synapses},
                           {"synops_per_sample", c.analog_input ? json(nullptr) : json(c.synops_per_sample)},
                           {"analog_input_macs_per_sample", c.analog_input ? json(c.synops_per_sample) : json(nullptr)},
                           {"dense_macs_per_sample", c.dense_macs_per_sample},
                           {"quantisation",
                            {{"fixed_point_bits", c.fixed_point_bits},
                             {"weight_bits", c.weight_bits},
                             {"max_relative_error", c.max_relative_error},
                             {"max_abs_error", c.max_abs_error},
                             {"zeroed", c.zeroed},
                             {"nonzero", c.nonzero}}}});
  json classes = json::array();
  for (const auto& c : per_class(s))
    classes.push_back({{"label", c.label},
                       {"samples", c.samples},
                       {"correct", c.correct},
                       {"accuracy", c.accuracy()},
                       {"never_spiked", c.silent ? json(*c.silent) : json(nullptr)}});
  const auto silent = s.silent_samples();
  const double synops = s.synops_per_sample();
  const bool has_analog = std::any_of(s.connections.begin(), s.connections.end(), [](const auto& c) { return c.analog_input; });
  const auto when_exit = [&](double v) { return s.early_exit ? json(v) : json(nullptr); };
  j["snn"] = {
      {"samples", s.samples},
      {"steps", s.steps},
      {"dt_ms", s.dt_ms},
      {"accuracy", s.accuracy()},
      {"steps_to_99pct_of_final", s.above_chance() ? json(s.steps_to_fraction(0.99)) : json(nullptr)},
      {"checkpoints", checkpoints},
      {"synops_per_sample", synops},
      {"analog_input_macs_per_sample", has_analog ? json(s.analog_input_macs_per_sample()) : json(nullptr)},
      {"dense_macs_per_sample", s.dense_macs_per_sample()},
      {"dense_macs_per_synop", synops > 0 ? json(s.dense_macs_per_sample() / synops) : json(nullptr)},
      {"engine_row_adds_per_sample", s.engine_row_adds_per_sample},
      {"bias_ops_per_sample", s.bias_ops_per_sample},
      {"fixed_point_bits", s.fixed_point_bits},
      {"early_exit",
       {{"enabled", s.early_exit},
        {"mode", !s.early_exit          ? "off"
                 : s.early_exit_stopped ? "stop"
                                        : "measure"},
        {"mean_exit_step", when_exit(s.mean_exit_step)},
        {"accuracy", when_exit(s.exit_accuracy)},
        {"synops_per_sample", when_exit(s.synops_at_exit_per_sample)}}},
      {"populations", populations},
      {"connections", connections},
      {"never_spiked", silent ? json(*silent) : json(nullptr)},
      {"per_class", classes},
      {"confusion_matrix", confusion_matrix(s)},
      {"accuracy_curve", s.accuracy_curve},
      {"synops_curve", s.synops_curve},
      {"predictions", s.predictions},
      {"labels", s.labels},
  };
  json warnings = r.warnings;
  for (const auto& w : s.quantisation_warnings) warnings.push_back(w);
  j["warnings"] = warnings;
  j["config"] = config_as_json(r.config_toml);
  // Everything that may differ between two runs of the same config lives here.
  json timings = json::object();
  for (const auto& [k, v] : r.timings) timings[k] = v;
  timings["threads"] = s.threads;
  timings["ranks"] = s.ranks;
  timings["table_bytes"] = s.table_bytes;
  timings["tables_shared_by"] = s.tables_shared_by;
  timings["simulation_seconds"] = s.seconds;
  j["timings"] = timings;
  return j.dump(1) + "\n";
}

std::vector<fs::path> write_report(const RunReport& r, const fs::path& dir, bool plots, bool quiet) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create output directory '{}': {}", dir.string(), ec.message());
  std::vector<fs::path> written;
  auto put = [&](const std::string& name, const std::string& content) {
    write_file_atomically(dir / name, content);
    written.push_back(dir / name);
  };
  put("accuracy_vs_time.csv", csv_accuracy(r.snn));
  put("populations.csv", csv_populations(r.snn));
  if (!r.config_toml.empty()) put("config.resolved.toml", r.config_toml);
  put("per_class.csv", csv_per_class(r.snn));
  if (plots && !r.snn.accuracy_curve.empty()) {
    if (!have_gnuplot()) {
      if (!quiet) fmt::print(stderr, "note: gnuplot not found, no plots drawn (apt-get install gnuplot-nox)\n");
    } else if (!has_terminal("pngcairo") && !has_terminal("png")) {
      if (!quiet) fmt::print(stderr, "note: this gnuplot has no PNG terminal (pngcairo or png), no plots drawn\n");
    } else {
      draw_report_plots(r, dir, written);
    }
  }
  // results.json last: its presence marks a complete output directory.
  put("results.json", results_json(r));
  return written;
}

std::string summary_table(const RunReport& r) {
  const SnnReport& s = r.snn;
  std::string out;
  auto row = [&](const std::string& k, const std::string& v) { out += fmt::format("  {:<34} {}\n", k, v); };
  out += fmt::format("snnsim {} on {} ({} test samples)\n", r.command, r.dataset, s.samples);
  if (r.weights_kind == "onnx") row("model", r.weights);
  if (r.ann_accuracy) row("ANN accuracy", pct(*r.ann_accuracy));
  row("normalisation", r.normalisation_factors.empty()
                           ? r.normalisation
                           : fmt::format("{} (factors {:.4g})", r.normalisation, fmt::join(r.normalisation_factors, ", ")));
  row("SNN accuracy", fmt::format("{} after {} steps ({:g} ms)", pct(s.accuracy()), s.steps, s.steps * s.dt_ms));
  for (int cp : r.checkpoints)
    if (cp >= 1 && static_cast<std::size_t>(cp) <= s.accuracy_curve.size())
      row(fmt::format("  at step {}", cp), pct(s.accuracy_curve[cp - 1]));
  row("steps to 99 % of final accuracy",
      s.above_chance() ? fmt::format("{}", s.steps_to_fraction(0.99)) : std::string("- (final accuracy at chance level)"));
  if (s.early_exit) {
    row("early exit: mean stopping step", fmt::format("{:.1f}", s.mean_exit_step));
    row("early exit: accuracy", pct(s.exit_accuracy));
    if (s.early_exit_stopped)  // the run's own figures are the exit's: nothing to compare with here
      row("early exit: SynOps/sample", fmt::format("{:.4g} M (samples stopped; early_exit = \"measure\" shows the full run's)",
                                                   s.synops_at_exit_per_sample / 1e6));
    else
      row("early exit: SynOps/sample",
          fmt::format("{:.4g} M ({:.0f} % saved)", s.synops_at_exit_per_sample / 1e6,
                      s.synops_per_sample() > 0 ? 100 * (1 - s.synops_at_exit_per_sample / s.synops_per_sample()) : 0.0));
  }
  if (const auto silent = s.silent_samples())
    row("samples with no output spike", fmt::format("{} of {} (predicted by tie-break only)", *silent, s.samples));
  {
    const auto classes = per_class(s);
    const auto worst = std::min_element(classes.begin(), classes.end(),
                                        [](const ClassReport& a, const ClassReport& b) { return a.accuracy() < b.accuracy(); });
    if (worst != classes.end() && worst->samples > 0)
      row("least accurate class",
          fmt::format("{}: {} ({} of {})", worst->label, pct(worst->accuracy()), worst->correct, worst->samples));
  }
  for (const auto& c : s.connections)
    row(fmt::format("{} {}", c.analog_input ? "analog MACs/sample" : "SynOps/sample", c.name),
        fmt::format("{:.4g} M ({}; dense {:.4g} M MACs)", c.synops_per_sample / 1e6, c.kind, c.dense_macs_per_sample / 1e6));
  for (const auto& c : s.connections)
    row(fmt::format("quantisation {}", c.name),
        fmt::format("{}-bit weights, unit theta/2^{}: max rel. error {:.2g} %, {} of {} weights rounded to 0", c.weight_bits,
                    c.fixed_point_bits, 100 * c.max_relative_error, c.zeroed, c.nonzero));
  const double synops = s.synops_per_sample();
  row("SynOps/sample total", fmt::format("{:.4g} M", synops / 1e6));
  row("dense MACs/sample", fmt::format("{:.4g} M", s.dense_macs_per_sample() / 1e6));
  if (s.bias_ops_per_sample > 0)
    row("bias additions/sample", fmt::format("{:.4g} M (not in SynOps)", s.bias_ops_per_sample / 1e6));
  if (synops > 0) row("dense MACs per SynOp", fmt::format("{:.1f}x", s.dense_macs_per_sample() / synops));
  row("engine row adds/sample", fmt::format("{:.4g} M SynOps' worth ({:.0f} % of SynOps)", s.engine_row_adds_per_sample / 1e6,
                                            synops > 0 ? 100 * s.engine_row_adds_per_sample / synops : 0.0));
  for (const auto& p : s.populations)
    row(fmt::format("spikes/sample {}", p.name), fmt::format("{:.1f} ({:.2f} Hz per neuron)", p.spikes_per_sample, p.rate_hz));
  for (const auto& [k, v] : r.timings) row(fmt::format("wall time {}", k), fmt::format("{:.2f} s", v));
  row("wall time simulation", fmt::format("{:.2f} s on {} thread{} ({:.0f} samples/s)", s.seconds, s.threads,
                                          s.threads == 1 ? "" : "s", s.seconds > 0 ? s.samples / s.seconds : 0.0));
  if (s.ranks > 1)
    row("MPI ranks", fmt::format("{} x {} thread{}; engine tables {:.1f} MB, {}", s.ranks, s.threads, s.threads == 1 ? "" : "s",
                                 static_cast<double>(s.table_bytes) / 1e6, mpi::table_sharing(s.tables_shared_by)));
  for (const auto& w : r.warnings) out += fmt::format("  warning: {}\n", w);
  for (const auto& w : s.quantisation_warnings) out += fmt::format("  warning: {}\n", w);
  return out;
}

namespace {

// One run of a results.json for the comparison plot; named after its directory.
Series series_of_file(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error("cannot read '{}'", file.string());
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) { throw Error("'{}' is not valid JSON: {}", file.string(), e.what()); }
  if (!j.is_object() || !j.contains("snn") || !j["snn"].is_object() || !j["snn"].contains("accuracy_curve"))
    throw Error("'{}' is not an snnsim results.json (no snn.accuracy_curve)", file.string());
  Series s;
  try {
    s.accuracy = j["snn"]["accuracy_curve"].get<std::vector<double>>();
    const double dt = j["snn"].value("dt_ms", 1.0);
    for (std::size_t i = 0; i < s.accuracy.size(); ++i) s.time_ms.push_back(static_cast<double>(i + 1) * dt);
    if (j["snn"].contains("synops_curve")) s.synops = j["snn"]["synops_curve"].get<std::vector<double>>();
    if (j.contains("ann") && j["ann"].is_object() && j["ann"].contains("accuracy") && !j["ann"]["accuracy"].is_null())
      s.ann = j["ann"]["accuracy"].get<double>();
  } catch (const json::exception& e) { throw Error("'{}' is not a valid snnsim results.json: {}", file.string(), e.what()); }
  if (s.accuracy.empty()) throw Error("'{}' holds an empty snn.accuracy_curve: nothing to plot", file.string());
  const std::string dir = file.parent_path().filename().string();
  s.name = dir.empty() ? file.string() : dir;
  return s;
}

}  // namespace

void plot_accuracy(const std::vector<fs::path>& results, const fs::path& out) {
  if (results.empty()) throw Error("snnsim plot: give at least one results.json");
  terminal_for(out, 1, 1);  // a wrong extension is reported before any file is read
  std::vector<Series> runs;
  bool all_synops = true;
  for (const auto& file : results) {
    runs.push_back(series_of_file(file));
    all_synops = all_synops && runs.back().synops.size() == runs.back().accuracy.size();
  }
  // Accuracy against time and, when every run has its SynOps curve, against SynOps beside it.
  std::vector<Axis> axes{kTimeAxis};
  if (all_synops) axes.push_back(kSynopsAxis);
  draw(out, all_synops ? 1500 : 900, 820,
       accuracy_figure(
           runs, axes,
           all_synops ? "Accuracy against simulated time (left) and SynOps spent (right)" : "Accuracy against simulated time"));
}

}  // namespace snn::tool
