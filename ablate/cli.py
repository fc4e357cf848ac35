"""The ``ablate`` command line: one sub-command per module in ``ablate.commands``."""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import re
import select
import signal
import sys
from typing import Any, NoReturn

from ablate import __version__
from ablate.errors import STORAGE_ERRNOS, USAGE_EXIT, USER_ERRORS, print_error, storage_failure
from sweep_format.layout import REPORT_HTML, REPORT_MD
from sweep_format.text import did_you_mean, printable

# Each module has ``register(subparsers)``, which adds its parser and sets ``func``.
PIPE_CLOSED_EXIT = 128 + signal.SIGPIPE  # 141, as a shell reports a tool that SIGPIPE ended

COMMANDS = ["train", "run", "resume", "report", "compare", "ls", "attention"]
# How close a mistyped option must be to one of the command's options to be named: difflib's ratio of
# the names without their dashes. 0.75 names typos (--storag 0.92, --adress 0.92, --vebrose 0.86, --froce
# 0.80, --ot 0.80) and no word of another meaning (--output 0.67, --seed 0.57, --bogus 0.50); with the
# dashes, which every option shares, and did_you_mean's 0.6, --bogus was 'did you mean --verbose?' (0.625).
OPTION_CUTOFF = 0.75

DESCRIPTION = f"""\
ablate: which DINO hyperparameters actually matter on your data?

  ablate train [CONFIG.yaml] --out DIR      train one DINO run (kNN-evaluated, resumable)
  ablate run search_spaces/temps.yaml       run an ablation sweep on Ray Tune
  ablate resume runs/NAME                   continue an interrupted sweep
  ablate report runs/NAME                   parquet tables + {REPORT_MD}/{REPORT_HTML}
  ablate compare runs/A runs/B --out DIR    one report across sweeps
  ablate ls [runs]                          list the sweeps in a storage folder
  ablate attention SOURCE --out FILE.png    the teacher's [CLS] attention maps

Run `ablate COMMAND --help` for the options of each command.
"""


class Parser(argparse.ArgumentParser):
    """The parser of ``ablate`` and, through ``add_subparsers``, of every command: a refusal is one line,
    ``ablate run: error: TEXT (`ablate run --help` lists the options)``, in the form of ablate's other
    errors (``print_error``), where argparse printed its usage (up to five lines) above it. No option
    prefixes: ``--storag x`` was read as ``--storage x``, and an option added later (``--storage-class``)
    would have made an old script's prefix ambiguous; a prefix is now an unrecognized argument, with
    the did-you-mean of ``unrecognized``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})
        self.given: list[str] = []  # the arguments this parser was last given (a command's: those after it)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        wrong = re.fullmatch(r"argument COMMAND: invalid choice: '(.*?)'.*", message, re.S)
        close = did_you_mean(wrong.group(1), COMMANDS, n=1) if wrong else ""  # `ablate rn`: run
        if message.startswith("the following arguments are required") and (unknown := self.unknown_options()):
            # `ablate train --otu x`: the typo is the mistake to name, not the --out it leaves missing; a
            # missing option is the likely one meant, so it is named at did_you_mean's laxer cutoff
            missing = [name for name in message.partition(": ")[2].split(", ") if name.startswith("-")]
            hints = [close for name in unknown
                     if (close := close_option(name, self.options()) or close_option(name, missing, 0.6))]
            self.refuse(f"unrecognized arguments: {' '.join(unknown)}",
                        f"did you mean {', '.join(hints)}?" if hints else "")
        self.refuse(message, f"did you mean {close}?" if close else "")

    def options(self) -> list[str]:
        return [name for action in self._actions for name in action.option_strings]

    def unknown_options(self) -> list[str]:
        """The options among ``given`` that this parser does not take (a negative number is a value)."""
        return [name for arg in self.given if arg.startswith("-") and arg != "--"
                and not self._negative_number_matcher.match(arg)
                for name in [arg.split("=", 1)[0]] if name not in self.options()]

    def refuse(self, message: str, hint: str = "") -> NoReturn:
        """Exit 2 with ``message`` and ``hint`` (a did-you-mean) as this parser's one error line."""
        command = self.prog.partition(" ")[2]  # "ablate run": run; "ablate": none
        helps = f"`{self.prog} --help` lists the {'options' if command else 'commands'}"
        hint += (" " if hint.endswith("?") else "; ") if hint else ""  # did you mean X? `ablate --help` ...
        print_error(f"{printable(message)} ({hint}{helps})", command)
        sys.exit(USAGE_EXIT)


def build_parser() -> Parser:
    parser = Parser(prog="ablate", description=DESCRIPTION,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ablate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ablate.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ablate.commands.{name}":
                continue  # a command still being built
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv``; its exit code. When the reader of its output goes away (``ablate
    report DIR | head``), it stops quietly, as Unix tools do (Python's recipe, ``signal`` docs). A Ctrl-C
    as ablate starts (its imports, its parser: the first quarter second) is one line, as a command's."""
    try:
        from ablate.ending import keep_interrupts

        keep_interrupts()
        code = dispatch(argv)
        sys.stdout.flush()  # here, not at the interpreter's exit, where a closed pipe is a warning
    except KeyboardInterrupt as exc:  # a command's own are dispatch's; this one printed a traceback
        from ablate.ending import exit_code, release_logging_locks

        release_logging_locks()  # Ray's exit handler may stop threads that log
        print("ablate: interrupted", file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:
        if not stdout_closed():  # another pipe broke: not this
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the rest goes nowhere
        return PIPE_CLOSED_EXIT
    return code


def stdout_closed() -> bool:
    """Whether nothing reads ablate's output any more (a pipe whose reader exited)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no file descriptor (a StringIO), no poll
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        unrecognized(parser, args.command, extras, argv if argv is not None else sys.argv[1:])
    if not getattr(args, "func", None):
        parser.print_help()
        return USAGE_EXIT
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:  # its text may quote a file someone else wrote (a spec key): no escapes
        print_error(printable(str(exc)), args.command)
        return USAGE_EXIT
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # a path given on the command line, or a name in the spec
            name = printable(str(exc.filename or "a path"))
            print_error(f"{name[:60]}{'…' if len(name) > 60 else ''}: a name or path too long for this file "
                        f"system ({len(name.encode())} bytes; a name may have 255): give a shorter one",
                        args.command)
            return USAGE_EXIT
        if exc.errno not in STORAGE_ERRNOS:
            raise
        print_error(printable(storage_failure(exc, args)), args.command)
        return USAGE_EXIT
    except (KeyboardInterrupt, RuntimeError) as exc:  # before a sweep started, or a second Ctrl-C while
        # one stopped (or in an import: RuntimeError)
        from ablate.ending import exit_code, interrupt_in, release_logging_locks

        if (interrupt := interrupt_in(exc)) is None:
            raise
        release_logging_locks()  # Ray's exit handler may stop threads that log
        print(f"ablate {args.command}: interrupted{f' ({interrupt})' if str(interrupt) else ''}",
              file=sys.stderr)
        return exit_code(interrupt)


def unrecognized(parser: Parser, command: str | None, extras: list[str],
                 argv: list[str]) -> NoReturn:
    """Exit 2 naming the arguments the command does not take, as the command itself (its help lists
    its options) with the option it most likely meant: argparse left a subcommand's unknown option
    to the top parser, which named neither the command nor its options. An option written before the
    command (``ablate --bogus run X``) is the top parser's to refuse."""
    target = parser
    before = argv[:argv.index(command)] if command in argv else argv  # the top parser takes no values
    if early := [extra for extra in extras if extra in before]:
        extras = early  # the command's own extras are its error, once these are mended
    else:
        for action in parser._subparsers._group_actions if parser._subparsers else []:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                target = action.choices[command]  # a Parser: add_subparsers makes its parser's class
    options = [name for action in target._actions for name in action.option_strings]
    unknown = [name for extra in extras if extra.startswith("-")
               for name in [extra.split("=", 1)[0]] if name not in options]
    elsewhere = {name: others for name in unknown
                 if (others := [other for other in commands_with(parser, name) if other != command])}
    hints = [close for name in unknown if name not in elsewhere
             for close in [close_option(name, options)] if close]
    # `ablate run spec --retry oom`: an option of another command is named as such, not as a misspelling
    hint = "; ".join([*(f"{name} is an option of {', '.join(f'`ablate {o}`' for o in others)}"
                        for name, others in elsewhere.items()),
                      *([f"did you mean {', '.join(hints)}?"] if hints else [])])
    target.refuse(f"unrecognized arguments: {' '.join(extras)}", hint)


def close_option(name: str, options: list[str], cutoff: float = OPTION_CUTOFF) -> str:
    """The option of ``options`` that ``name`` most likely meant ("" for none): the one option it begins (an
    abbreviation, which argparse no longer takes: --vers, --stor), else the closest one by ``did_you_mean``,
    compared without dashes, at ``cutoff``."""
    bare = {option.lstrip("-"): option for option in options}
    typed = name.lstrip("-")
    if typed and len(begun := [option for b, option in bare.items() if b.startswith(typed)]) == 1:
        return begun[0]
    close = did_you_mean(typed, bare, n=1, cutoff=cutoff)
    return bare[close] if close else ""


def commands_with(parser: Parser, option: str) -> list[str]:
    """The commands that take ``option`` (``--retry``: resume), in ``COMMANDS`` order."""
    actions = parser._subparsers._group_actions if parser._subparsers else []
    return [name for action in actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items() if any(option in a.option_strings for a in sub._actions)]


def command() -> int:
    """The ``ablate`` console script: ``main``, and no garbage collection at the interpreter's exit.
    That last collection walks every object torch, Ray, pandas and matplotlib made, and held the
    terminal 1-3 s after a command's last line (all of ablate's files are written and closed by
    then; atexit handlers still run)."""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(command())
