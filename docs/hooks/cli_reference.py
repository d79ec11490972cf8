"""mkdocs hook: the CLI reference page, rendered from the typer app at build time.

Written by hand, a reference drifts from the options the code accepts; rendered from the app
that parses the options, it cannot.  The page ``cli.md`` holds a marker that this hook replaces
with typer's own Markdown renderer (``typer.cli.get_docs_for_click``, what ``typer ... utils
docs`` prints) applied to every command of ``recbench``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.cli import get_docs_for_click

MARKER = "<!-- cli-reference -->"


def render_reference() -> str:
    """Markdown for ``recbench`` and every sub-command, headings one level below the page's."""
    from recbench.cli import app

    command = typer.main.get_command(app)
    context = typer.Context(command, info_name="recbench")
    text = get_docs_for_click(obj=command, ctx=context, name="recbench", indent=1)
    return text.strip() + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace the marker on the CLI page; every other page is left as it is."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_reference())
