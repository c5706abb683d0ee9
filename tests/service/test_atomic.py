"""The one atomic file writer: whole old or whole new content, owner-only by default, no leftovers."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from service import atomic


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_replaces_whole_and_private_unless_told(tmp_path: Path) -> None:
    key = tmp_path / "tls" / "node.pem"  # the directory is made, owner-only
    atomic.write(key, b"old")
    atomic.write(key, "mới")
    assert key.read_text(encoding="utf-8") == "mới" and mode(key) == 0o600
    assert mode(key.parent) == 0o700
    cert = tmp_path / "tls" / "ca.crt"
    atomic.write(cert, b"cert", private=False)
    assert mode(cert) == 0o644
    assert sorted(p.name for p in key.parent.iterdir()) == ["ca.crt", "node.pem"]


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    (target / "inside").mkdir(parents=True)  # a non-empty directory cannot be replaced by a file
    with pytest.raises(OSError):
        atomic.write(target, b"x" * 100_000)
    assert (target / "inside").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_concurrent_writers_never_show_a_mix(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    contents = [bytes([65 + i]) * 200_000 for i in range(4)]
    atomic.write(path, contents[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def writer(data: bytes) -> None:
        for _ in range(20):
            atomic.write(path, data)

    def reader() -> None:
        while not stop.is_set():
            seen.add(path.read_bytes())

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert seen <= set(contents) and path.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["hub.toml"]


def test_move_puts_a_finished_file_in_place(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    part = tmp_path / "partial" / "abc"
    part.write_bytes(b"scan")
    final = tmp_path / "ab" / "abc"
    final.parent.mkdir()
    atomic.move(part, final)
    assert final.read_bytes() == b"scan" and not part.exists()
