namespace snn::engine {
const char* engine_version() { return "0.1.0"; }
}  // namespace snn::engine
