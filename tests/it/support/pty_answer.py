#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts, for clients that insist on a TTY.

Usage: pty_answer.py PROMPT ANSWER [PROMPT ANSWER]... -- COMMAND [ARG]...

Each ANSWER is typed (followed by Enter) once PROMPT has appeared in the output, in order. Everything
the command printed is copied to stdout (a terminal merges stdout and stderr), and the exit code is
the command's. The command is killed after 120 seconds.
"""

import os
import pty
import select
import signal
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    separator = args.index("--")
    pairs = list(zip(args[:separator:2], args[1:separator:2]))
    command = args[separator + 1 :]

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)

    output = bytearray()
    pending = b""
    deadline = time.monotonic() + 120
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            output += b"\n[pty_answer.py: killed after 120 s]\n"
            break
        ready, _, _ = select.select([fd], [], [], 0.5)
        if fd not in ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not data:
            break
        output += data
        pending += data
        if pairs and pairs[0][0].encode() in pending:
            os.write(fd, pairs[0][1].encode() + b"\r")
            pairs.pop(0)
            pending = b""

    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(bytes(output))
    if pairs:
        sys.stdout.write("\n[pty_answer.py: prompts never seen: %s]\n" % [p for p, _ in pairs])
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
