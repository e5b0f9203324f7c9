"""An HTML page of search results with their thumbnails (inline, so the page is one file)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from vljepa_ros.index.search import Hit


def results_html(query: str, hits: list[Hit], thumbnails: dict[str, bytes]) -> str:
    """The page's HTML: one row per hit, best first."""
    rows = []
    for rank, hit in enumerate(hits, 1):
        jpeg = thumbnails.get(hit.key)
        image = f'<img src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">' if jpeg else ""
        time = "" if hit.t_s is None else f"{hit.t_s:.2f} s"
        if hit.start_t_s is not None and hit.end_t_s is not None:
            time = f"{hit.start_t_s:.2f}-{hit.end_t_s:.2f} s ({hit.clips} clips), shown: {time}"
        rows.append(
            f"<tr><td>{rank}</td><td>{image}</td><td>{html.escape(hit.bag)}</td><td>{html.escape(hit.camera)}</td>"
            f"<td>{time}</td><td>{hit.score:.3f}</td><td>{html.escape(hit.caption)}</td>"
            f"<td><code>{html.escape(hit.replay_command)}</code></td></tr>"
        )
    return (
        f"<!doctype html><meta charset='utf-8'><title>search: {html.escape(query)}</title>"
        "<style>body{font-family:sans-serif}td{padding:4px 8px;vertical-align:middle}</style>"
        f"<h1>{html.escape(query)}</h1><table><tr><th>#</th><th></th><th>bag</th><th>camera</th><th>time</th>"
        f"<th>score</th><th>caption</th><th>play from here</th></tr>{''.join(rows)}</table>"
    )


def write_results_page(path: Path | str, query: str, hits: list[Hit], thumbnails: dict[str, bytes]) -> Path:
    """Write the page; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results_html(query, hits, thumbnails))
    return path
