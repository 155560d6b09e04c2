"""What the subcommands share: argument types, the flags every command spells the same way, and
printing. Kept here so each command module stays about its own command, and a new command's
flags behave (and fail) like the existing ones'."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TypeAlias

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What `lwd`'s parser hands each command module's `add_parser`, to add its own subcommand to."""


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors in one line (what is wrong, and where help is), like every other error of lwd.
    Subcommand parsers inherit the class from the top-level parser, so every command errs alike."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int) -> Any:
    """An argparse type: an integer >= minimum, refused with a message that says so."""
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}") from err
        if number < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {number}")
        return number

    return parse


positive = int_at_least(1)
non_negative = int_at_least(0)


def int_list(text: str, flag: str, minimum: int) -> list[int]:
    """A comma-separated flag value of integers >= minimum, refused with a line naming the flag and the item."""
    values = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            raise ValueError(f"{flag} takes comma-separated integers, e.g. {flag} 8,16; {item.strip()!r} is not one") from None
        if value < minimum:
            raise ValueError(f"{flag} takes integers >= {minimum}; got {value}")
        values.append(value)
    return values


def overwrite_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """The one flag, named the same on every command, that lets a command replace what --out holds
    (replaced only once the new one is complete; without it an existing target is refused)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace an existing {what} at --out (the old one stays until the new one is complete)")


def runtime_flags(parser: Any) -> None:
    """One flag per run-time option of the registered methods (`--action-horizon` for the runtime
    class's `action_horizon`), its type, choices and help read from the class (`option_fields`): a
    method's options reach the command line with no edit here. Which methods take an option is in
    its help; a run refuses an option its method does not take."""
    from lwd.methods import get_method, method_names
    from lwd.methods.base import OptionField, option_fields

    fields: dict[str, OptionField] = {}
    takers: dict[str, list[str]] = {}
    for name in method_names():
        for option in option_fields(get_method(name).runtime_class):
            known = fields.setdefault(option.name, option)
            if known.type is not option.type:
                raise TypeError(f"run-time option {option.name} is {known.type.__name__} for {', '.join(takers[option.name])} "
                                f"but {option.type.__name__} for {name}; give it one type or another name")
            takers.setdefault(option.name, []).append(name)
    for option in fields.values():
        meta = option.metadata
        kwargs: dict[str, Any] = {"default": None, "metavar": meta.get("metavar"), "choices": meta.get("choices"),
                                  "help": f"{option.help} Taken by {', '.join(takers[option.name])}; default: as the run was "
                                          "trained.".replace("%", "%%").strip()}
        if option.type is bool:
            kwargs = {"action": "store_true", "default": None, "help": kwargs["help"]}
        elif "parse" in meta:
            kwargs["type"] = _parse_with(meta["parse"])
        elif option.type is int and "minimum" in meta:
            kwargs["type"] = int_at_least(int(meta["minimum"]))
        else:
            kwargs["type"] = option.type
        try:
            parser.add_argument("--" + option.name.replace("_", "-"), **kwargs)
        except argparse.ArgumentError as err:
            raise TypeError(f"run-time option {option.name} of {', '.join(takers[option.name])} collides with a flag "
                            f"of the command ({err}); rename the option") from err
    parser.set_defaults(runtime_options=tuple(fields))


def runtime_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run-time options given on the command line (the method refuses ones it does not take)."""
    return {key: getattr(args, key) for key in args.runtime_options if getattr(args, key, None) is not None}


def _parse_with(parse: Any) -> Any:
    """An argparse type from a runtime field's parser: its ValueError becomes argparse's one-line error."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    return convert


def warn(line: str | None) -> None:
    """One warning line on stderr (nothing when there is nothing to say)."""
    if line:
        print(f"warning: {line}", file=sys.stderr)


def print_rows(info: dict[str, Any]) -> None:
    """A run's or preset's facts as a two-column table (what `lwd train` ends with and `lwd info` prints)."""
    from tabulate import tabulate

    print(tabulate([[k, _fmt(v)] for k, v in info.items()], tablefmt="simple"))


def _fmt(value: Any) -> str:
    """Floats to one decimal, large numbers with thousands separators, the rest as they print."""
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
