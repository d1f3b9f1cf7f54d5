"""scripts/weight_grid.py: the share of weights a DuQ weight clip sends to the zero level (run
by ctest as weight_grid)."""
import io
import math
import pathlib
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import weight_grid as wg  # noqa: E402
from test_profit_clips import write_safetensors  # noqa: E402


def theta(a):  # inverse softplus
    return a + math.log(-math.expm1(-a))


class WeightGrid(unittest.TestCase):
    def test_zero_share_follows_the_grid(self):
        w = [0.1, -0.2, 0.6, 1.0]
        self.assertEqual(wg.zero_share(w, [1.0], 2), 0.5)   # L = 1: 0.1, -0.2 -> 0
        self.assertEqual(wg.zero_share(w, [1.0], 3), 0.25)  # L = 3: only 0.3 rounds to 0
        self.assertEqual(wg.zero_share([0.5], [1.0], 2), 1.0)  # a tie rounds to even (0)
        self.assertEqual(wg.zero_share([0.7], [1.0], 2), 0.0)
        # One clip per output row: row 0 (clip 0.1) keeps its weights, row 1 (clip 1.0) zeroes.
        self.assertEqual(wg.zero_share([0.1, 0.1, 0.1, 0.1], [0.1, 1.0], 2), 0.5)

    def test_table_from_a_run(self):
        d = pathlib.Path(tempfile.mkdtemp())
        write_safetensors(d / "final.safetensors", {
            "features.0.0.weight": [0.1, -0.2, 0.6, 1.0],
            "features.0.0.weight_quant.theta_a": [theta(1.0)],
            "features.0.1.weight": [1.0],  # a BN weight: no quantizer, ignored
        })
        out = io.StringIO()
        sys.argv = ["weight_grid.py", str(d), "--bits", "3,2", "--layers"]
        with redirect_stdout(out):
            wg.main()
        text = out.getvalue()
        sigma = (sum((x - 0.375) ** 2 for x in [0.1, -0.2, 0.6, 1.0]) / 4) ** 0.5
        self.assertIn(f"| features.0.0 | {1.0 / sigma:.2f} | {1.0 / 0.9:.2f} | 25.0% | 50.0% |", text)
        self.assertIn("1 weight quantizers", text)
        # The median table: header, rule and row have the same number of cells.
        median = text.split("medians over the layers\n")[1].splitlines()
        self.assertEqual(median[0], "| a / sigma | a / (0.9 max abs W) | zeros at 3 bit | "
                                    "zeros at 2 bit |")
        self.assertEqual([line.count("|") for line in median], [5, 5, 5])

    def test_bad_input_is_named(self):
        d = pathlib.Path(tempfile.mkdtemp())
        sys.argv = ["weight_grid.py", str(d)]
        with self.assertRaises(SystemExit) as e:
            wg.main()
        self.assertIn("final.safetensors: missing", str(e.exception.code))
        sys.argv = ["weight_grid.py", str(d), "--bits", "9"]
        with self.assertRaises(SystemExit) as e:
            wg.main()
        self.assertIn("widths must be in [2, 8]", str(e.exception.code))


if __name__ == "__main__":
    unittest.main()
