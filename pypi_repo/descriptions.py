"""Long descriptions (READMEs) to safe HTML: Markdown, reStructuredText or plain text.

The format comes from ``Description-Content-Type`` (PEP 566 / core metadata 2.1), as on
PyPI: ``text/markdown`` via markdown-it-py (CommonMark + tables + strikethrough),
``text/x-rst`` via docutils with file insertion and raw HTML disabled (readme-renderer's
settings), ``text/plain`` as preformatted text; no content type means reST, falling back to
plain text when it does not parse. Whatever the renderer produced is then sanitized with
nh3 (an allow-list: no script, no event handlers, no ``javascript:`` URLs), because an
uploader controls every byte of a README.
"""
from __future__ import annotations

import html
import logging
from email.message import Message

import nh3
from markdown_it import MarkdownIt

__all__ = ["render_description", "sanitize_html", "MAX_DESCRIPTION_CHARS"]

log = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 512 * 1024

ALLOWED_TAGS = {
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
    "del", "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "kbd", "li", "ol", "p", "pre", "s", "samp", "span", "strike", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var",
}
ALLOWED_ATTRIBUTES = {
    "*": {"id", "class", "title", "align"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_MARKDOWN = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(["table", "strikethrough"])

_RST_SETTINGS = {
    # readme-renderer's choices: no file or raw inclusion, no noisy system messages.
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "_disable_config": True,
    "report_level": 5,
    "halt_level": 4,
    "syntax_highlight": "none",
    "math_output": "HTML",
    "initial_header_level": 2,
    "doctitle_xform": False,
    "warning_stream": False,
}


def sanitize_html(markup: str) -> str:
    """Keep formatting, drop anything that could run code or leave the page."""
    return nh3.clean(
        markup,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener ugc",
        strip_comments=True,
    )


def _plain(text: str) -> str:
    return f'<pre class="description-plain">{html.escape(text)}</pre>'


def _markdown(text: str) -> str:
    return _MARKDOWN.render(text)


def _rst(text: str) -> str | None:
    from docutils.core import publish_parts
    from docutils.utils import SystemMessage

    try:
        parts = publish_parts(text, writer="html5", settings_overrides=_RST_SETTINGS)
    except (SystemMessage, ValueError, AttributeError, TypeError, IndexError):
        return None
    return parts.get("body") or None


def _content_type(value: str | None) -> str:
    if not value:
        return ""
    msg = Message()
    msg["Content-Type"] = value
    return msg.get_content_type() if value.strip() else ""


def render_description(text: str | None, content_type: str | None) -> str:
    """Safe HTML for a long description; never raises for bad input."""
    if not text or not text.strip():
        return ""
    if len(text) > MAX_DESCRIPTION_CHARS:
        return _plain(text[:MAX_DESCRIPTION_CHARS] + "\n[... description truncated]")
    kind = _content_type(content_type)
    try:
        if kind == "text/markdown":
            rendered = _markdown(text)
        elif kind == "text/plain":
            return _plain(text)
        else:  # text/x-rst, or no type at all (PyPI's default)
            rendered = _rst(text)
            if rendered is None:
                return _plain(text)
    except Exception:  # a renderer bug must not take the project page down
        log.exception("cannot render description (%s)", kind or "no content type")
        return _plain(text)
    return sanitize_html(rendered)
