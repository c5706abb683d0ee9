"""The lint rule that keeps the edge runnable on Windows: walk the import graph from every
`edge_node` module and refuse POSIX-only modules and attributes on it.

Commune offices run Windows PCs. `fcntl`, `termios`, `pwd`, `grp`… do not exist there, nor do
`os.fork`, `os.getuid` or `signal.SIGKILL`; one of them imported at the top of a module the edge
loads stops `edge-node serve` dead. The only module allowed a platform-specific import is
`service/filelock.py`, which picks `fcntl` or `msvcrt` behind one function. The companion test
(test_nonposix.py) runs a real edge with those modules taken away.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("protocol", "service", "edge_node", "central_hub")
BANNED_MODULES = frozenset({
    "fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog", "crypt", "spwd",
    "nis", "posix", "readline", "curses", "_posixsubprocess", "multiprocessing.popen_fork",
})
BANNED_ATTRIBUTES = {
    "os": frozenset({
        "fork", "forkpty", "getuid", "geteuid", "getgid", "getegid", "setuid", "setgid",
        "setsid", "getpgid", "setpgrp", "killpg", "wait3", "wait4", "WNOHANG", "uname",
        "statvfs", "getloadavg", "mkfifo", "sync", "O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC",
        "chown", "lchown", "getgroups", "nice", "sched_getaffinity"}),
    "signal": frozenset({
        "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGCHLD", "SIGPIPE",
        "SIGSTOP", "SIGCONT", "SIGWINCH", "SIGTSTP", "alarm", "setitimer", "pause",
        "siginterrupt", "pthread_kill"}),
}
# The sanctioned exception: the one lock function, choosing fcntl or msvcrt at import time.
ALLOWED = {"service.filelock": frozenset({"fcntl", "msvcrt"})}


def module_file(name: str) -> Path | None:
    """The source file of a first-party module or package, or None."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(name: str, tree: ast.Module) -> set[str]:
    """Every module a module imports (for `from a import b`: `a`, and `a.b` when it is one)."""
    found: set[str] = set()
    package = name if module_file(name) and str(module_file(name)).endswith("__init__.py") \
        else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if module_file(f"{base}.{alias.name}"))
    return found


def banned_attributes(tree: ast.Module) -> list[str]:
    """`os.fork`, `signal.SIGKILL`… used as attributes. The portable spellings pass: a
    `getattr(signal, "SIGKILL", …)` with a fallback, or a use in a module that asks
    `hasattr(os, "O_DIRECTORY")` first."""
    guarded = {(n.args[0].id, n.args[1].value) for n in ast.walk(tree)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
               and n.func.id == "hasattr" and len(n.args) == 2
               and isinstance(n.args[0], ast.Name) and isinstance(n.args[1], ast.Constant)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.attr in BANNED_ATTRIBUTES.get(node.value.id, ()) \
                and (node.value.id, node.attr) not in guarded:
            hits.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return hits


def edge_import_graph() -> dict[str, set[str]]:
    """Every first-party module the edge can load, with what each imports."""
    roots = [module_name(p) for p in sorted((ROOT / "edge_node").rglob("*.py"))]
    graph: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        path = module_file(name)
        assert path is not None, name
        graph[name] = imports_of(name, ast.parse(path.read_text(encoding="utf-8")))
        for imported in graph[name]:
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                prefix = ".".join(parts[:i])
                if prefix.split(".")[0] in FIRST_PARTY and module_file(prefix):
                    todo.append(prefix)
    return graph


def test_the_edge_loads_no_posix_only_module() -> None:
    graph = edge_import_graph()
    assert "edge_node.cli" in graph and "service.blobs" in graph and "service.filelock" in graph
    problems = []
    for name, imported in sorted(graph.items()):
        allowed = ALLOWED.get(name, frozenset())
        for module in sorted(imported):
            top = module.split(".")[0]
            if (module in BANNED_MODULES or top in BANNED_MODULES) and top not in allowed:
                problems.append(f"{name} imports {module}")
        path = module_file(name)
        assert path is not None
        problems += [f"{name} uses {hit}"
                     for hit in banned_attributes(ast.parse(path.read_text(encoding="utf-8")))]
    assert not problems, "POSIX-only on the edge's import path:\n" + "\n".join(problems)


def test_the_edge_does_not_load_the_hub() -> None:
    assert not [n for n in edge_import_graph() if n.startswith("central_hub")]


def test_the_rule_catches_what_it_is_for() -> None:
    bad = ast.parse("import fcntl\nimport os, signal\nos.fork()\nos.kill(1, signal.SIGKILL)\n"
                    "x = getattr(signal, 'SIGKILL', signal.SIGTERM)\n")
    assert "fcntl" in imports_of("service.x", bad)
    assert banned_attributes(bad) == ["os.fork (line 3)", "signal.SIGKILL (line 4)"]
    guarded = ast.parse("import os\nif hasattr(os, 'O_DIRECTORY'):\n    os.open('.', os.O_DIRECTORY)\n")
    assert banned_attributes(guarded) == []
