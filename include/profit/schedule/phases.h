// The PROFIT phase list (profit.md §4-§5): what each phase quantizes, trains and freezes, the
// expansion of the compact schedule (a_bits / w_bits / w_profit ladders) into phases, and the
// per-epoch learning-rate multiplier (§5.3).
//
// A recipe either lists its phases explicitly (top-level `phases:`, one map per phase with the
// keys name, kind, epochs, warmup, act_bits, weight_bits, freeze_stage, lr_scale) or lets
// expand_schedule() build the paper's sequence from the `profit:` section:
//
//   [fp]  FP distillation, quantizers off              (fp_epochs, warmup; not with teacher none)
//   for A in a_bits:  a<A>.bn  a<A>.ft  a<A>.bn2                    (weights FP)
//   for W in w_bits:  w<W>.bn  { w<W>.sample w<W>.ft1..ftN  |  w<W>.ft }  w<W>.bn2
//                     (activations at the last A; the sampled form when W is in w_profit)
//
// BN-stabilize phases ("bn") train only BN affine parameters, biases and quantizer parameters;
// "ft" phases train everything except the PROFIT-frozen conv weights of their freeze_stage;
// "sample" phases train everything at a constant rate while AIWQ is measured.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "profit/train/config.h"

namespace profit::schedule {

enum class PhaseKind { kFp, kBn, kFinetune, kSample };
const char* phase_kind_name(PhaseKind k);
PhaseKind parse_phase_kind(const std::string& s);  // fp | bn | ft | sample

struct Phase {
  std::string name;
  PhaseKind kind = PhaseKind::kFinetune;
  int64_t epochs = 1;
  int64_t warmup = 0;   // epochs of linear warmup (ignored by sample phases)
  int act_bits = 0;     // 0: activations in full precision
  int weight_bits = 0;  // 0: weights in full precision
  /// ft phases of PROFIT: stage j freezes the first floor(j * L / n_profit) layers of the
  /// ranking (§3.5); -1: nothing frozen.
  int freeze_stage = -1;
  double lr_scale = 1.0;  // multiplies train.lr for this phase
};

/// The compact schedule of §5.1 as a phase list.
std::vector<Phase> expand_schedule(const train::ProfitSettings& s);

/// Reads the top-level `phases:` list of a YAML recipe; empty when the recipe has none. Unknown
/// keys and bad values are errors naming the file, the phase index and the key.
std::vector<Phase> load_phases(const std::string& path);

/// Consistency of a phase list: names unique, bits in [2, 8] or 0, ft freeze stages below
/// n_profit and preceded by a sample phase, warmup < epochs. Throws naming the phase.
void validate_phases(const std::vector<Phase>& phases, int64_t n_profit);

nlohmann::json to_json(const std::vector<Phase>& phases);
std::vector<Phase> phases_from_json(const nlohmann::json& j);

/// Multiplier of the base learning rate in epoch `epoch` (0-based) of `phase` (§5.3):
///   sample: 1;  e < w: 0.1 + 0.9 e / w;  else 1e-3 + (1 - 1e-3)(1 + cos(pi (e - w)/(E - w)))/2.
double lr_multiplier(const Phase& phase, int64_t epoch);

/// The same curve at a fractional epoch t in [0, E): with profit.lr_update = step the pipeline
/// evaluates it before every step at t = epoch + batch / steps_per_epoch (beyond the spec, whose
/// scheduler steps once per epoch: with phases of one or two short epochs, the per-epoch values
/// 1.0 and 0.5 never anneal). At whole t it equals lr_multiplier(phase, t).
double lr_multiplier_at(const Phase& phase, double t);

/// One line per phase ("3  a8.ft  ft  15 ep  warmup 3  A8 W-  ..."), for --dry-run and logs.
std::string describe(const std::vector<Phase>& phases);

}  // namespace profit::schedule
