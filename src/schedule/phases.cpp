#include "profit/schedule/phases.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "profit/io/recipe.h"

namespace profit::schedule {

const char* phase_kind_name(PhaseKind k) {
  switch (k) {
    case PhaseKind::kFp:
      return "fp";
    case PhaseKind::kBn:
      return "bn";
    case PhaseKind::kFinetune:
      return "ft";
    case PhaseKind::kSample:
      return "sample";
  }
  return "?";
}

PhaseKind parse_phase_kind(const std::string& s) {
  for (auto k : {PhaseKind::kFp, PhaseKind::kBn, PhaseKind::kFinetune, PhaseKind::kSample})
    if (s == phase_kind_name(k)) return k;
  TORCH_CHECK(false, "unknown phase kind '", s, "' (fp | bn | ft | sample)");
  return PhaseKind::kFp;
}

std::vector<Phase> expand_schedule(const train::ProfitSettings& s) {
  const auto a_bits = train::parse_int_list(s.a_bits, "profit.a_bits");
  const auto w_bits = train::parse_int_list(s.w_bits, "profit.w_bits");
  const auto w_profit = train::parse_int_list(s.w_profit, "profit.w_profit");
  std::vector<Phase> out;
  auto add = [&](std::string name, PhaseKind kind, int64_t epochs, int64_t warmup, int a, int w,
                 int stage = -1) {
    if (epochs <= 0) return;
    Phase p;
    p.name = std::move(name);
    p.kind = kind;
    p.epochs = epochs;
    p.warmup = std::min(warmup, epochs - 1);
    p.act_bits = a;
    p.weight_bits = w;
    p.freeze_stage = stage;
    out.push_back(p);
  };
  // §5.1.1: the FP phase distils from the teacher, so without one there is none.
  add("fp", PhaseKind::kFp, s.teacher == "none" ? 0 : s.fp_epochs, s.warmup, 0, 0);
  const int64_t bn = s.stabilize ? s.bn_epochs : 0;
  int a_last = 0;
  for (auto a64 : a_bits) {
    const int a = static_cast<int>(a64);
    const std::string tag = "a" + std::to_string(a);
    add(tag + ".bn", PhaseKind::kBn, bn, 0, a, 0);
    add(tag + ".ft", PhaseKind::kFinetune, s.ft_epochs, s.warmup, a, 0);
    add(tag + ".bn2", PhaseKind::kBn, bn, 0, a, 0);
    a_last = a;
  }
  for (auto w64 : w_bits) {
    const int w = static_cast<int>(w64);
    const std::string tag = "w" + std::to_string(w);
    add(tag + ".bn", PhaseKind::kBn, bn, 0, a_last, w);
    if (std::find(w_profit.begin(), w_profit.end(), w64) != w_profit.end()) {
      add(tag + ".sample", PhaseKind::kSample, s.sample_epochs, 0, a_last, w);
      for (int j = 0; j < s.n_profit; ++j)
        add(tag + ".ft" + std::to_string(j + 1), PhaseKind::kFinetune, s.ft_epochs, s.warmup,
            a_last, w, j);
    } else {
      add(tag + ".ft", PhaseKind::kFinetune, s.ft_epochs, s.warmup, a_last, w);
    }
    add(tag + ".bn2", PhaseKind::kBn, bn, 0, a_last, w);
  }
  return out;
}

std::vector<Phase> load_phases(const std::string& path) {
  TORCH_CHECK(std::filesystem::exists(path), path, ": recipe not found");
  const YAML::Node root = io::load_recipe(path);
  std::vector<Phase> out;
  if (!root.IsMap() || !root["phases"]) return out;
  const auto list = root["phases"];
  TORCH_CHECK(list.IsSequence(), path, ": 'phases' must be a list of maps");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = path + ": phases[" + std::to_string(i) + "]";
    TORCH_CHECK(list[i].IsMap(), where, " must be a map");
    Phase p;
    p.name = "phase" + std::to_string(i);
    bool has_kind = false;
    for (const auto& kv : list[i]) {
      const auto key = kv.first.as<std::string>();
      const auto& v = kv.second;
      if (key == "name") {
        p.name = io::yaml_as<std::string>(v, where, key);
      } else if (key == "kind") {
        // yaml_as names `where` itself; parse_phase_kind's error does not.
        const auto kind = io::yaml_as<std::string>(v, where, key);
        try {
          p.kind = parse_phase_kind(kind);
        } catch (const c10::Error& e) {
          TORCH_CHECK(false, where, ": ", e.what_without_backtrace());
        }
        has_kind = true;
      } else if (key == "epochs") {
        p.epochs = io::yaml_as<int64_t>(v, where, key);
      } else if (key == "warmup") {
        p.warmup = io::yaml_as<int64_t>(v, where, key);
      } else if (key == "act_bits") {
        p.act_bits = io::yaml_as<int>(v, where, key);
      } else if (key == "weight_bits") {
        p.weight_bits = io::yaml_as<int>(v, where, key);
      } else if (key == "freeze_stage") {
        p.freeze_stage = io::yaml_as<int>(v, where, key);
      } else if (key == "lr_scale") {
        p.lr_scale = io::yaml_as<double>(v, where, key);
      } else {
        TORCH_CHECK(false, where, ": unknown key '", key,
                    "' (name, kind, epochs, warmup, act_bits, weight_bits, freeze_stage, "
                    "lr_scale)");
      }
    }
    TORCH_CHECK(has_kind, where, ": 'kind' is required (fp | bn | ft | sample)");
    out.push_back(p);
  }
  return out;
}

void validate_phases(const std::vector<Phase>& phases, int64_t n_profit) {
  TORCH_CHECK(!phases.empty(), "the schedule has no phase");
  std::set<std::string> names;
  bool sampled = false;
  for (const auto& p : phases) {
    const std::string where = "phase '" + p.name + "'";
    TORCH_CHECK(names.insert(p.name).second, where, ": duplicate phase name");
    TORCH_CHECK(p.epochs >= 1, where, ": epochs must be >= 1, got ", p.epochs);
    TORCH_CHECK(p.warmup >= 0 && p.warmup < p.epochs, where,
                ": warmup must be in [0, epochs), got ", p.warmup);
    for (int b : {p.act_bits, p.weight_bits})
      TORCH_CHECK(b == 0 || (b >= 2 && b <= 8), where, ": bit width ", b,
                  " out of range (0 = FP, or 2..8)");
    TORCH_CHECK(p.lr_scale > 0.0, where, ": lr_scale must be > 0, got ", p.lr_scale);
    if (p.kind == PhaseKind::kFp)
      TORCH_CHECK(p.act_bits == 0 && p.weight_bits == 0, where,
                  ": an fp phase cannot set act_bits/weight_bits");
    if (p.kind == PhaseKind::kSample) {
      TORCH_CHECK(p.weight_bits > 0, where, ": AIWQ sampling needs quantized weights");
      sampled = true;
    }
    if (p.freeze_stage >= 0) {
      TORCH_CHECK(p.kind == PhaseKind::kFinetune, where, ": freeze_stage is for ft phases");
      TORCH_CHECK(p.freeze_stage < n_profit, where, ": freeze_stage ", p.freeze_stage,
                  " must be < profit.n_profit = ", n_profit);
      TORCH_CHECK(sampled, where, ": freeze_stage needs an earlier sample phase (AIWQ ranking)");
    }
  }
}

nlohmann::json to_json(const std::vector<Phase>& phases) {
  auto j = nlohmann::json::array();
  for (const auto& p : phases)
    j.push_back({{"name", p.name},
                 {"kind", phase_kind_name(p.kind)},
                 {"epochs", p.epochs},
                 {"warmup", p.warmup},
                 {"act_bits", p.act_bits},
                 {"weight_bits", p.weight_bits},
                 {"freeze_stage", p.freeze_stage},
                 {"lr_scale", p.lr_scale}});
  return j;
}

std::vector<Phase> phases_from_json(const nlohmann::json& j) {
  std::vector<Phase> out;
  for (const auto& e : j) {
    Phase p;
    p.name = e.at("name").get<std::string>();
    p.kind = parse_phase_kind(e.at("kind").get<std::string>());
    p.epochs = e.at("epochs").get<int64_t>();
    p.warmup = e.at("warmup").get<int64_t>();
    p.act_bits = e.at("act_bits").get<int>();
    p.weight_bits = e.at("weight_bits").get<int>();
    p.freeze_stage = e.at("freeze_stage").get<int>();
    p.lr_scale = e.at("lr_scale").get<double>();
    out.push_back(p);
  }
  return out;
}

double lr_multiplier(const Phase& phase, int64_t epoch) {
  return lr_multiplier_at(phase, static_cast<double>(epoch));
}

double lr_multiplier_at(const Phase& phase, double t) {
  if (phase.kind == PhaseKind::kSample) return 1.0;
  const auto w = static_cast<double>(phase.warmup);
  if (t < w) return 0.1 + 0.9 * t / w;
  const double span = static_cast<double>(phase.epochs - phase.warmup);
  return 1e-3 + (1.0 - 1e-3) * (1.0 + std::cos(M_PI * (t - w) / span)) / 2.0;
}

std::string describe(const std::vector<Phase>& phases) {
  std::ostringstream os;
  int64_t total = 0;
  auto bits = [](int b) { return b == 0 ? std::string("fp") : std::to_string(b); };
  for (size_t i = 0; i < phases.size(); ++i) {
    const auto& p = phases[i];
    char line[160];
    std::snprintf(
        line, sizeof line, "%3zu  %-12s %-6s %3ld ep  warmup %ld  A%-2s W%-2s%s\n", i + 1,
        p.name.c_str(), phase_kind_name(p.kind), static_cast<long>(p.epochs),
        static_cast<long>(p.warmup), bits(p.act_bits).c_str(), bits(p.weight_bits).c_str(),
        p.freeze_stage >= 0 ? ("  freeze stage " + std::to_string(p.freeze_stage)).c_str() : "");
    os << line;
    total += p.epochs;
  }
  os << "total: " << total << " epochs in " << phases.size() << " phases\n";
  return os.str();
}

}  // namespace profit::schedule
