"""Run a command and report its peak resident set size as the kernel counts it.

    python -S bench/peak_launcher.py COMMAND [ARG ...]

The peak is measured from outside, the way Lambda sees a function's memory: this small
process spawns the command and reads the child's `ru_maxrss` from `wait4` when it ends,
so nothing the child does can hide from it. Linux carries the spawner's own high-water mark
into the child at exec, so the spawner must be small: this one imports only `os` and `sys`
(run it with -S, about 10 MB), far below anything it measures. The child's stdout and stderr
are its own; one line is added to stdout after the child has exited.
"""

import os
import sys

PEAK_PREFIX = "BENCH_PEAK_RSS_KB "


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    child = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(child, 0)
    sys.stdout.write(f"{PEAK_PREFIX}{usage.ru_maxrss}\n")  # kB on Linux
    sys.stdout.flush()
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
