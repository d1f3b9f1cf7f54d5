"""Shared by the docs/results.md writers: the document, its generated sections (delimited by
<!-- NAME:begin --> / <!-- NAME:end --> markers), markdown tables, the machine line, mean ± std."""
import os
import pathlib
import platform

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results.md"
HEADER = """# Results

Every number in this file is written by a committed script (named next to each table) from a
fixed seed. Re-run the command to reproduce it.
"""


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # The machine's cores, not nproc's answer: nproc honours OMP_NUM_THREADS (a one-thread run
    # would report one core).
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}"


def replace_section(name, body):
    text = DOC.read_text() if DOC.exists() else HEADER
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def table(header, rows):
    """Markdown table lines: a header row, the separator, one line per row (lists of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def write_section(name, lines):
    """Writes a section body (list of lines), closed by the machine line."""
    replace_section(name, "\n".join(lines + ["", f"Machine: {machine()}."]))


def mean_std(values):
    n = len(values)
    m = sum(values) / n
    if n == 1:
        return f"{m:.2f}"
    sd = (sum((v - m) ** 2 for v in values) / (n - 1)) ** 0.5
    return f"{m:.2f} ± {sd:.2f}"
