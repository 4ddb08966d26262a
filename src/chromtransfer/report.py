"""``report.html``: one self-contained page (figures embedded as base64 PNG) that a person reads.

The page is assembled from the study's own outputs: the summary (``summary.json``), tables
(pandas DataFrames) and figures (PNG files). Sections with nothing to show are left out.
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from .artifacts import write_text

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .3em; }
h2 { margin-top: 2em; color: #0072B2; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f0f4f8; }
td:first-child, th:first-child { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; flex: 0 1 520px; }
figure img { width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.note { color: #555; font-size: 0.9em; }
"""


@dataclass
class Section:
    """One heading with paragraphs, tables and figures, in that order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.paragraphs or self.tables or any(Path(p).exists() for _, p in self.figures))


def _table_html(caption: str, table: pd.DataFrame) -> str:
    formatted = table.copy()
    for column in formatted.columns:
        values = pd.to_numeric(formatted[column], errors="coerce")
        whole = values.dropna()
        if len(whole) and whole.eq(whole.round()).all() and pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = values.map(lambda v: "" if pd.isna(v) else f"{int(v)}")
        elif pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    body = formatted.to_html(index=False, border=0, escape=True)
    return f"<p><b>{html.escape(caption)}</b></p>\n{body}" if caption else body


def _figure_html(caption: str, path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render(title: str, sections: Iterable[Section], intro: str = "") -> str:
    """The whole page as one HTML string (no external resources)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for section in sections:
        if section.empty:
            continue
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        parts += [_table_html(c, t) for c, t in section.tables]
        figures = [_figure_html(c, p) for c, p in section.figures if Path(p).exists()]
        if figures:
            parts.append('<div class="figures">' + "\n".join(figures) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | os.PathLike, title: str, sections: Iterable[Section], intro: str = "") -> Path:
    """Render and write the page atomically; returns its path."""
    write_text(path, render(title, sections, intro))
    return Path(path)
