// The explicit table of built-in quantizers (style: no static self-registration).
#include "profit/quant/duq.h"
#include "profit/quant/lsq.h"

namespace profit::quant {

void register_builtin_quantizers() {
  register_quantizer("duq", [](const QuantSpec& s) { return std::make_shared<DuqImpl>(s); });
  register_quantizer("lsq", [](const QuantSpec& s) { return std::make_shared<LsqImpl>(s); });
}

}  // namespace profit::quant
