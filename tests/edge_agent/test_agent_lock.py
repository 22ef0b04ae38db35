"""One agent per data directory: a second one refuses to start and names the first."""

from __future__ import annotations

import os

import pytest

from edge_agent.agent import AlreadyRunning, lock_data_dir
from edge_agent.config import load_config


def test_a_second_agent_on_the_same_data_directory_is_refused(tmp_path):
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(tmp_path), "EDGE_POS_PORT": "loop://"})
    fd = lock_data_dir(config)
    try:
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            lock_data_dir(config)
    finally:
        os.close(fd)
    os.close(lock_data_dir(config))  # released with its holder


def test_a_data_directory_that_is_gone_is_a_readable_error_not_a_traceback(tmp_path):
    from edge_agent.keys import DataDirError

    missing = tmp_path / "gone"
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(missing), "EDGE_POS_PORT": "loop://"})
    with pytest.raises(DataDirError, match=f"data directory {missing} does not exist"):
        lock_data_dir(config)
    assert not missing.exists()
