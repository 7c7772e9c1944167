"""/docs: Swagger UI served by the gateway itself, and /openapi.json behind a key if asked.

Swagger UI's script and stylesheet come from the `fastapi-swagger` package (installed with the
gateway), the page and its start-up script from app/docs: nothing is loaded from a CDN, and
the page keeps the browser page's strict Content-Security-Policy (no inline script or style).
ReDoc is not served.

The page and its files are the same for everyone and need no key. The API description at
/openapi.json is public unless PASEO_GATEWAY_PUBLIC_DOCS is false; then it needs a read key,
which the page asks for (app/docs/init.js).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from app.api.deps import Reader
from app.api.ui import SECURITY_HEADERS

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
SWAGGER_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))

# path -> (file, media type)
FILES = {
    "/docs": (DOCS_DIR / "index.html", "text/html; charset=utf-8"),
    "/docs/init.js": (DOCS_DIR / "init.js", "text/javascript; charset=utf-8"),
    "/docs/docs.css": (DOCS_DIR / "docs.css", "text/css; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": (
        SWAGGER_DIR / "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
    ),
    "/docs/swagger-ui.css": (SWAGGER_DIR / "swagger-ui.css", "text/css; charset=utf-8"),
}
# Served without a key whatever PASEO_GATEWAY_PUBLIC_DOCS says: they hold nothing of the API.
PUBLIC_PATHS = frozenset(FILES)

pages = APIRouter(include_in_schema=False)
protected_openapi = APIRouter(include_in_schema=False)


def _route(path: str) -> None:
    file, media_type = FILES[path]

    async def serve() -> FileResponse:
        return FileResponse(file, media_type=media_type, headers=SECURITY_HEADERS)

    pages.add_api_route(path, serve, methods=["GET"], name=f"docs:{path}")


for _path in FILES:
    _route(_path)


@protected_openapi.get("/openapi.json")
async def openapi(request: Request, principal: Reader) -> JSONResponse:
    del principal
    return JSONResponse(request.app.openapi())
