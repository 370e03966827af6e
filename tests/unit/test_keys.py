"""API keys of `shoal serve`: only hashes on disk, atomic 0600 writes, lookups in constant time,
graph allow-lists, scopes, and the `shoal keys` / `shoal serve` refusals through the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.service.keys import (
    ANY_GRAPH,
    ApiKey,
    KeysFileError,
    KeyStore,
    add_key,
    read_keys,
    remove_key,
    write_keys,
)
from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart" / "graph.yaml"
runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_stores_only_the_hash_with_mode_0600(tmp_path: Path):
    path = tmp_path / "sub" / "keys.json"
    key = add_key(path, "ops")
    assert key.startswith("shoal_") and len(key) == len("shoal_") + 43
    raw = path.read_text()
    assert key not in raw and key[len("shoal_"):] not in raw
    data = json.loads(raw)
    [entry] = data["keys"]
    assert entry["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert entry["name"] == "ops" and entry["graphs"] == [ANY_GRAPH] and entry["created"]
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert add_key(path, "other") != key  # random each time


def test_rewrite_is_atomic_and_keeps_0600_whatever_the_umask(tmp_path: Path):
    path = tmp_path / "keys.json"
    old = os.umask(0o000)
    try:
        add_key(path, "a")
        add_key(path, "b")
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "keys.json"
    add_key(path, "a")
    before = path.read_bytes()

    def broken(self: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", broken)
    with pytest.raises(OSError, match="No space left"):
        add_key(path, "b")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def test_lookup_known_unknown_and_graph_allow_list(tmp_path: Path):
    path = tmp_path / "keys.json"
    anyk = add_key(path, "any")
    only = add_key(path, "only", ["healthcare-cascade", "quickstart"])
    store = KeyStore(path)
    found = store.lookup(anyk)
    assert found is not None and found.name == "any" and found.allows("whatever")
    scoped = store.lookup(only)
    assert scoped is not None and scoped.allows("quickstart")
    assert not scoped.allows("other-graph")
    assert store.lookup("shoal_" + "x" * 43) is None
    assert store.lookup("") is None
    assert store.lookup(anyk + "x") is None


def test_lookup_compares_every_hash_with_compare_digest(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "keys.json"
    first = add_key(path, "a")
    add_key(path, "b")
    add_key(path, "c")
    store = KeyStore(path)
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert store.lookup(first) is not None
    assert len(calls) == 3  # no early exit on the first match


def test_store_sees_keys_added_and_removed_while_it_runs(tmp_path: Path):
    path = tmp_path / "keys.json"
    add_key(path, "a")
    store = KeyStore(path)
    late = add_key(path, "late")
    assert store.lookup(late) is not None
    assert remove_key(path, "late")
    assert store.lookup(late) is None
    assert not remove_key(path, "late")


def test_a_broken_or_removed_file_lets_no_key_in(tmp_path: Path):
    path = tmp_path / "keys.json"
    key = add_key(path, "a")
    store = KeyStore(path)
    path.write_text("{not json")
    assert store.lookup(key) is None
    path.unlink()
    assert store.lookup(key) is None
    key = add_key(path, "b")
    assert store.lookup(key) is not None


def test_scopes_default_to_run_are_written_and_read_back(tmp_path: Path):
    path = tmp_path / "keys.json"
    plain = add_key(path, "plain")
    reviewer = add_key(path, "reviewer", scopes=["review"])
    both = add_key(path, "both", scopes=["review", "run", "review"])
    stored = {e["name"]: e["scopes"] for e in json.loads(path.read_text())["keys"]}
    assert stored == {"plain": ["run"], "reviewer": ["review"], "both": ["review", "run"]}
    assert {k.name: k.scopes for k in read_keys(path)} == {
        "plain": ("run",), "reviewer": ("review",), "both": ("review", "run")}
    store = KeyStore(path)
    for key, run, review in ((plain, True, False), (reviewer, False, True), (both, True, True)):
        found = store.lookup(key)
        assert found is not None
        assert (found.has_scope("run"), found.has_scope("review")) == (run, review)


def test_a_keys_file_written_before_scopes_reads_as_run(tmp_path: Path):
    path = tmp_path / "keys.json"
    old = {"shoal_keys": 1, "keys": [{"name": "ops", "sha256": "a" * 64, "graphs": ["*"],
                                      "created": "2026-01-01T00:00:00+00:00"}]}
    path.write_text(json.dumps(old))
    [key] = read_keys(path)
    assert key.scopes == ("run",) and key.graphs == ("*",)
    added = add_key(path, "reviewer", scopes=["review"])  # the old entry is kept as it was
    keys = read_keys(path)
    assert [(k.name, k.scopes) for k in keys] == [("ops", ("run",)), ("reviewer", ("review",))]
    assert KeyStore(path).lookup(added) is not None
    assert json.loads(path.read_text())["shoal_keys"] == 1


def test_unknown_or_empty_scopes_are_refused(tmp_path: Path):
    path = tmp_path / "keys.json"
    with pytest.raises(ValueError, match=r"unknown scope 'admin' \(known: run, review\)"):
        add_key(path, "x", scopes=["run", "admin"])
    assert not path.exists()
    for scopes in (["admin"], [], "run", [5]):
        path.write_text(json.dumps({"shoal_keys": 1, "keys": [
            {"name": "a", "sha256": "0" * 64, "graphs": ["*"], "scopes": scopes}]}))
        with pytest.raises(KeysFileError, match=r"entry 0: .*scope"):
            read_keys(path)
    write_keys(path, [ApiKey(name="a", sha256="0" * 64, graphs=("*",), created="")])
    assert read_keys(path)[0].scopes == ("run",)


@pytest.mark.parametrize("body", [
    "{not json",
    json.dumps({"keys": []}),
    json.dumps({"shoal_keys": 1, "keys": [{"name": "a", "sha256": "short", "graphs": ["*"]}]}),
    json.dumps({"shoal_keys": 1, "keys": [{"name": "a b", "sha256": "0" * 64,
                                           "graphs": ["*"]}]}),
    json.dumps({"shoal_keys": 1, "keys": [{"name": "a", "sha256": "0" * 64, "graphs": []}]}),
])
def test_malformed_files_are_refused_naming_the_file(tmp_path: Path, body: str):
    path = tmp_path / "keys.json"
    path.write_text(body)
    with pytest.raises(KeysFileError, match=str(path)):
        read_keys(path)


def test_names_are_checked_and_unique(tmp_path: Path):
    path = tmp_path / "keys.json"
    add_key(path, "ops")
    with pytest.raises(ValueError, match="exists already"):
        add_key(path, "ops")
    with pytest.raises(ValueError, match="invalid key name"):
        add_key(path, "has space")
    with pytest.raises(ValueError, match="invalid graph name"):
        add_key(path, "x", ["bad/graph"])
    assert [k.name for k in read_keys(path)] == ["ops"]


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_keys_add_prints_the_key_once_and_list_never_shows_hashes(tmp_path: Path):
    path = tmp_path / "keys.json"
    added = runner.invoke(app, ["keys", "add", "ops", "--keys", str(path)])
    assert added.exit_code == 0, added.output
    [key] = added.stdout.splitlines()
    assert key.startswith("shoal_")
    assert "shown only now" in added.stderr
    scoped = runner.invoke(app, ["keys", "add", "triage-bot", "--graph", "healthcare-cascade",
                                 "--graph", "quickstart", "--keys", str(path)])
    assert scoped.exit_code == 0, scoped.output
    listed = runner.invoke(app, ["keys", "list", "--keys", str(path)])
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [("ops", "*"),
                                            ("triage-bot", "healthcare-cascade,quickstart")]
    for entry in json.loads(path.read_text())["keys"]:
        assert entry["sha256"] not in listed.output
    assert key not in listed.output
    assert all(r[3] == "run" for r in rows)
    dup = runner.invoke(app, ["keys", "add", "ops", "--keys", str(path)])
    assert dup.exit_code == 2 and "exists already" in dup.stderr
    removed = runner.invoke(app, ["keys", "remove", "ops", "--keys", str(path)])
    assert removed.exit_code == 0
    assert [k.name for k in read_keys(path)] == ["triage-bot"]


def test_cli_keys_add_scope_is_repeatable_and_checked(tmp_path: Path):
    path = tmp_path / "keys.json"
    reviewer = runner.invoke(app, ["keys", "add", "reviewer", "--scope", "review",
                                   "--keys", str(path)])
    assert reviewer.exit_code == 0, reviewer.output
    assert "scopes review" in reviewer.stderr
    both = runner.invoke(app, ["keys", "add", "both", "--scope", "run", "--scope", "review",
                               "--keys", str(path)])
    assert both.exit_code == 0, both.output
    assert {k.name: k.scopes for k in read_keys(path)} == {"reviewer": ("review",),
                                                           "both": ("run", "review")}
    listed = runner.invoke(app, ["keys", "list", "--keys", str(path)])
    assert [line.split("\t")[3] for line in listed.stdout.splitlines()] == ["review",
                                                                           "run,review"]
    bad = runner.invoke(app, ["keys", "add", "x", "--scope", "admin", "--keys", str(path)])
    assert bad.exit_code == 2 and "unknown scope 'admin'" in bad.stderr
    assert [k.name for k in read_keys(path)] == ["reviewer", "both"]


def test_cli_keys_default_file_is_shoal_keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "env-keys.json"
    monkeypatch.setenv("SHOAL_KEYS", str(path))
    assert runner.invoke(app, ["keys", "add", "ops"]).exit_code == 0
    assert [k.name for k in read_keys(path)] == ["ops"]
    monkeypatch.delenv("SHOAL_KEYS")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["keys", "add", "local"]).exit_code == 0
    assert [k.name for k in read_keys(tmp_path / ".shoal" / "keys.json")] == ["local"]


def test_serve_refuses_to_start_without_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOAL_KEYS", str(tmp_path / "missing.json"))
    result = runner.invoke(app, ["serve", str(QUICKSTART)])
    assert result.exit_code == 2
    assert "no keys file" in result.stderr and "--no-auth" in result.stderr
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"shoal_keys": 1, "keys": []}))
    result = runner.invoke(app, ["serve", str(QUICKSTART), "--keys", str(empty)])
    assert result.exit_code == 2 and "holds no keys" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("[]")
    result = runner.invoke(app, ["serve", str(QUICKSTART), "--keys", str(broken)])
    assert result.exit_code == 2 and str(broken) in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org", "::"])
def test_serve_no_auth_only_on_loopback(host: str):
    result = runner.invoke(app, ["serve", str(QUICKSTART), "--no-auth", "--host", host])
    assert result.exit_code == 2
    assert "--no-auth is allowed only on a loopback address" in result.stderr
