"""The Simple Repository API: ``/simple/``, ``/simple/<project>/`` and the ``/<project>/`` alias.

The alias lets the seed's ``--extra-index-url http://host:8385/`` work: pip then asks for
``http://host:8385/<project>/``, which serves the same page.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, request, url_for

from ..distfiles import canonical_project_name
from ..errors import InvalidName, ProjectNotFound
from ..index import Page
from ..simple_api import choose_content_type
from .app import services

bp = Blueprint("simple", __name__)


def negotiated_type() -> str:
    """The response type for this request (raises NotAcceptable -> 406)."""
    environ = request.environ
    format_param = request.args.get("format") if environ.get("QUERY_STRING") else None
    return choose_content_type(environ.get("HTTP_ACCEPT"), format_param)


def page_response(page: Page, max_age: int) -> Response:
    """A cached page as a response: ETag, 304 on revalidation, ``Vary: Accept``.

    Only ``If-None-Match`` is honoured (pages have no stable Last-Modified); werkzeug's
    general ``make_conditional`` costs more than the rest of the request.
    """
    headers = [
        ("ETag", page.etag),
        ("Vary", "Accept"),
        ("Cache-Control", f"max-age={max_age}, must-revalidate"),
    ]
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(page.etag.strip('"')):
        return Response(status=304, headers=headers)
    return Response(page.body, content_type=page.content_type, headers=headers)


@bp.get("/simple/")
def project_list() -> Response:
    svc = services()
    page = svc.index.project_list_page(negotiated_type(), request.script_root)
    return page_response(page, svc.settings.page_max_age)


def _project(name: str, endpoint: str) -> Response:
    try:
        canonical = canonical_project_name(name)
    except InvalidName:
        raise ProjectNotFound(f"no project named {name[:100]!r}") from None
    if canonical != name:
        target = url_for(endpoint, name=canonical)
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        return redirect(target, 301)
    svc = services()
    page = svc.index.project_page(canonical, negotiated_type(), request.script_root)
    return page_response(page, svc.settings.page_max_age)


@bp.get("/simple/<name>/")
def project_detail(name: str) -> Response:
    return _project(name, "simple.project_detail")


@bp.get("/<name>/")
def project_detail_alias(name: str) -> Response:
    return _project(name, "simple.project_detail_alias")


@bp.get("/<name>")
def project_alias_without_slash(name: str) -> Response:
    """``/payo-cli`` -> ``/payo-cli/``, but only for projects that exist (not a blanket 30x)."""
    try:
        canonical = canonical_project_name(name)
    except InvalidName:
        abort(404)
    if canonical not in services().store.projects():
        abort(404)
    return redirect(url_for("simple.project_detail_alias", name=canonical), 301)
