#include "commands.h"

namespace profit::cli {

ConfigFlags::ConfigFlags(CLI::App& cmd, train::TrainConfig& cfg, bool with_config_file,
                         const std::string& method_section)
    : cmd_(cmd), cfg_(cfg) {
  if (method_section == "profit") extra_sections_ = {"policy", "phases"};
  if (with_config_file) {
    const std::string names = method_section == "profit" ? "-c,--config,--recipe" : "-c,--config";
    const std::string sections = method_section == "profit"
                                     ? "model, data, train, profit, policy, phases"
                                 : method_section.empty() ? "model, data, train"
                                                          : "model, data, train, " + method_section;
    cmd.add_option(names, config_path_,
                   "YAML recipe (sections " + sections + "); flags override it")
        ->check(CLI::ExistingFile);
  }
  train::visit_fields(cfg, [&](const train::FieldInfo& info, train::FieldRef ref) {
    const std::string section = info.section;
    if ((section == "fat" || section == "profit") && section != method_section) return;
    const std::string flag = std::string("--") + info.flag;
    std::visit(
        [&](auto* p) {
          using T = std::decay_t<decltype(*p)>;
          CLI::Option* opt;
          if constexpr (std::is_same_v<T, bool>) {
            // "--flag", "--flag true|false|1|0|on|off" and "--flag=false" all work.
            auto text = std::make_shared<std::string>();
            opt = cmd.add_option(flag, *text, info.help)
                      ->expected(0, 1)
                      ->option_text(std::string("[true|false] (default ") +
                                    (*p ? "true" : "false") + ")");
            explicit_.emplace_back(opt, [p, text, flag] {
              const std::string& v = *text;
              if (v.empty() || v == "true" || v == "1" || v == "on" || v == "yes")
                *p = true;
              else if (v == "false" || v == "0" || v == "off" || v == "no")
                *p = false;
              else
                TORCH_CHECK(false, flag, ": expected true or false, got '", v, "'");
            });
          } else {
            // Parse into a holder so that a YAML file applied later cannot hide an explicit flag.
            auto holder = std::make_shared<T>(*p);
            opt = cmd.add_option(flag, *holder, info.help)->capture_default_str();
            explicit_.emplace_back(opt, [p, holder] { *p = *holder; });
          }
        },
        ref);
  });
}

void ConfigFlags::finalize() {
  if (!config_path_.empty()) train::apply_yaml(cfg_, config_path_, extra_sections_);
  for (auto& [opt, apply] : explicit_)
    if (opt->count() > 0) apply();
}

}  // namespace profit::cli
