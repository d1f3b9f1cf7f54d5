"""scripts/plot_phase_compare.py: each group's line is the mean phase-end top-1 over its runs,
placed exactly on each panel's scale, with a lowest-to-highest bar when a group has several runs;
points under the zoomed range sit hollow on its bottom edge; the legend carries the final
top-1; runs with another phase list and unfinished runs are errors naming them (ctest
plot_phase_compare)."""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import plot_phase_compare as p  # noqa: E402

NS = "{http://www.w3.org/2000/svg}"


def summary(seed, tops, final, names=("fp", "a4.bn", "w4.bn")):
    return {"config": {"train": {"seed": seed}}, "final": {"top1": final},
            "phases": [{"name": n, "last": {"top1": t}} for n, t in zip(names, tops)]}


def points(polyline):
    return [tuple(map(float, xy.split(","))) for xy in polyline.get("points").split()]


class PhaseCompare(unittest.TestCase):
    def draw(self, groups):
        with tempfile.TemporaryDirectory() as d:
            out = pathlib.Path(d) / "c.svg"
            p.draw(groups, out)
            return ET.parse(out).getroot()

    def test_means_bars_zoom_and_legend(self):
        a = [summary(1, [94.0, 80.0, 91.0], 91.0), summary(2, [94.0, 72.0, 92.0], 91.4)]
        b = [summary(1, [93.0, 90.0, 89.5], 89.0)]
        root = self.draw([("A <&>", a), ("B", b), ("empty", [])])
        lines = root.findall(f"{NS}polyline")
        self.assertEqual(len(lines), 4)  # two groups x two panels; the empty group is skipped
        # Full panel (top 40, height 220): 70 (the lowest run, 72, rounded down to 10) to 100.
        full = lambda v: 40 + 220 - 220 * (v - 70) / 30
        self.assertEqual([y for _, y in points(lines[0])],
                         [round(full(v), 1) for v in (94.0, 76.0, 91.5)])
        self.assertEqual([y for _, y in points(lines[1])],
                         [round(full(v), 1) for v in (93.0, 90.0, 89.5)])
        # Zoomed panel (top 290): 10 points up to the highest mean rounded up, 85 to 95; the
        # mean 76 sits on the bottom edge (510).
        zoom = lambda v: 290 + 220 - 220 * (min(max(v, 85), 95) - 85) / 10
        self.assertEqual([y for _, y in points(lines[2])],
                         [round(zoom(v), 1) for v in (94.0, 76.0, 91.5)])
        hollow = [c for c in root.findall(f"{NS}circle") if c.get("fill") == "white"]
        self.assertEqual([float(c.get("cy")) for c in hollow], [510.0])
        # Group A has two runs: one bar per phase per panel, lowest to highest run.
        bars = [(float(l.get("y1")), float(l.get("y2"))) for l in root.findall(f"{NS}line")
                if l.get("x1") == l.get("x2")]
        self.assertIn((round(full(72.0), 1), round(full(80.0), 1)), bars)
        self.assertIn((round(full(91.0), 1), round(full(92.0), 1)), bars)
        self.assertEqual(len(bars), 6)
        # Each group's markers are shifted sideways, so A and B do not cover each other.
        self.assertLess(points(lines[0])[0][0], points(lines[1])[0][0])
        texts = [t.text for t in root.findall(f"{NS}text")]
        self.assertIn("A <&> (seeds 1, 2): final 91.20 ± 0.28", texts)  # escaped, parses back
        self.assertIn("B (seed 1): final 89.00", texts)
        self.assertEqual([t for t in texts if t in ("fp", "a4.bn", "w4.bn")],
                         ["fp", "a4.bn", "w4.bn"])

    def test_other_phase_list_is_an_error_naming_the_group(self):
        a = [summary(1, [94.0, 80.0, 91.0], 91.0)]
        b = [summary(1, [94.0, 80.0], 91.0, names=("fp", "a4.bn"))]
        with self.assertRaisesRegex(ValueError, "B: phase list differs from A's"):
            self.draw([("A", a), ("B", b)])
        with self.assertRaisesRegex(ValueError, "no runs"):
            self.draw([("A", [])])

    def test_command_line_reads_run_folders_and_names_a_missing_summary(self):
        with tempfile.TemporaryDirectory() as d:
            run = pathlib.Path(d) / "r_s1"
            run.mkdir()
            (run / "summary.json").write_text(json.dumps(summary(1, [94.0, 90.0, 91.0], 91.0)))
            out = pathlib.Path(d) / "c.svg"
            ok = subprocess.run([sys.executable, str(SCRIPTS / "plot_phase_compare.py"), str(out),
                                 f"DuQ={run}"], capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertIn("DuQ (seed 1): final 91.00", out.read_text())
            missing = pathlib.Path(d) / "r_s2"
            bad = subprocess.run([sys.executable, str(SCRIPTS / "plot_phase_compare.py"),
                                  str(out), f"DuQ={run},{missing}"], capture_output=True,
                                 text=True)
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn(str(missing / "summary.json"), bad.stderr)


if __name__ == "__main__":
    unittest.main()
