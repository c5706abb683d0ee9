"""What a process costs, read from /proc: resident memory, its high-water mark (resettable), CPU."""

from __future__ import annotations

from pathlib import Path

MiB = 1024 * 1024


class ProcessMemory:
    """The memory and CPU of process `pid` (Linux)."""

    def __init__(self, pid: int) -> None:
        self.proc = Path(f"/proc/{pid}")

    def _status(self, field: str) -> int:
        for line in (self.proc / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field}")

    def rss(self) -> int:
        """Resident memory now, in bytes (VmRSS)."""
        return self._status("VmRSS")

    def peak(self) -> int:
        """The most resident memory since the last reset, in bytes (VmHWM)."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Set the high-water mark to the current RSS (clear_refs 5), so `peak` misses no spike
        from now on."""
        (self.proc / "clear_refs").write_text("5")
        assert self.peak() <= self.rss() + MiB

    def cpu_s(self) -> float:
        """User and system CPU time so far, in seconds."""
        fields = (self.proc / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks
