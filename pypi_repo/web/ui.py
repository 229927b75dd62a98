"""Human pages. The home page also answers Simple API clients pointed at ``/``."""
from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from ..simple_api import HTML_V1, JSON_V1, TEXT_HTML, choose_content_type
from .app import services
from .simple import page_response

bp = Blueprint("ui", __name__)


def index_url() -> str:
    """The URL clients should use for this index, as this request reached it."""
    configured = services().settings.public_url.rstrip("/")
    return (configured or request.host_url.rstrip("/")) + "/simple/"


@bp.get("/")
def home() -> Response:
    accept = request.headers.get("Accept")
    if request.args.get("format") or (accept and choose_content_type(accept) in (JSON_V1, HTML_V1)):
        svc = services()
        kind = choose_content_type(accept, request.args.get("format"))
        return page_response(svc.index.project_list_page(kind, request.script_root))
    svc = services()
    projects = svc.store.projects()
    return Response(
        render_template("home.html", index_url=index_url(), project_count=len(projects),
                        projects=list(projects)[:50], content_type=TEXT_HTML),
        content_type="text/html; charset=utf-8",
    )
