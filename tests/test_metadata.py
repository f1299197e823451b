"""Run metadata: the environment record, the git state and the versions cell."""

import datetime
import re
import subprocess
from importlib import metadata as importlib_metadata

import jax
import pytest

from ntkbench.metadata import environment, git_state, versions_text

SHA = re.compile(r"[0-9a-f]{40}")


def git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           "-c", "commit.gpgsign=false", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A fresh git repository with one commit of one tracked file."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / "tracked.txt").write_text("one\n")
    git(path, "add", "tracked.txt")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the unit tests run on the CPU backend")
def test_environment_records_device_stack_and_commit(repo):
    env = environment(repo)
    assert set(env) == {"date", "device_kind", "device_name", "device_count", "process_count", "jax_backend", "cpu",
                        "cpu_count", "platform", "python", "versions", "commit", "dirty"}
    assert (env["device_kind"], env["jax_backend"]) == ("cpu", "cpu")
    assert env["device_count"] == len(jax.devices()) >= 1 and env["process_count"] == 1
    assert env["versions"]["jax"] == importlib_metadata.version("jax")
    assert env["versions"]["neural-tangents"] == importlib_metadata.version("neural-tangents")
    assert (env["commit"], env["dirty"]) == (git(repo, "rev-parse", "HEAD"), False)
    assert isinstance(env["cpu"], str) and env["cpu"]
    date = datetime.datetime.fromisoformat(env["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - date) < datetime.timedelta(minutes=5)


def test_environment_outside_a_checkout(tmp_path):
    env = environment(tmp_path)
    assert (env["commit"], env["dirty"]) == ("unknown", None)


def test_git_state_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == ("unknown", None)


def test_git_state_of_a_repository_without_commits(tmp_path):
    git(tmp_path, "init", "-q")
    assert git_state(tmp_path) == ("unknown", None)


def test_git_state_of_a_clean_checkout(repo):
    commit, dirty = git_state(repo)
    assert SHA.fullmatch(commit) and commit == git(repo, "rev-parse", "HEAD")
    assert dirty is False


def test_an_untracked_file_does_not_make_it_dirty(repo):
    (repo / "untracked.txt").write_text("new\n")
    assert git_state(repo)[1] is False


def test_a_modified_tracked_file_makes_it_dirty(repo):
    commit = git_state(repo)[0]
    (repo / "tracked.txt").write_text("two\n")
    assert git_state(repo) == (commit, True)


@pytest.mark.parametrize("versions, text", [
    ({"jax": "0.10.2", "flax": "0.12.8", "neural-tangents": "0.6.5"}, "jax=0.10.2;flax=0.12.8;neural-tangents=0.6.5"),
    ({"mnist1d": "absent"}, "mnist1d=absent"),
    ({}, ""),
])
def test_versions_text_is_one_cell_in_the_given_order(versions, text):
    assert versions_text(versions) == text
