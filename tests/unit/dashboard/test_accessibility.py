"""Readable contrast: the dashboard's colours meet WCAG 2.1 AA (4.5:1 for text)."""

from __future__ import annotations

import re

import pytest

from kubenova.dashboard.app import STATIC

CSS = (STATIC / "dashboard.css").read_text()
VARS = dict(re.findall(r"--([a-z]+): (#[0-9a-f]{6}|#[0-9a-f]{3})\b", CSS))


def luminance(colour: str) -> float:
    if len(colour) == 4:  # #abc is #aabbcc
        colour = "#" + "".join(c * 2 for c in colour[1:])

    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


HEADER = re.search(r"header \{[^}]*background: (#[0-9a-f]{6})", CSS)


@pytest.mark.parametrize(
    ("text", "background"),
    [
        ("fg", "bg"),
        ("fg", "card"),
        ("muted", "bg"),
        ("muted", "card"),
        ("accent", "card"),  # links
        ("ok", "card"),
        ("warn", "card"),
        ("bad", "card"),
        ("bad", "bg"),
        ("#ffffff", "accent"),  # button text
        ("#ffffff", "bad"),  # danger button text
        ("#ffffff", "header"),
        ("#cfd6e0", "header"),  # the project switcher's label
    ],
)
def test_text_colours_are_readable(text: str, background: str) -> None:
    assert HEADER is not None
    colours = VARS | {"header": HEADER.group(1)}
    fore, back = colours.get(text, text), colours.get(background, background)
    assert contrast(fore, back) >= 4.5, f"{text} on {background}: {contrast(fore, back):.2f}"
