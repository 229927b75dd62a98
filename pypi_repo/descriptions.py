"""Long descriptions (READMEs) to safe HTML: Markdown, reStructuredText or plain text.

The format comes from ``Description-Content-Type`` (PEP 566 / core metadata 2.1), as on
PyPI: ``text/markdown`` via markdown-it-py (CommonMark + tables + strikethrough +
footnotes), ``text/x-rst`` via docutils with file insertion and raw HTML disabled
(readme-renderer's settings), ``text/plain`` as preformatted text; no content type means
reST, falling back to plain text when it does not parse. Code blocks are highlighted with
Pygments into class-based spans (the stylesheet is ``pygments_css``), as on PyPI's site.

Whatever the renderer produced is then sanitized with nh3 (an allow-list: no script, no
event handlers, no ``javascript:`` URLs), because an uploader controls every byte of a
README. Two more rules from issues 10 and 12:
- DOM clobbering: README ``id`` values are prefixed with ``user-content-`` (GitHub's rule,
  in-page ``#`` links follow), ``name`` is dropped, and only known classes survive.
- Air gap: an ``<img>`` from another host never loads. It becomes a placeholder with its
  alt text (a link to the image when it is not inside a link already), so a page never
  asks other sites for anything and its load never waits on them (issue 12, defect 6).
"""
from __future__ import annotations

import html
import logging
import re
from email.message import Message
from functools import lru_cache
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

__all__ = ["render_description", "sanitize_html", "pygments_css", "MAX_DESCRIPTION_CHARS"]

log = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 512 * 1024
MAX_HIGHLIGHT_CHARS = 64 * 1024  # a longer block is shown plain: highlighting is not worth seconds
ID_PREFIX = "user-content-"

ALLOWED_TAGS = {
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
    "del", "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "kbd", "li", "ol", "p", "pre", "s", "samp", "section", "span", "strike", "strong", "sub", "summary",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var",
}
ALLOWED_ATTRIBUTES = {
    "*": {"id", "title", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}
_TOKEN_CLASSES = {c for c in STANDARD_TYPES.values() if c}
ALLOWED_CLASSES = {  # everything else a README says in class="" is dropped
    "span": _TOKEN_CLASSES,
    "pre": {"highlight", "code", "literal-block", "description-plain"},
    "code": {"highlight"},
    "sup": {"footnote-ref"},
    "a": {"footnote-backref"},
    "hr": {"footnotes-sep"},
    "section": {"footnotes"},
    "ol": {"footnotes-list"},
    "li": {"footnote-item"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_RST_SETTINGS = {
    # readme-renderer's choices: no file or raw inclusion, no noisy system messages.
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "_disable_config": True,
    "report_level": 5,
    "halt_level": 4,
    "syntax_highlight": "short",  # Pygments' short class names, the same CSS as Markdown
    "math_output": "HTML",
    "initial_header_level": 2,
    "doctitle_xform": False,
    "warning_stream": False,
}

_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """markdown-it's hook: ``<pre>`` with Pygments spans, or "" for its default escaping."""
    if not lang or len(code) > MAX_HIGHLIGHT_CHARS:
        return ""
    try:
        lexer = get_lexer_by_name(lang.split()[0][:40], stripnl=False, ensurenl=False)
    except ClassNotFound:
        return ""
    body = pygments_highlight(code, lexer, _FORMATTER)
    return f'<pre class="highlight"><code class="highlight">{body}</code></pre>\n'


_MARKDOWN = (MarkdownIt("commonmark", {"html": True, "typographer": False, "highlight": _highlight})
             .enable(["table", "strikethrough"]).use(footnote_plugin))


@lru_cache(maxsize=1)
def pygments_css(scope: str = ".readme-body") -> str:
    """Token colours for README code: a light style, and a dark one under ``prefers-color-scheme``."""
    light = HtmlFormatter(style="xcode").get_token_style_defs(scope)  # both: every token >= 4.5:1 (WCAG AA)
    dark = HtmlFormatter(style="one-dark").get_token_style_defs(scope)
    return ("/* Pygments token styles (generated) */\n" + "\n".join(light)
            + "\n@media (prefers-color-scheme: dark) {\n" + "\n".join(dark) + "\n}\n")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "id":
        return value if value.startswith(ID_PREFIX) else ID_PREFIX + value
    if tag == "a" and attr == "href" and value.startswith("#") and not value.startswith("#" + ID_PREFIX):
        return "#" + ID_PREFIX + value[1:]
    return value


_ATTR = r'\s+[\w:-]+(?:="[^"]*")?'
_TOKENS = re.compile(rf'<a(?:{_ATTR})*\s*>|</a>|<img(?:{_ATTR})*\s*/?>')
_ATTR_VALUE = re.compile(r'([\w:-]+)="([^"]*)"')


def _is_local(src: str) -> bool:
    """Only a same-site path may load: no host, no scheme, not protocol-relative."""
    parts = urlsplit(html.unescape(src))
    return not parts.scheme and not parts.netloc and src.startswith("/")


def _placeholder(tag: str, inside_link: bool) -> str:
    """A remote image as text: its alt (or host), linking to it unless already in a link."""
    attrs = dict(_ATTR_VALUE.findall(tag))
    src = attrs.get("src", "")
    parts = urlsplit(html.unescape(src))
    host = parts.hostname or "another site"
    alt = html.unescape(attrs.get("alt", "")).strip()
    if not alt or alt == html.unescape(src) or "://" in alt:
        alt = f"image from {host}"
    label = html.escape(alt[:120])
    title = html.escape(f"Image from {host}, not loaded (this index never fetches remote images)")
    inner = f'<span class="remote-image-icon" aria-hidden="true"></span>{label}'
    if inside_link or parts.scheme not in ("http", "https"):  # a relative path means nothing here
        return f'<span class="remote-image" title="{title}">{inner}</span>'
    return (f'<a class="remote-image" href="{src}" title="{title}" rel="nofollow noopener ugc">{inner}</a>')


def _replace_remote_images(markup: str) -> str:
    """Walk the sanitized markup's ``<a>``/``<img>`` tags (nh3 output: attributes always double-quoted)."""
    out: list[str] = []
    depth = 0
    pos = 0
    for m in _TOKENS.finditer(markup):
        out.append(markup[pos:m.start()])
        tag = m.group(0)
        if tag.startswith("<img"):
            src = dict(_ATTR_VALUE.findall(tag)).get("src", "")
            out.append(tag if src and _is_local(src) else _placeholder(tag, depth > 0))
        else:
            depth = max(0, depth + (-1 if tag == "</a>" else 1))
            out.append(tag)
        pos = m.end()
    out.append(markup[pos:])
    return "".join(out)


def sanitize_html(markup: str) -> str:
    """Keep formatting, drop anything that could run code, clobber the page or leave it."""
    cleaned = nh3.clean(
        markup,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        attribute_filter=_attribute_filter,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener ugc",
        strip_comments=True,
    )
    return _replace_remote_images(cleaned)


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
