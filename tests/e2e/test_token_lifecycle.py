"""Tokens across real processes: the HTTP services run verify-only (public key only), the CLI mints with
the private key; `carepath token revoke` is seen at once by both services; feed tokens work on the feed
only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack, carepath_command

pytestmark = pytest.mark.e2e


def _cli(stack: Stack, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*carepath_command(), *args], env=env, cwd=stack.workdir, capture_output=True, text=True, timeout=120
    )


def test_verify_only_services_and_revocation_across_processes(stack_factory: Stack, tmp_path: Path) -> None:
    stack = stack_factory
    key_file = tmp_path / "keys" / "signing.pem"
    public = _cli(stack, stack.env, "token", "keygen", "--out", str(key_file))
    assert public.returncode == 0, public.stderr
    minting = {**stack.env, "CAREPATH_TOKEN_SIGNING_KEY": str(key_file)}
    stack.env = {**stack.env, "CAREPATH_TOKEN_VERIFY_KEYS": public.stdout}  # the services: public key only
    stack.run("migrate")
    stack.start("intake", "notifications")
    stack.wait_ready()
    assert not (Path(stack.env["CAREPATH_VAR_DIR"]) / "token-signing.pem").exists()
    assert _cli(stack, stack.env, "token", "create", "--org", "org-e2e", "--role", "ops").returncode != 0

    token = _cli(stack, minting, "token", "create", "--org", "org-e2e", "--role", "coordinator").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{stack.intake_url}/v1/patients", json={"external_id": "MRN-T1"}, headers=headers)
    assert created.status_code == 201
    assert httpx.get(f"{stack.notifications_url}/v1/reminders", headers=headers).status_code == 200

    feed = _cli(stack, minting, "token", "feed", "--org", "org-e2e").stdout.strip()
    assert httpx.get(f"{stack.notifications_url}/v1/reminders.ics", params={"token": feed}).status_code == 200
    assert httpx.get(f"{stack.notifications_url}/v1/reminders.ics", params={"token": token}).status_code == 401
    assert (
        httpx.get(f"{stack.intake_url}/v1/patients/x/pathway", headers={"Authorization": f"Bearer {feed}"}).status_code
        == 401
    )

    revoked = _cli(stack, stack.env, "token", "revoke", token)  # revoking needs the public key only
    assert revoked.returncode == 0, revoked.stderr
    assert (
        httpx.post(f"{stack.intake_url}/v1/patients", json={"external_id": "MRN-T2"}, headers=headers).status_code
        == 401
    )
    assert httpx.get(f"{stack.notifications_url}/v1/reminders", headers=headers).status_code == 401
    assert _cli(stack, minting, "token", "revoke", feed).returncode == 0
    assert httpx.get(f"{stack.notifications_url}/v1/reminders.ics", params={"token": feed}).status_code == 401
