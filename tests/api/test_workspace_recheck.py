"""A session's folder is checked again just before its agent is created."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.api.test_prompt import INSTANT
from tests.api.test_sessions import assert_problem


async def test_a_folder_swapped_for_a_symlink_out_of_the_roots_is_refused(
    client: httpx.AsyncClient, agent_cwd: Path
) -> None:
    folder = agent_cwd / f"swap-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    created = await client.post("/sessions", json={"cwd": str(folder)})
    assert created.status_code == 201, created.text
    session = created.json()
    folder.rmdir()
    folder.symlink_to("/etc")  # after the create-time check, before the first prompt

    prompt = await client.post(f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT})

    problem = assert_problem(prompt, 422, "invalid_input")
    assert "outside the workspace roots" in problem["detail"]
    after = (await client.get(f"/sessions/{session['id']}")).json()
    assert after["agent_id"] is None  # no agent was made in /etc
    agents = await client.get("/agents", params={"label": f"gateway.session={session['id']}"})
    assert agents.status_code == 200 and agents.json() == []
