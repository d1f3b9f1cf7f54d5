"""docs/results.md: the sections the scripts rewrite (<!-- NAME:begin --> .. <!-- NAME:end -->)
must hold only what the scripts write. A hand-written reading that lands inside one is deleted
the next time its script runs, so every marker must pair up in order and no '### Reading'
heading may sit between a pair (run by ctest as results_doc)."""
import pathlib
import re
import unittest

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "results.md"


def sections(text):
    """[(name, first line, body)] of the generated sections; raises on an unpaired marker."""
    out, open_name, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        m = re.fullmatch(r"<!-- ([\w-]+):(begin|end) -->", line.strip())
        if m:
            name, kind = m.groups()
            if kind == "begin":
                if open_name:
                    raise ValueError(f"line {number}: {name}:begin inside {open_name}")
                open_name, start, body = name, number, []
            else:
                if name != open_name:
                    raise ValueError(f"line {number}: {name}:end without its begin")
                out.append((name, start, body))
                open_name = None
        elif open_name:
            body.append(line)
    if open_name:
        raise ValueError(f"line {start}: {open_name}:begin never ends")
    return out


class ResultsDoc(unittest.TestCase):
    def test_markers_pair_up(self):
        self.assertGreater(len(sections(DOC.read_text())), 0)

    def test_unpaired_marker_is_named(self):
        with self.assertRaisesRegex(ValueError, "line 1: a:begin never ends"):
            sections("<!-- a:begin -->\ntext\n")
        with self.assertRaisesRegex(ValueError, "line 2: b:begin inside a"):
            sections("<!-- a:begin -->\n<!-- b:begin -->\n")

    def test_no_reading_inside_a_generated_section(self):
        for name, start, body in sections(DOC.read_text()):
            readings = [line for line in body if line.startswith("### Reading")]
            self.assertEqual(readings, [], f"section '{name}' (line {start}) holds a reading")


if __name__ == "__main__":
    unittest.main()
