"""The `lwd` command. Every subcommand has --help; long work shows progress and ends with a table.

    lwd quickstart
    lwd demos metaworld/mt10 --episodes 50 --out data/mt10.zarr
    lwd demos pusht --episodes 200 --out data/pusht.zarr
    lwd import dp-pusht pusht_cchi_v7_replay.zarr.zip --out data/pusht-human.zarr
    lwd train lwd --data data/mt10.zarr --out runs/mt10-lwd --preset mt10
    lwd eval runs/mt10-lwd --episodes 50 --out results.json
    lwd info runs/mt10-lwd

One module per subcommand (named after it; `import` is `import_data`, a keyword otherwise), each
with `add_parser(subcommands)`, which adds the subcommand and its flags, and `run(args)`, which does
the work; it may define `interrupted_hint(saved)`, the advice printed after Ctrl-C. A new command is
one new module and one entry in COMMANDS. What the commands share (argument types, --overwrite,
the methods' run-time flags, printing) is in `common`. This file turns every failure into one
line and an exit status: 0 done, 2 refused or failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Callable

from lwd.cli import (bench, calibrate, demos, eval, export, export_data, import_data, info, latents, quickstart, reconstruct,
                     study, train)
from lwd.cli.common import OneLineErrorParser

COMMANDS: tuple[ModuleType, ...] = (quickstart, demos, import_data, export, export_data, train, eval, bench, calibrate, study,
                                    reconstruct, latents, info)
"""The subcommands in the order `lwd --help` lists them."""

__all__ = ["COMMANDS", "build_parser", "main"]


def _nothing_more_written(saved: str) -> str:
    """After Ctrl-C, for a command that keeps nothing to resume from."""
    return "nothing more was written"


def build_parser() -> argparse.ArgumentParser:
    """`lwd`'s parser: every module of COMMANDS adds its subcommand; its `run` and `interrupted_hint`
    ride on the parsed arguments, so `main` needs no table of commands."""
    from lwd import __version__

    p = OneLineErrorParser(prog="lwd", description="Latent Weight Diffusion: generate the weights of small closed-loop policies.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        hint: Callable[[str], str] = getattr(command, "interrupted_hint", _nothing_more_written)
        command.add_parser(sub).set_defaults(func=command.run, interrupted_hint=hint)
    return p


class _CtrlC:
    """Whether Ctrl-C was pressed in this process. Python raises KeyboardInterrupt wherever the
    interpreter happens to be, and a library caught mid-import can turn it into another error (numpy's
    lazily imported `np.ma` became an AttributeError in one test run), so a failure that follows a
    Ctrl-C is reported as the interruption it is."""

    pressed = False

    @classmethod
    def watch(cls) -> None:
        """Note Ctrl-C, then raise KeyboardInterrupt as Python's own handler does; leave an ignored
        SIGINT (a background job) ignored."""
        import signal

        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return

        def note_and_raise(signum: int, frame: object) -> None:
            cls.pressed = True
            signal.default_int_handler(signum, frame)

        signal.signal(signal.SIGINT, note_and_raise)

    @classmethod
    def caused(cls, err: BaseException) -> bool:
        return isinstance(err, KeyboardInterrupt) or (cls.pressed and isinstance(err, Exception))


def main(argv: list[str] | None = None) -> int:
    """Run one `lwd` command; every failure is one line on stderr and an exit status, never a traceback."""
    import threading

    _CtrlC.pressed = False
    if threading.current_thread() is threading.main_thread():
        _CtrlC.watch()
    try:
        import lwd.provenance  # records the commit this process starts on; results cite it

        lwd.provenance.record_cli_command(sys.argv[1:] if argv is None else [str(a) for a in argv])
        from safetensors import SafetensorError

        from lwd.checkpoint import CheckpointError
        from lwd.data import DatasetError

        args = build_parser().parse_args(argv)
    except BaseException as err:
        if not _CtrlC.caused(err):
            raise
        print("lwd: interrupted during start-up; nothing was written", file=sys.stderr)  # torch and the simulators importing
        if argv is None:  # this process's own command line
            _exit_now(130)
        return 130
    try:
        args.func(args)
    except BaseException as err:
        if _CtrlC.caused(err):  # the command's message (e.g. where training saved its state) feeds its hint
            print(f"lwd {args.command}: interrupted; {args.interrupted_hint(str(err))}", file=sys.stderr)
            return 130
        if isinstance(err, (DatasetError, CheckpointError, FileExistsError, FileNotFoundError, ValueError, ImportError)):
            print(f"lwd {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        if isinstance(err, (OSError, SafetensorError)):  # a full disk, a vanished folder: one line, never a traceback
            print(f"lwd {args.command}: error: {_os_error(err)}", file=sys.stderr)
            return 2
        raise
    return 0


def _exit_now(status: int) -> None:
    """Exit at once with `status`, output flushed. After a Ctrl-C that landed in the start-up imports,
    the normal exit after this message ended once (a loaded test run) with the process killed by
    SIGINT (status -2, not 130). CPython re-sends SIGINT to itself at exit when it has recorded a
    KeyboardInterrupt as unhandled; which code let it record that here was not pinned down. Nothing
    has been written at this point, so there is nothing for exit handlers to finish."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _os_error(err: BaseException) -> str:
    """One line for an operating-system failure: what failed, on which file, and the system's reason."""
    import errno

    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        reason = err.strerror or str(err)
        hint = "; free some space and run the command again (what existed before is unchanged)" if err.errno == errno.ENOSPC else ""
        return " ".join(f"{reason}{where}{hint}".split())
    text = " ".join(str(err).split())
    if "No space left" in text or "os error 28" in text:
        return f"{text}; free some space and run the command again (what existed before is unchanged)"
    return text
