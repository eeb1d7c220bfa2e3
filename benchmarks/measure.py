"""Measuring helpers shared by the benchmark scripts (Linux /proc)."""

from __future__ import annotations


def current_rss_mb() -> float:
    """The process's resident memory now, in MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
