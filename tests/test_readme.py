"""README and docs/: the walk-through runs as pasted, and what they show is what the code does.

The `sh` (and `python`) blocks of WALKTHROUGH's sections run in that order in one shell: they
start the fake daemon and a real gateway, create a session, stream prompts, resume a stream,
use the OpenAI-compatible API and the `paseo-gateway` commands, and stop it all. Only the
ports and the demo folder are changed (so the test never takes port 8000, 6767 or 8011 from
anyone). A `text` block right after a run block is that block's output, where `…` stands for
anything within a line (`d5cca9de-…` for any id) and a line of only `…` for any number of
lines; a `console` block
with output lines in CONSOLE_SECTIONS is run (its `$ ` line, in an empty folder without
settings) and compared the same way. The errors table is checked against the codes in
`app/`, and every relative link against the files and headings it names.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

import app.api.openai as openai_routes
import app.api.openai_chunks as openai_chunks
import app.api.problems as problems
from app.errors import GatewayError
from app.paseo.daemon_config import load_daemon_file, parse_daemon_list
from tests.fakes.harness import FAKE_PASEO_BIN

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md")))
# (file, section) in the order they run; None: the whole file. The README's section ends with
# the block that stops the demo: it runs last.
WALKTHROUGH: tuple[tuple[str, str | None], ...] = (
    ("README.md", "## Try it without Paseo"),
    ("docs/tour.md", None),
    ("docs/events.md", "## Resuming a stream"),
    ("docs/openai.md", None),
    ("docs/operating.md", "## The commands"),
    ("docs/operating.md", "## API keys on the command line"),
)
CONSOLE_SECTIONS = (("docs/operating.md", "## The commands"),)
CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RUN_SECONDS = 240
MARKER = "@@ readme block {} @@"


@dataclass(frozen=True)
class Example:
    where: str
    code: str  # a shell script
    output: str | None  # the text block shown after it


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _section(path: str, title: str | None) -> str:
    text = (ROOT / path).read_text()
    if title is None:
        return text
    start = text.index(title + "\n")
    end = text.find("\n" + title.split()[0] + " ", start + len(title))
    return text[start : end if end > 0 else None]


def _examples(path: str, title: str | None) -> list[Example]:
    """The section's run blocks (a `python` block as the shell command that runs it), each
    with the `text` block that follows it, if any."""
    text = _section(path, title)
    blocks = list(CODE_BLOCK.finditer(text))
    examples = []
    for block, after in zip(blocks, [*blocks[1:], None], strict=True):
        language, code = block.group(1), block.group(2)
        if language not in ("sh", "python"):
            continue
        if language == "python":
            code = f"{sys.executable} - <<'PY'\n{code}PY\n"
        shown = None
        if after and after.group(1) == "text" and not text[block.end() : after.start()].strip():
            shown = after.group(2)
        examples.append(Example(f"{path} {title or ''}".strip(), code, shown))
    return examples


def readme_walkthrough() -> list[Example]:
    examples = [example for section in WALKTHROUGH for example in _examples(*section)]
    [stop] = [example for example in examples if "daemon stop" in example.code]
    return [example for example in examples if example is not stop] + [stop]


def _pattern(shown: str) -> re.Pattern[str]:
    """`…` is anything within a line (so is an id shown as its first 8 digits and `-…`); a line
    of only `…`, any number of lines."""
    parts = []
    for line in shown.strip("\n").splitlines():
        if line == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = re.split(r"(?:\b[0-9a-f]{8}-)?…", line)
            parts.append(".*?".join(re.escape(piece) for piece in pieces) + "\n")
    return re.compile("".join(parts))


def assert_shows(where: str, shown: str, actual: str) -> None:
    actual = actual.strip("\n") + "\n"
    assert _pattern(shown).fullmatch(actual), (
        f"{where}: the output shown is not what the code prints.\n"
        f"Shown:\n{shown}\nPrinted:\n{actual}"
    )


def test_the_walkthrough_has_the_steps_a_new_user_needs() -> None:
    script = "\n".join(example.code for example in readme_walkthrough())
    steps = (
        "daemon start",
        "paseo-gateway serve",
        "/sessions",
        "/prompt",
        "TURN=",
        "Last-Event-ID",
        "/v1/",
        "paseo-gateway migrate",
        "paseo-gateway check",
        "keys revoke",
        "kill",
    )
    for step in steps:
        assert step in script


def test_readme_walkthrough_runs_as_pasted(tmp_path: Path) -> None:
    port, daemon_port, receiver_port = _free_port(), _free_port(), _free_port()
    examples = readme_walkthrough()
    marked = (
        f"printf '\\n{MARKER.format(n)}\\n'\n{example.code}" for n, example in enumerate(examples)
    )
    script = "\n".join(marked)
    script = (
        script.replace("localhost:8000", f"127.0.0.1:{port}")
        .replace("127.0.0.1:6767", f"127.0.0.1:{daemon_port}")
        .replace("127.0.0.1:8011", f"127.0.0.1:{receiver_port}")
        .replace("/tmp/paseo-demo", str(tmp_path))
        .replace(".venv/bin/paseo-gateway", f"{sys.prefix}/bin/paseo-gateway")
        .replace("paseo-gateway serve", f"paseo-gateway serve --port {port}")
    )
    env = {name: value for name, value in os.environ.items() if "PASEO_GATEWAY" not in name}
    env["PASEO_HOME"] = str(tmp_path)
    shell = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=RUN_SECONDS)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
        subprocess.run(
            [str(FAKE_PASEO_BIN), "daemon", "stop", "--home", str(tmp_path)],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    log = tmp_path / "gateway.log"
    assert shell.returncode == 0, output + (log.read_text() if log.exists() else "")
    output = (
        output.replace("\r\n", "\n")
        .replace(str(tmp_path), "/tmp/paseo-demo")
        .replace(f"127.0.0.1:{daemon_port}", "127.0.0.1:6767")
        .replace(f"127.0.0.1:{port}", "localhost:8000")
    )
    printed = re.split(r"^@@ readme block \d+ @@\n", output, flags=re.MULTILINE)[1:]
    assert len(printed) == len(examples), output
    for example, actual in zip(examples, printed, strict=True):
        if example.output is not None:
            assert_shows(example.where, example.output, actual)
    # What the walk-through is for, whatever the samples say.
    assert "event: turn.completed" in output
    assert "\nstress-update-0stress-update-1stress-update-2\n" in output  # the OpenAI client's
    assert "data: [DONE]" in output


def test_the_console_examples_print_what_they_show(tmp_path: Path) -> None:
    """Each `console` block with output: its `$ ` line run in an empty folder, no settings."""
    env = {name: value for name, value in os.environ.items() if "PASEO_GATEWAY" not in name}
    checked = 0
    for path, title in CONSOLE_SECTIONS:
        for language, block in CODE_BLOCK.findall(_section(path, title)):
            command, _, shown = block.partition("\n")
            if language != "console" or not shown.strip():
                continue
            assert command.startswith("$ "), block
            run = command.removeprefix("$ ").replace(".venv/bin/", f"{sys.prefix}/bin/")
            folder = tmp_path / str(checked)
            folder.mkdir()
            result = subprocess.run(
                ["bash", "-c", run],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
                check=False,
            )
            assert_shows(f"{path} {title}", shown, result.stdout)
            checked += 1
    assert checked


def test_no_example_has_a_placeholder_to_fill_in() -> None:
    """`<id>` in a shell is a redirection: examples take values from variables set earlier."""
    for path in DOCS:
        for language, code in CODE_BLOCK.findall((ROOT / path).read_text()):
            if language in ("sh", "console"):
                assert not re.search(r"(?<!<)<[a-z][a-z_ -]*>", code), (path, code)


def _anchor(heading: str) -> str:
    """GitHub's id for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_lead_somewhere() -> None:
    for path in DOCS:
        text = (ROOT / path).read_text()
        outside_code = CODE_BLOCK.sub("", text)
        for target, anchor in re.findall(
            r"\]\((?!https?:)([^)#\s]*)(?:#([^)\s]+))?\)", outside_code
        ):
            file = (ROOT / path).parent / target if target else ROOT / path
            assert file.is_file(), (path, target)
            if anchor:
                headings = re.findall(r"^#+ (.+)$", CODE_BLOCK.sub("", file.read_text()), re.M)
                assert anchor in {_anchor(heading) for heading in headings}, (path, target, anchor)


def _codes_in_the_table() -> dict[str, set[str]]:
    """code -> the statuses it is listed with, from every table of docs/errors.md."""
    listed: dict[str, set[str]] = {}
    for status, code in re.findall(
        r"^\| (\d{3}|any) \| `([a-z_]+)` \|", (ROOT / "docs/errors.md").read_text(), re.M
    ):
        listed.setdefault(code, set()).add(status)
    return listed


def _gateway_errors(cls: type[GatewayError] = GatewayError) -> list[type[GatewayError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _gateway_errors(child))]


def test_the_errors_table_lists_every_code_the_app_answers_with() -> None:
    produced = {error.code: str(error.status) for error in _gateway_errors()}
    handlers = inspect.getsource(problems)
    for status, code in re.findall(
        r"(?:problem_response|openai_error_response)\(\s*(\d{3}),\s*\"([a-z_]+)\"", handlers
    ):
        produced[code] = status
    for status, code in re.findall(
        r"(\d{3}): \"([a-z_]+)\"", inspect.getsource(problems._http_error)
    ):
        produced[code] = status
    assert '"http_error"' in handlers
    produced["http_error"] = "any"
    produced[openai_routes.SHUTDOWN_CODE] = "503"
    for event, code in openai_chunks.FAILURE_CODE.items():
        produced[code] = str(openai_chunks.FAILURE_STATUS[event])
    listed = _codes_in_the_table()
    missing = {code: status for code, status in produced.items() if code not in listed}
    assert not missing, f"docs/errors.md lacks these codes (code: status): {missing}"
    unknown = set(listed) - set(produced)
    assert not unknown, f"docs/errors.md lists codes the app does not produce: {unknown}"
    wrong = {code: listed[code] for code, status in produced.items() if status not in listed[code]}
    assert not wrong, f"docs/errors.md gives these codes another status: {wrong}"


def test_the_several_daemons_examples_are_what_the_gateway_accepts(tmp_path: Path) -> None:
    """The page's daemon list and file parse as the gateway parses them at start, and the
    compose file hands both replicas that file as a secret kept out of git and the image."""
    section = _section("docs/several-daemons.md", None)
    [listed] = re.findall(r"^PASEO_GATEWAY_DAEMONS='([^']+)'$", section, re.MULTILINE)
    assert [spec.name for spec in parse_daemon_list(listed)] == ["build-1", "build-2"]
    [toml] = re.findall(r"^```toml\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    (tmp_path / "daemons.toml").write_text(toml)
    specs = load_daemon_file(tmp_path / "daemons.toml")
    assert [(spec.name, spec.workspace_roots) for spec in specs] == [
        ("build-1", ("/srv/work",)),
        ("gpu-1", ("/srv/work", "/srv/models")),
    ]
    compose = yaml.safe_load((ROOT / "compose.daemons.yaml").read_text())
    secret = compose["secrets"]["paseo-daemons"]["file"]
    for name in ("gateway-1", "gateway-2"):
        service = compose["services"][name]
        assert service["environment"]["PASEO_GATEWAY_DAEMONS_FILE"] == "/run/secrets/paseo-daemons"
        assert service["secrets"] == ["paseo-daemons"]
    for ignore in (".gitignore", ".dockerignore"):
        assert Path(secret).name in (ROOT / ignore).read_text().split()
