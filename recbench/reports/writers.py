"""Markdown, CSV and LaTeX renderings of a :class:`~recbench.reports.tables.Table`.

Markdown and LaTeX show the rounded display frame, CSV the tidy frame at full precision; each
starts with the header lines (the command that wrote it, the setting, the hardware).
"""

from __future__ import annotations

from recbench.reports.tables import Table


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(table: Table, header: list[str]) -> str:
    lines = [f"<!-- {line} -->" for line in header]
    lines += ["", f"### {table.title}", ""]
    columns = list(table.display.columns)
    lines.append("| " + " | ".join(_md_escape(c) for c in columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for _, row in table.display.iterrows():
        lines.append("| " + " | ".join(_md_escape(row[c]) or "–" for c in columns) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table, header: list[str]) -> str:
    lines = [f"# {line}" for line in header] + [f"# note: {note}" for note in table.notes]
    body = table.data.to_csv(index=False, lineterminator="\n", float_format="%.6f")
    return "\n".join(lines) + "\n" + body


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: object) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: Table, header: list[str]) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); notes go under the tabular."""
    columns = list(table.display.columns)
    lines = [f"% {line}" for line in header]
    lines += [
        r"\begin{table}[t]",
        r"\centering",
        r"\footnotesize",
        rf"\caption{{{tex_escape(table.title)}}}",
        rf"\label{{tab:{table.name.replace('_', '-')}}}",
        r"\begin{tabular}{" + "l" * min(2, len(columns)) + "r" * max(0, len(columns) - 2) + "}",
        r"\toprule",
        " & ".join(tex_escape(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    for _, row in table.display.iterrows():
        lines.append(" & ".join(tex_escape(row[c]) or "--" for c in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in table.notes:
        lines.append(r"\par\smallskip\raggedright " + tex_escape(note))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


WRITERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
