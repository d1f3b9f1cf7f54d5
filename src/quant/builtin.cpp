// The explicit table of built-in quantizers (style: no static self-registration).
#include "profit/quant/dorefa.h"
#include "profit/quant/dsq.h"
#include "profit/quant/duq.h"
#include "profit/quant/fat.h"
#include "profit/quant/lsq.h"
#include "profit/quant/minmax.h"
#include "profit/quant/pact.h"
#include "profit/quant/qil.h"
#include "profit/quant/sawb.h"

namespace profit::quant {

namespace {
template <class Impl>
QuantizerFactory plain() {
  return [](const QuantSpec& s) { return std::make_shared<Impl>(s); };
}
}  // namespace

void register_builtin_quantizers() {
  register_quantizer("duq", plain<DuqImpl>());           // PROFIT: DuQ (profit.md §1)
  register_quantizer("lsq", plain<LsqImpl>());           // LSQ (baselines.md §3)
  register_quantizer("pact", plain<PactImpl>());         // PACT activations (baselines.md §1)
  register_quantizer("sawb", plain<SawbImpl>());         // SAWB weights, PACT's partner (§2)
  register_quantizer("dorefa", plain<DorefaImpl>());     // DoReFa weights (§1.5 option)
  register_quantizer("qil", plain<QilImpl>());           // QIL (baselines.md §4)
  register_quantizer("dsq", plain<DsqImpl>());           // DSQ (baselines.md §5)
  register_quantizer("fat", fat_factory(FatOptions{}));  // FAT thresholds (fat.md)
  // FAT with asymmetric thresholds at every site, for weights (fat.md §4.2, §10).
  register_quantizer("fat_asym", fat_factory(FatOptions().mode(FatMode::kAsymmetric)));
  register_quantizer("minmax", plain<MinMaxImpl>());  // min-max / EMA uniform affine
}

}  // namespace profit::quant
