"""The one-line bar at the top: which screen this is, and the keys to the others."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

TABS = (
    ("library", "F2", "Library"),
    ("ask", "F3", "Ask"),
    ("contribute", "F4", "Contribute"),
    ("peers", "F5", "Peers"),
    ("identity", "F6", "Identity"),
)


class NavBar(Static):
    """Clickable tabs; the current screen's tab is highlighted."""

    def __init__(self, current: str) -> None:
        super().__init__(self.render_tabs(current), id="navbar")
        self.current = current

    @staticmethod
    def render_tabs(current: str) -> Content:
        parts: list[Content | str] = [Content.from_markup("[b]commons[/b] ")]
        for mode, key, label in TABS:
            style = "reverse b" if mode == current else "dim"
            parts.append(
                Content.from_markup(
                    f"[@click=app.switch_mode('{mode}')][{style}] {key} {label} [/][/]"
                )
            )
        parts.append(Content.from_markup(" [@click=app.help][dim]F1 help[/][/]"))
        return Content.assemble(*parts)
