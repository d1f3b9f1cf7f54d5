#!/usr/bin/env python3
"""scripts/profit_phases.py on an unfinished run: the last epoch record of each phase, in order,
from a plain or gzipped metrics.jsonl; a folder with neither is an error naming it."""
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "profit_phases.py"


def epoch(phase, step, top1, ema):
    return {"kind": "epoch", "phase": phase, "step": step, "test": {"top1": top1},
            "test_ema": {"top1": ema}}


class UnfinishedRun(unittest.TestCase):
    def run_script(self, folder):
        return subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True,
                              text=True)

    def test_last_epoch_of_each_phase(self):
        records = [epoch("fp", 100, 94.4, 94.6), {"kind": "step", "phase": "a8.ft", "step": 150},
                   epoch("a8.ft", 200, 90.0, 89.0), epoch("a8.ft", 300, 93.25, 92.5)]
        for packed in (False, True):
            with tempfile.TemporaryDirectory() as d:
                text = "".join(json.dumps(r) + "\n" for r in records)
                if packed:
                    (pathlib.Path(d) / "metrics.jsonl.gz").write_bytes(gzip.compress(text.encode()))
                else:
                    (pathlib.Path(d) / "metrics.jsonl").write_text(text)
                out = self.run_script(d)
                self.assertEqual(out.returncode, 0, out.stderr)
                lines = out.stdout.splitlines()
                self.assertIn("unfinished (metrics.jsonl: 2 phases, 300 steps)", lines[0])
                self.assertEqual(lines[2].split(), ["fp", "94.40", "94.60"])
                self.assertEqual(lines[3].split(), ["a8.ft", "93.25", "92.50"])
                self.assertEqual(len(lines), 4)

    def test_empty_folder_is_named(self):
        with tempfile.TemporaryDirectory() as d:
            out = self.run_script(d)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn(d, out.stderr)


if __name__ == "__main__":
    unittest.main()
