"""Schemathesis against the live gateway's /openapi.json: with a key, no 5xx and nothing that
breaks the documented schema; without a key, nothing but 401 outside the public routes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    TEST_ADMIN_KEY,
    TRANSPORTS,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.fakes.harness import FakePaseoDaemon

# Each run generates several hundred requests; on a busy 2-core machine that takes minutes.
pytestmark = pytest.mark.timeout(900)

# Schemathesis's command line (the `st` script), run with every AST construction serialised.
# CPython before 3.11.8 and 3.12.2 keeps the AST constructor's recursion counter in one global
# per interpreter (python/cpython#106905, fixed by GH-113035): when two threads turn parsed
# source into `ast` objects at once, and a garbage collection in one lets the other run, both
# count on the same counter and one fails with `SystemError: AST constructor recursion depth
# mismatch`. With --workers 2, both of schemathesis's worker threads call `ast.parse` while
# generating (Hypothesis reads the source of `.filter()`/`.map()` lambdas to describe and
# rewrite them): a few calls overlap in every run, and on a loaded machine one of them failed.
# One lock around `compile(..., PyCF_ONLY_AST)` (what `ast.parse` calls) removes the overlap;
# harmless on a fixed Python. (The wrapper passes on the __future__ flags that the builtin would
# otherwise take from its caller's code, so other compiles behave as before.)
ST = [
    sys.executable,
    "-c",
    """\
import __future__, ast, builtins, contextlib, sys, threading

_lock, _compile, _futures = threading.RLock(), builtins.compile, 0
for _feature in __future__.all_feature_names:
    _futures |= getattr(__future__, _feature).compiler_flag

def compile(source, filename, mode, flags=0, dont_inherit=False, *args, **kwargs):
    if not dont_inherit:  # the __future__ flags the builtin takes from its caller's code
        flags |= sys._getframe(1).f_code.co_flags & _futures
    with _lock if flags & ast.PyCF_ONLY_AST else contextlib.nullcontext():
        return _compile(source, filename, mode, flags, True, *args, **kwargs)

builtins.compile = compile
from schemathesis.cli import schemathesis

sys.argv[0] = "st"
sys.exit(schemathesis())
""",
]
CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)
PUBLIC = {"/healthz", "/readyz", "/docs", "/openapi.json"}
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>[^ ?]*)[^ ]* HTTP/1\.1" (?P<status>\d{3})')


@pytest.fixture(scope="module", params=TRANSPORTS)
def fuzzed_gateway(
    request: pytest.FixtureRequest,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """On each transport: the daemon's silent failures are where a 5xx would hide."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with empty_database("sqlite", folder) as url:
        gateway = start_gateway(
            folder,
            gateway_env(
                url,
                fake_daemon,
                agent_cwd,
                PASEO_GATEWAY_PROMPT_RATE_LIMIT_PER_MINUTE="0",
                PASEO_GATEWAY_TRANSPORT=request.param,
            ),
        )
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


def _schemathesis(gateway: Gateway, *extra: str) -> tuple[int, str]:
    result = subprocess.run(
        [
            *ST,
            "run",
            f"{gateway.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "10",
            "--workers",
            "2",
            "--request-timeout",
            "60",
            # Revoking keys would revoke the very key the run uses.
            "--exclude-path",
            "/keys/{key_id}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=gateway.log_path.parent,  # schemathesis keeps a cache in its working directory
    )
    output = result.stdout + result.stderr
    return result.returncode, output


def _generated(output: str) -> int:
    found = re.search(r"(\d+) generated", output)
    assert found, output[-3000:]
    return int(found.group(1))


def test_fuzzing_with_a_key_finds_nothing(
    fuzzed_gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    status, output = _schemathesis(
        fuzzed_gateway, "--header", f"Authorization: Bearer {TEST_ADMIN_KEY}"
    )
    generated = _generated(output)
    with capsys.disabled():
        print(f"\nschemathesis with a key: {generated} generated cases")
    assert status == 0, output[-6000:]
    assert generated > 300


def test_without_a_key_only_public_routes_answer(
    fuzzed_gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(fuzzed_gateway.log().splitlines())
    # Without inventing credentials for the documented bearer scheme either.
    status, output = _schemathesis(fuzzed_gateway, "--generation-with-security-parameters", "false")
    generated = _generated(output)
    matches = [
        match
        for line in fuzzed_gateway.log().splitlines()[before:]
        if (match := ACCESS_LINE.search(line))
    ]
    answers = Counter((match["path"] in PUBLIC, match["status"]) for match in matches)
    with capsys.disabled():
        print(f"\nschemathesis without a key: {generated} generated cases, {dict(answers)}")
    assert status == 0, output[-6000:]
    protected = {code for (public, code) in answers if not public}
    assert protected <= {"401", "404"} and "401" in protected
    # A 404 without a key is a path no route serves: it is a 404 with a key too.
    unserved = {(m["method"], m["path"]) for m in matches if m["status"] == "404"}
    with httpx.Client(base_url=fuzzed_gateway.url, timeout=30) as client:
        for method, path in unserved:
            keyed = client.request(method, path, headers=AUTH)
            assert (keyed.status_code, keyed.json()["code"]) == (404, "route_not_found"), path
    assert sum(answers.values()) > 300
