"""Run Python with the POSIX-only parts taken away, as close to Windows as Linux allows:
`python -m tests.edge_node.nonposix -m MODULE ARGS…` (e.g. `-m pytest …`, `-m edge_node serve …`).

Taken away before anything of ours is imported: the modules `fcntl`, `termios`, `tty`, `pty`,
`pwd`, `grp`, `resource`, `syslog` (an import raises ImportError, as on Windows), `os.fork` and the
other `os` functions Windows lacks, and the POSIX-only signals (`signal.SIGKILL`, `SIGHUP`…).
Windows' `msvcrt.locking` cannot exist here, so a stand-in with its semantics (a per-handle
lock on a byte range, LK_NBLCK raising OSError when taken) is put in its place, built on the real
`flock` captured first: that is what lets `service/filelock.py` run its Windows branch here.
What this cannot show: Windows' path rules, its event loop (Proactor) and its file sharing; the
docs list those as what to check on a real Windows PC (docs/operations.md).
"""

from __future__ import annotations

import errno
import importlib
import os
import runpy
import signal
import sys
import types

BLOCKED_MODULES = ("fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog",
                   "crypt", "spwd", "nis", "readline")
# os.statvfs stays: shutil.disk_usage calls it here (a Windows API there); our own code may not
# (tests/edge_node/test_portable_imports.py)
OS_MISSING = ("fork", "forkpty", "getuid", "geteuid", "getgid", "getegid", "setuid", "setgid",
              "setsid", "getpgid", "setpgrp", "killpg", "wait3", "wait4", "uname", "getloadavg",
              "mkfifo", "sync", "chown", "lchown", "getgroups", "nice")
SIGNALS_MISSING = ("SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGCHLD",
                   "SIGPIPE", "SIGSTOP", "SIGCONT", "SIGWINCH", "SIGTSTP", "alarm", "setitimer",
                   "pause", "pthread_kill")
STDLIB_FIRST = ("subprocess", "getpass", "multiprocessing.spawn", "asyncio", "shutil", "tempfile",
                "pathlib", "platform", "uuid")
MARKER = "COMMUNE_SYNC_NONPOSIX"


def msvcrt_stand_in() -> types.ModuleType:
    """`msvcrt.locking` with Windows' semantics, on the real flock."""
    import fcntl

    module = types.ModuleType("msvcrt", "stand-in for Windows' msvcrt.locking (tests only)")
    module.LK_UNLCK, module.LK_LOCK, module.LK_NBLCK = 0, 1, 2  # type: ignore[attr-defined]

    def locking(fd: int, mode: int, nbytes: int) -> None:
        if mode == module.LK_UNLCK:  # type: ignore[attr-defined]
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:  # Windows: EDEADLOCK / EACCES, an OSError
            raise OSError(errno.EACCES, "Permission denied") from exc

    module.locking = locking  # type: ignore[attr-defined]
    return module


def install() -> None:
    """Take the POSIX-only parts away from this interpreter."""
    stand_in = msvcrt_stand_in()
    for name in BLOCKED_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    # the standard library picks its implementation at import time: `subprocess` takes msvcrt to
    # mean Windows (and would load _winapi), `shutil.disk_usage` is built on os.statvfs here and
    # on a Windows call there. Let them see the real system underneath first, as they do theirs.
    for name in STDLIB_FIRST:
        importlib.import_module(name)
    sys.modules["msvcrt"] = stand_in
    for name in OS_MISSING:
        if hasattr(os, name):
            delattr(os, name)
    for name in SIGNALS_MISSING:
        if hasattr(signal, name):
            delattr(signal, name)
    # Windows' event loops have no add_signal_handler (aiohttp then runs without one, and Ctrl+C
    # arrives as KeyboardInterrupt): the Unix loop here answers the same
    import asyncio.unix_events

    def no_signal_handlers(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("no add_signal_handler on Windows")

    asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = (  # type: ignore[assignment]
        no_signal_handlers)
    os.environ[MARKER] = "1"


def main() -> None:
    """`-m MODULE ARGS…`: run MODULE as __main__ in the stripped interpreter; `-c CODE`: run
    CODE there."""
    if len(sys.argv) < 3 or sys.argv[1] not in ("-m", "-c"):
        sys.exit("usage: python -m tests.edge_node.nonposix -m MODULE [ARGS…] | -c CODE")
    module = sys.argv[2]
    install()
    if sys.argv[1] == "-c":
        exec(compile(module, "<nonposix -c>", "exec"), {"__name__": "__main__"})
        return
    if module == "pytest":
        # pytest's own tmp_path asks os.getuid() unless sys.platform says Windows: answer as it
        # does there (this is the test runner, not the code under test)
        import _pytest.tmpdir

        _pytest.tmpdir.get_user_id = lambda: None  # type: ignore[attr-defined]
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
