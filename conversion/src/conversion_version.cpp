namespace snn::conversion {
const char* conversion_version() { return "0.1.0"; }
}  // namespace snn::conversion
