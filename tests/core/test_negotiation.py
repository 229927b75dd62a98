"""PEP 691 content negotiation: what real clients send must pick the right format."""
from __future__ import annotations

import pytest

from pypi_repo.simple_api import HTML_V1, JSON_V1, TEXT_HTML, NotAcceptable, choose_content_type

PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize(
    "accept, expected",
    [
        (PIP_ACCEPT, JSON_V1),
        (UV_ACCEPT, JSON_V1),
        (BROWSER, TEXT_HTML),
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        ("*/*", TEXT_HTML),
        ("text/*", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.6", JSON_V1),
        ("text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.6", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+json;q=0, text/html", TEXT_HTML),
        (";;;garbage", TEXT_HTML),  # unparseable: treated as absent
    ],
)
def test_accept_header_negotiation(accept, expected):
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize("accept", ["application/json", "image/png", "application/vnd.pypi.simple.v2+json",
                                    "text/html;q=0"])
def test_nothing_acceptable_raises(accept):
    with pytest.raises(NotAcceptable):
        choose_content_type(accept)


@pytest.mark.parametrize(
    "fmt, expected",
    [("json", JSON_V1), ("html", TEXT_HTML), (JSON_V1, JSON_V1), (HTML_V1, HTML_V1),
     ("application/vnd.pypi.simple.latest+json", JSON_V1)],
)
def test_format_query_parameter_wins_over_accept(fmt, expected):
    assert choose_content_type("text/html", fmt) == expected


def test_unknown_format_parameter_is_not_acceptable():
    with pytest.raises(NotAcceptable):
        choose_content_type(None, "xml")
