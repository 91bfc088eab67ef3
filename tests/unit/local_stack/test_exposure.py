"""What the local stack exposes: moto on loopback whatever the API's address, state files
for their owner only, and ports free again right after a stop."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from devstack.cli import build_parser
from devstack.stack import (
    LocalStack,
    StackConfig,
    exposure_warning,
    port_is_free,
    private_dir,
    write_private,
)


def test_moto_stays_on_loopback_when_the_api_listens_elsewhere() -> None:
    args = build_parser().parse_args(["local", "--host", "0.0.0.0"])
    config = StackConfig(host=args.host, s3_host=args.s3_host)
    assert config.host == "0.0.0.0"
    assert LocalStack(config).s3_endpoint.startswith("http://127.0.0.1:")
    assert exposure_warning(config.s3_host) is None


def test_moto_elsewhere_needs_its_own_flag_and_is_warned_about() -> None:
    args = build_parser().parse_args(["local", "--s3-host", "0.0.0.0"])
    assert args.s3_host == "0.0.0.0"
    warning = exposure_warning(args.s3_host)
    assert warning is not None
    assert "no authentication" in warning
    assert exposure_warning("localhost") is None
    assert exposure_warning("::1") is None


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_files_are_for_their_owner_only(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state")
    assert _mode(state) == 0o700
    key = state / "api-key"
    key.write_text("from an older version\n")
    key.chmod(0o644)
    write_private(key, "secret\n")
    assert _mode(key) == 0o600
    assert key.read_text() == "secret\n"
    fresh = state / "stack.json"
    old_umask = os.umask(0)  # even a permissive umask does not widen it
    try:
        write_private(fresh, "{}\n")
    finally:
        os.umask(old_umask)
    assert _mode(fresh) == 0o600


def test_a_shared_state_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # as /tmp
    private_dir(shared)
    assert _mode(shared) == 0o1777


def test_a_port_just_released_with_connections_in_time_wait_is_free() -> None:
    # After Ctrl-C the stack's closed connections linger in TIME_WAIT; `make local` must
    # start again at once on the same ports, as its servers (SO_REUSEADDR) can.
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end goes to TIME_WAIT
    server.close()
    client.close()
    assert port_is_free("127.0.0.1", port)
