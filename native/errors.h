// Errors raised by the C++ core. Each carries a stable code that the N-API layer puts in front of the message
// ("[ERR_HVAE_SHAPE] ..."), and that the TypeScript layer turns into HVAEError.code.
#pragma once

#include <stdexcept>
#include <string>

namespace hvae {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

[[noreturn]] inline void fail(const char* code, const std::string& message) { throw Error(code, message); }

inline void check(bool ok, const char* code, const std::string& message) {
  if (!ok) fail(code, message);
}

}  // namespace hvae
