"""Schemathesis against the live gateway's /openapi.json: with a key, no 5xx and nothing that
breaks the documented schema; without a key, nothing but 401 outside the public routes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import (
    TEST_ADMIN_KEY,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.fakes.harness import FakePaseoDaemon

# Each run generates several hundred requests; on a busy 2-core machine that takes minutes.
pytestmark = pytest.mark.timeout(900)

ST = Path(sys.executable).with_name("st")
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


@pytest.fixture(scope="module")
def fuzzed_gateway(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("fuzz")
    with empty_database("sqlite", folder) as url:
        gateway = start_gateway(
            folder,
            gateway_env(
                url, fake_daemon, agent_cwd, PASEO_GATEWAY_PROMPT_RATE_LIMIT_PER_MINUTE="0"
            ),
        )
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


def _schemathesis(gateway: Gateway, *extra: str) -> tuple[int, str]:
    result = subprocess.run(
        [
            str(ST),
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
    answers = Counter(
        (match["path"] in PUBLIC, match["status"])
        for line in fuzzed_gateway.log().splitlines()[before:]
        if (match := ACCESS_LINE.search(line))
    )
    with capsys.disabled():
        print(f"\nschemathesis without a key: {generated} generated cases, {dict(answers)}")
    assert status == 0, output[-6000:]
    protected = {code for (public, code) in answers if not public}
    assert protected == {"401"}
    assert sum(answers.values()) > 300
