"""The PROFIT table's derived rows in scripts/results_profit.py (written by write_results.py
profit): bit ladders, run names, the goal verdicts, the paired with/without-PROFIT comparison and
the quantizer comparison, and the FAT per-weight-factor row (run by ctest as
write_results_profit)."""
import json
import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
import results_profit as w  # noqa: E402
import write_results  # noqa: E402


def phase(act, weight, epochs=1):
    return {"act_bits": act, "weight_bits": weight, "epochs": epochs}


def run(name, seed, fp, final, arch="mobilenet_v2"):
    summary = {"config": {"train": {"seed": seed}, "model": {"arch": arch}},
               "fp": {"top1": fp}, "final": {"top1": final},
               "phases": [phase(0, 0, 2), phase(8, 0), phase(4, 0), phase(4, 8), phase(4, 4, 3)]}
    return (f"runs/{name}_s{seed}/summary.json", summary)


class WriteResultsProfit(unittest.TestCase):
    def test_ladders_list_each_width_once_in_order(self):
        phases = [phase(0, 0), phase(8, 0), phase(8, 0), phase(5, 0), phase(4, 0), phase(4, 8),
                  phase(4, 4), phase(4, 4)]
        self.assertEqual(w.ladders(phases), "A 8→5→4, W 8→4")
        self.assertEqual(w.ladders([phase(0, 0)]), "A fp, W fp")

    def test_run_name_drops_only_the_seed(self):
        self.assertEqual(w.run_name("runs/profit_w3a3_s12/summary.json"), "profit_w3a3")
        self.assertEqual(w.run_name("runs/cuda/noprofit_w3a3_s1/summary.json"), "noprofit_w3a3")
        self.assertEqual(w.run_name("runs/profit_w4a4_steplr_s2/summary.json"),
                         "profit_w4a4_steplr")

    def test_image_stem_is_the_same_for_a_run_and_its_archived_copy(self):
        self.assertEqual(w.image_stem("runs/profit_w4a4_s1"), "profit_w4a4_s1")
        self.assertEqual(w.image_stem("docs/data/runs/profit_w4a4_s1"), "profit_w4a4_s1")
        self.assertEqual(w.image_stem("runs/cuda/profit_w3a3_s2"), "cuda_profit_w3a3_s2")
        self.assertEqual(w.image_stem("docs/data/runs/cuda/profit_w3a3_s2"),
                         "cuda_profit_w3a3_s2")
        self.assertEqual(w.run_name("docs/data/runs/noprofit_w3a3_s1/summary.json"),
                         "noprofit_w3a3")

    def test_schedule_names_the_policy_departures(self):
        _, r = run("profit_w4a4", 1, 94.0, 93.8)
        r["config"]["profit"] = {"n_profit": 3, "freeze_order": "aiwq"}
        for ph in r["phases"]:
            ph["kind"] = "bn" if ph["weight_bits"] == 8 else "ft"
        self.assertEqual(w.schedule_label({}, r), "no freezing; A 8→4, W 8→4")
        label = w.schedule_label({"keep_tail_relu6": "true", "act_init_quantile": "0.999"}, r)
        self.assertEqual(label, "no freezing, activation clips start at the 0.999 quantile, "
                                "ReLU6 before pooling (the spec: ReLU); A 8→4, W 8→4")
        self.assertEqual(w.schedule_label({"keep_tail_relu6": "false"}, r),
                         "no freezing; A 8→4, W 8→4")
        self.assertEqual(w.schedule_label({"duq_learn_offset": "true"}, r),
                         "no freezing, h-swish offsets learned (profit.md D8); A 8→4, W 8→4")
        self.assertEqual(w.schedule_label({"pact_hswish_shift": "true"}, r),
                         "no freezing, PACT h-swish grid shifted to [-3/8, alpha - 3/8]; "
                         "A 8→4, W 8→4")
        # PACT: the alpha penalty, also when the policy predates the key (no penalty then).
        self.assertEqual(w.schedule_label({"method": "pact"}, r),
                         "no freezing, no L2 penalty on PACT's alpha (§1.4 default: the weight "
                         "decay); A 8→4, W 8→4")
        self.assertEqual(w.schedule_label({"method": "pact", "pact_alpha_decay": "4e-05"}, r),
                         "no freezing, L2 penalty 4e-05 on PACT's alpha; A 8→4, W 8→4")
        self.assertEqual(w.schedule_label({"method": "duq", "pact_alpha_decay": "0"}, r),
                         "no freezing; A 8→4, W 8→4")

    def test_goal_verdict_uses_the_mean_drop_and_counts_seeds(self):
        runs = [run("profit_w4a4", 1, 94.0, 93.8), run("profit_w4a4", 2, 94.0, 93.6),
                run("profit_w3a3", 1, 94.0, 93.0), run("profit_w3a3", 2, 94.0, 93.2),
                run("profit_w3a3", 3, 94.0, 92.9),
                run("profit_w4a4_ft4", 1, 94.0, 94.0),  # a variant: no goal row
                run("profit_w2a2_refit", 1, 94.0, 91.5),  # a goal variant: W2A2's goal
                run("profit_w2a2", 1, 94.0, 93.0, arch="mobilenet_v3_large")]  # not V2
        rows = w.goal_rows(runs)
        self.assertEqual([r[0] for r in rows],
                         ["`profit_w4a4`", "`profit_w3a3`", "`profit_w2a2_refit`"])
        self.assertEqual(rows[2][3:], ["2.50", "≤ 3.0", "met (1 of 3 seeds)"])
        self.assertEqual(rows[0][1:], ["1, 2", "93.70 ± 0.14", "0.30 ± 0.14", "≤ 0.3",
                                       "met (2 of 3 seeds)"])
        self.assertEqual(rows[1][3], "0.97 ± 0.15")
        self.assertEqual(rows[1][5], "met")
        rows = w.goal_rows([run("profit_w3a3", 1, 94.0, 92.9)])
        self.assertEqual(rows[0][5], "not met (1 of 3 seeds)")

    def test_paired_rows_use_common_seeds_and_per_seed_differences(self):
        runs = [run("profit_w3a3", 1, 94.0, 92.0), run("profit_w3a3", 2, 94.0, 92.4),
                run("profit_w3a3", 3, 94.0, 99.0),  # no partner: left out
                run("noprofit_w3a3", 1, 94.0, 91.5), run("noprofit_w3a3", 2, 94.0, 92.3)]
        self.assertEqual(w.paired_rows(runs, "profit_w3a3", "noprofit_w3a3"),
                         [["1, 2", "8 / 8", "92.20 ± 0.28", "91.90 ± 0.57", "0.30 ± 0.28"]])
        self.assertEqual(w.paired_rows(runs[:3], "profit_w3a3", "noprofit_w3a3"), [])

    def test_comparison_rows_follow_the_given_order_and_skip_missing_recipes(self):
        runs = [run("v3_lsq", 1, 94.0, 90.0), run("v3_duq", 1, 94.0, 91.0),
                run("v3_duq", 2, 94.0, 91.4), run("v3_other", 1, 94.0, 99.0)]
        for _, r in runs:
            r["final_ema"] = {"top1": r["final"]["top1"] - 0.5}
        rows = w.comparison_rows(runs, [("v3_duq", "DuQ"), ("v3_pact", "PACT"),
                                        ("v3_lsq", "LSQ")])
        self.assertEqual(rows, [["`v3_duq`", "DuQ", "1, 2", "91.20 ± 0.28", "90.70 ± 0.28",
                                 "2.80 ± 0.28"],
                                ["`v3_lsq`", "LSQ", "1", "90.00", "89.50", "4.00"]])
        self.assertEqual(w.comparison_rows(runs, [("v3_pact", "PACT")]), [])
        self.assertEqual(w.comparison_rows(runs[:1], [("v3_lsq", "LSQ")])[0][4], "89.50")


class WriteResultsFatFactors(unittest.TestCase):
    def test_row_reads_both_stages_and_the_factor_counts(self):
        summary = {"config": {"train": {"epochs": 5},
                              "fat": {"w_bits": 4, "a_bits": 4, "per_filter": True,
                                      "weight_form": "asymmetric"}},
                   "fp": {"top1": 94.70}, "before": {"top1": 89.76}, "after": {"top1": 93.10},
                   "rescaled": False, "train_seconds": 600.0,
                   "weight_factors": {"thresholds_only": {"top1": 92.80}, "improved_holdout": True,
                                      "factors": 2000, "changed": 500, "at_bound": 20}}
        written = {}
        original = write_results.write_section
        write_results.write_section = lambda name, rows: written.setdefault(name, rows)
        try:
            with tempfile.TemporaryDirectory() as d:
                path = pathlib.Path(d) / "summary.json"
                path.write_text(json.dumps(summary))
                write_results.fat_factors_section("cmd", [str(path)])
        finally:
            write_results.write_section = original
        row = written["fat-factors"][-1]
        self.assertEqual(row, "| W4A4 | per-filter asymmetric | no | 89.76 | 92.80 | 93.10 | 1.60 "
                              "| yes | 2,000 | 25.0 % | 1.0 % | 10.0 min |")


if __name__ == "__main__":
    unittest.main()
