"""The browser page at /ui: static HTML, its script modules and one stylesheet from app/ui.

The page itself needs no key (it asks for one and sends it with every API call), so its
paths are public. A strict Content-Security-Policy keeps it to its own files and origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# path -> (file in app/ui, media type)
FILES = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/transcript.js": ("transcript.js", "text/javascript; charset=utf-8"),
    "/ui/markdown.js": ("markdown.js", "text/javascript; charset=utf-8"),
    "/ui/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Served without a key: the page, its files, and the redirects to it.
PUBLIC_PATHS = frozenset({"/", "/ui/", *FILES})

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated each time (ETag / Last-Modified), so an upgrade shows at once.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _serve(name: str, media_type: str) -> FileResponse:
    return FileResponse(UI_DIR / name, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("ui", status_code=307)


@router.get("/ui/")
async def ui_slash() -> RedirectResponse:
    return RedirectResponse("../ui", status_code=307)


@router.get("/ui")
async def page() -> FileResponse:
    return _serve(*FILES["/ui"])


@router.get("/ui/app.js")
async def script() -> FileResponse:
    return _serve(*FILES["/ui/app.js"])


@router.get("/ui/transcript.js")
async def transcript_script() -> FileResponse:
    return _serve(*FILES["/ui/transcript.js"])


@router.get("/ui/markdown.js")
async def markdown_script() -> FileResponse:
    return _serve(*FILES["/ui/markdown.js"])


@router.get("/ui/style.css")
async def stylesheet() -> FileResponse:
    return _serve(*FILES["/ui/style.css"])
