"""The FastAPI baseline: one route answering a small JSON body, nothing else.

Served by `uvicorn hello_fastapi:app` (benchmarks/ratios.py starts it, one process, as the
gateway runs), so a gateway route's req/s can be read as a share of what FastAPI itself
reaches on this machine with this client. No middleware, no dependencies, no database.
Not a test, and not a benchmark of its own.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/")
async def hello() -> dict[str, str]:
    """FastAPI's own first example: a dict, validated and encoded as JSON."""
    return {"message": "Hello World"}
