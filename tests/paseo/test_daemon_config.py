"""Which daemons a gateway serves: the list form, the file form, and what each refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.paseo.daemon_config import (
    DEFAULT_DAEMON,
    BadDaemonConfig,
    DaemonSpec,
    load_daemon_file,
    parse_daemon_list,
)
from app.settings import Settings


def test_a_list_names_each_daemon_and_its_address() -> None:
    specs = parse_daemon_list(" a=127.0.0.1:7001, b=tcp://10.0.0.2:6767?password=s3cret ,")
    assert [(spec.name, spec.host) for spec in specs] == [
        ("a", "127.0.0.1:7001"),
        ("b", "tcp://10.0.0.2:6767?password=s3cret"),
    ]
    assert "s3cret" not in repr(specs)  # a spec may be logged; its host may hold a password


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("a", "must look like name=host:port"),
        ("a=", "must look like name=host:port"),
        ("A=127.0.0.1:1", "lowercase"),
        ("a=127.0.0.1:1,a=127.0.0.1:2", "given twice"),
        ("a=nowhere", "host:port"),
    ],
)
def test_a_bad_list_says_what_to_fix(text: str, says: str) -> None:
    with pytest.raises(BadDaemonConfig, match=says):
        parse_daemon_list(text)


def test_a_bad_entry_never_shows_its_password() -> None:
    with pytest.raises(BadDaemonConfig) as caught:
        parse_daemon_list("tcp://h:1?password=s3cret")
    assert "s3cret" not in str(caught.value)


def test_a_json_file_gives_each_daemon_its_roots_and_home(tmp_path: Path) -> None:
    path = tmp_path / "daemons.json"
    path.write_text(
        json.dumps(
            {
                "daemons": [
                    {"name": "a", "host": "127.0.0.1:7001", "workspace_roots": ["/srv/a"]},
                    {"name": "b", "host": "127.0.0.1:7002", "home": "/var/paseo-b"},
                ]
            }
        )
    )
    assert load_daemon_file(path) == [
        DaemonSpec("a", "127.0.0.1:7001", None, ("/srv/a",)),
        DaemonSpec("b", "127.0.0.1:7002", Path("/var/paseo-b"), ()),
    ]


def test_a_toml_file_works_the_same(tmp_path: Path) -> None:
    path = tmp_path / "daemons.toml"
    path.write_text(
        '[[daemons]]\nname = "build-1"\nhost = "10.0.0.5:6767"\nworkspace_roots = ["/work"]\n'
    )
    [spec] = load_daemon_file(path)
    assert (spec.name, spec.host, spec.workspace_roots) == ("build-1", "10.0.0.5:6767", ("/work",))


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{", "not valid"),
        ('{"daemons": {}}', "needs a list"),
        ('[{"host": "h:1"}]', "needs a `name`"),
        ('[{"name": "a"}]', "needs a `host`"),
        ('[{"name": "a", "host": "h:1", "roots": []}]', "unknown keys"),
        ('[{"name": "a", "host": "h:1", "workspace_roots": "/x"}]', "list of paths"),
    ],
)
def test_a_bad_file_says_what_to_fix(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "daemons.json"
    path.write_text(content)
    with pytest.raises(BadDaemonConfig, match=says):
        load_daemon_file(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadDaemonConfig, match="cannot read the daemons file"):
        load_daemon_file(tmp_path / "nope.json")


def test_without_a_list_the_one_daemon_is_paseo_host(tmp_path: Path) -> None:
    settings = Settings(paseo_host="127.0.0.1:7001", paseo_home=tmp_path, workspace_roots=["/srv"])  # type: ignore[call-arg]
    assert settings.daemon_specs() == [
        DaemonSpec(DEFAULT_DAEMON, "127.0.0.1:7001", tmp_path, ("/srv",))
    ]


def test_listed_daemons_share_the_gateways_roots_and_home(tmp_path: Path) -> None:
    settings = Settings(
        daemons="a=127.0.0.1:7001,b=127.0.0.1:7002", paseo_home=tmp_path, default_cwd="/work"
    )  # type: ignore[call-arg]
    assert [(s.name, s.home, s.workspace_roots) for s in settings.daemon_specs()] == [
        ("a", tmp_path, ("/work",)),
        ("b", tmp_path, ("/work",)),
    ]


def test_settings_with_an_unusable_list_refuse_to_start() -> None:
    with pytest.raises(ValidationError, match="must look like name=host:port"):
        Settings(daemons="just-a-name")  # type: ignore[call-arg]


def test_the_command_names_a_bad_list_without_a_traceback_or_its_password(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PASEO")}
    env["PASEO_GATEWAY_DAEMONS"] = "a=127.0.0.1:1,tcp://h:1?password=s3cret"
    done = subprocess.run(
        [sys.executable, "-m", "app", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "bad configuration" in done.stderr and "must look like name=host:port" in done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout
