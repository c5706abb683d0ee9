"""QR codes as inline SVG markup (no external image, no script: the pages' CSP allows it)."""

from __future__ import annotations

import logging

import segno
from markupsafe import Markup

log = logging.getLogger(__name__)


def qr_svg(text: str, label: str) -> Markup:
    """A QR code of `text` as inline SVG markup, titled `label` for screen readers."""
    code = segno.make(text, error="m", micro=False)
    svg = code.svg_inline(scale=4, border=2, title=label, dark="#000", light=None,
                          svgclass="segno qr")
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))
