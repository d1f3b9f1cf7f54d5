"""scripts/profit_grids.py: the per-kind comparison of learned activation tops from `profit
grids` reports (run by ctest as profit_grids)."""
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
import profit_grids as pg  # noqa: E402


def report(tops):
    sites = [{"site": "w", "type": "weight", "kind": "W", "step": 0.1}]  # no top: left out
    sites += [{"site": s, "type": "activation", "kind": k, "step": t / 7, "top": t}
              for s, (k, t) in tops.items()]
    return {"run": "r", "sites": sites}


class ProfitGrids(unittest.TestCase):
    def test_weights_have_no_top_and_are_left_out(self):
        self.assertEqual(pg.tops_from_json(report({"a": ("U", 2.0)})), {"a": ("U", 2.0)})

    def test_rows_compare_common_sites_per_kind_against_the_first_run(self):
        first = pg.tops_from_json(report({"a": ("U", 2.0), "b": ("U", 4.0), "h": ("H", 1.0)}))
        second = pg.tops_from_json(report({"a": ("U", 6.0), "b": ("U", 4.0), "h": ("H", 3.0),
                                           "only": ("S", 1.0)}))
        rows = pg.comparison_rows(["duq", "pact"], [first, second])
        # U: sites a, b; medians 3.0 and 5.0; ratios 3.0 and 1.0. No S row (not common).
        self.assertEqual(rows[0], ["U", "duq", 2, "3.000", "1.00", "1.00", "1.00"])
        self.assertEqual(rows[1], ["U", "pact", 2, "5.000", "2.00", "1.00", "3.00"])
        self.assertEqual(rows[3], ["H", "pact", 1, "3.000", "3.00", "3.00", "3.00"])
        self.assertEqual(len(rows), 4)


if __name__ == "__main__":
    unittest.main()
