"""scripts/profit_clips.py: reads DuQ activation clips from a run's final.safetensors (run by
ctest as profit_clips)."""
import json
import math
import pathlib
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
import profit_clips as pc  # noqa: E402


def write_safetensors(path, tensors):
    header, blob = {}, b""
    for name, values in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": [len(values)],
                        "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + blob)


class ProfitClips(unittest.TestCase):
    def setUp(self):
        self.dir = pathlib.Path(tempfile.mkdtemp())
        write_safetensors(self.dir / "final.safetensors", {
            "features.1.conv.0.2.quant.theta_a": [2.0],
            "features.1.conv.0.2.quant.theta_c": [9.0],
            "features.2.input_site.quant.theta_a": [-1.0, 1.0],  # per channel: the mean
            "features.1.conv.1.weight_quant.theta_a": [5.0],  # a weight clip: left out
        })

    def test_clips_are_softplus_of_theta_a_of_activation_sites(self):
        clips = pc.activation_clips(self.dir)
        self.assertEqual(sorted(clips), ["features.1.conv.0.2.quant",
                                         "features.2.input_site.quant"])
        self.assertAlmostEqual(clips["features.1.conv.0.2.quant"], math.log1p(math.exp(2.0)),
                               places=6)
        self.assertAlmostEqual(clips["features.2.input_site.quant"],
                               (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2,
                               places=6)

    def test_learned_offsets_gather_beta_and_beta_prime_per_site(self):
        write_safetensors(self.dir / "final.safetensors", {
            "features.3.block.0.2.quant.beta": [0.30],
            "features.3.block.0.2.quant.beta_prime": [-0.40],
            "features.4.block.0.2.quant.beta": [0.35],
            "features.4.block.0.2.quant.beta_prime": [-0.375],
            "features.4.block.0.2.quant.theta_a": [1.0],
        })
        off = pc.learned_offsets(self.dir)
        self.assertEqual(len(off["beta"]), 2)
        self.assertAlmostEqual(min(off["beta"]), 0.30, places=6)
        self.assertAlmostEqual(max(off["beta"]), 0.35, places=6)
        self.assertEqual(sorted(round(v, 3) for v in off["beta_prime"]), [-0.4, -0.375])

    def test_truncated_file_is_one_error_naming_it(self):
        path = self.dir / "final.safetensors"
        path.write_bytes(path.read_bytes()[:-3])
        with self.assertRaises(SystemExit) as e:
            pc.activation_clips(self.dir)
        self.assertIn("final.safetensors: features.", str(e.exception))
        self.assertIn("runs past the end of the file", str(e.exception))


if __name__ == "__main__":
    unittest.main()
