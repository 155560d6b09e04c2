"""Runs `lwd` commands, each in its own process, without paying the start-up imports each time.

`python tests/cli_forkserver.py` imports the CLI and what its commands import (torch, diffusers,
every method, the simulators' wrappers) once, then reads one JSON request per line on stdin,
{"args": [...], "stdout": PATH, "stderr": PATH, "timeout": S}, and runs each command in a fork of itself, with
its stdout and stderr going to those files, exactly as `python -m lwd.cli ARGS` would run it
(the same `main`, the same exit status, atexit handlers run); it answers {"returncode": N} on
stdout. A fresh `lwd` process spends 2-5 s importing before it reads its arguments; the bad-input
cases of test_cli_errors.py are about 80 such processes, most of whose time was that.

Forking after importing torch is safe here because nothing in the server has started a thread
(OMP_NUM_THREADS=1, and the imports alone start none); each child is a separate process, so a case
that crashes or leaks state cannot touch the next.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import traceback


def _run_child(request: dict) -> None:
    """In the fork: redirect the output, run the command as `python -m lwd.cli` would, exit."""
    code = 1
    try:
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        signal.alarm(int(request.get("timeout", 120)))  # a hung case ends as killed by SIGALRM (exit -14)
        sys.argv = ["lwd", *request["args"]]
        from lwd.cli import main

        try:
            code = main(list(request["args"]))
        except SystemExit as exit_:
            if isinstance(exit_.code, int) or exit_.code is None:
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
        atexit._run_exitfuncs()
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def serve() -> None:
    import lwd.cli
    import lwd.pipeline  # noqa: F401  (what train, eval and info import when they run)

    lwd.cli.build_parser()  # imports every method and its options
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
