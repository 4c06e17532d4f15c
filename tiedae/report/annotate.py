"""``python -m tiedae.report.annotate FOLDER...``: the power line under a committed table whose
store was not kept.

``write_report`` puts one line under every table it makes: per labeled count, the smallest gain
over scratch the seeds detect at 80% power (``stats.power_note``). Tables committed before that
line existed can't be remade without their stores, but the line needs only the paired
comparisons, which every report folder keeps in ``significance.csv``. This writes it where the
report would: right under the first Markdown table of ``table.md`` (and of ``README.md``, where
that table is copied), and at the end of ``table.tex``. Running it again replaces the line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from tiedae.report.stats import power_note

LEAD = "Smallest gain over scratch these seeds detect"
LATEX = "\n\\par\\smallskip\\noindent{{\\small {}}}\n"


def first_table(lines: list[str]) -> tuple[int, int] | None:
    """(first, end) of the first block of Markdown table rows; None if there is none."""
    first = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if first is None:
        return None
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return first, end


def under_table(text: str, table: list[str], note: str) -> str | None:
    """``text`` with ``note`` as the paragraph right under the block of rows ``table`` (an
    earlier power line there replaced); None when ``text`` does not hold that block."""
    lines = text.split("\n")
    for start in (i for i, line in enumerate(lines) if line == table[0]):
        end = start + len(table)
        if lines[start:end] != table:
            continue
        rest = lines[end:]
        if len(rest) >= 2 and rest[0] == "" and rest[1].startswith(LEAD):
            rest = rest[2:]
        if rest == [""]:  # the table ended the text: the report's last note ends it unterminated
            rest = []
        return "\n".join([*lines[:end], "", note, *rest])
    return None


def in_latex(text: str, note: str) -> str:
    """``text`` with ``note`` as its closing small paragraph (an earlier one replaced)."""
    kept = text.split("\n\\par\\smallskip\\noindent{\\small " + LEAD)[0]
    return kept.rstrip("\n") + "\n" + LATEX.format(note)


def annotate(folder: Path) -> list[Path]:
    """Write the power line from ``folder/significance.csv`` into its tables; returns the files
    changed (none when no row is compared with scratch by two seeds or more)."""
    note = power_note(pd.read_csv(folder / "significance.csv"))
    if not note:
        return []
    table_md = folder / "table.md"
    text = table_md.read_text()
    lines = text.split("\n")
    span = first_table(lines)
    if span is None:
        raise ValueError(f"{table_md} holds no Markdown table")
    rows = lines[span[0] : span[1]]
    changed = []
    for path in (table_md, folder / "README.md"):
        if not path.exists():
            continue
        updated = under_table(path.read_text(), rows, note)
        if updated is not None and updated != path.read_text():
            path.write_text(updated)
            changed.append(path)
    tex = folder / "table.tex"
    if tex.exists() and (updated := in_latex(tex.read_text(), note)) != tex.read_text():
        tex.write_text(updated)
        changed.append(tex)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tiedae.report.annotate", description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path, help="report folders (significance.csv)")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "significance.csv").exists()]
    if missing:
        print(f"tiedae: error: no significance.csv in {', '.join(missing)}", file=sys.stderr)
        return 2
    for folder in args.folders:
        changed = annotate(folder)
        print(f"{folder}: {', '.join(p.name for p in changed) if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
