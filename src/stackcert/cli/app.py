"""The typer application, the --json convention and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from stackcert import __version__
from stackcert.errors import ExitCode, StackcertError
from stackcert.jsonio import dumps
from stackcert.paths import logs_dir

app = typer.Typer(
    name="stackcert",
    help="Certify that an LLM runs correctly and fast on a hardware + software stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Prepare and inspect models.", no_args_is_help=True)
app.add_typer(model_app, name="model")

console = Console()
err_console = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class State:
    json: bool = False


STATE = State()


def want_json(flag: bool) -> bool:
    """A command prints JSON when its own --json or the global one is given."""
    return flag or STATE.json


def emit(data: Any, *, as_json: bool, render: Callable[[Any], None]) -> None:
    """JSON on stdout for scripts, or a rich rendering for people."""
    if want_json(as_json):
        sys.stdout.write(dumps(data) + "\n")
        sys.stdout.flush()
    else:
        render(data)


def _version(value: bool) -> None:
    if value:
        console.print(f"stackcert {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    json_out: JsonFlag = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """stackcert: environment, install, smoke, A/B verify, consistency, performance, report."""
    STATE.json = json_out


def _crash_log(exc: BaseException) -> str:
    folder = logs_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        return str(path)
    except OSError:
        return "<could not write crash log>"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turns every error into one line and an exit code."""
    try:
        # Without standalone mode, typer returns (not raises) the code of `raise typer.Exit(code)`.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except StackcertError as exc:
        if STATE.json or "--json" in (argv if argv is not None else sys.argv):
            sys.stdout.write(dumps(exc.to_dict()) + "\n")
        err_console.print(f"[bold red]error:[/] {exc.one_line()}", highlight=False, soft_wrap=True)
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.TyperException as exc:  # bad flags, unknown commands (typer's vendored click errors)
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(int(getattr(exc, "exit_code", ExitCode.USAGE)))
    except Exception as exc:  # anything unforeseen: one line here, the traceback in a crash log
        where = _crash_log(exc)
        if STATE.json or "--json" in (argv if argv is not None else sys.argv):  # scripts get JSON too
            error = {  # the shape of StackcertError.to_dict
                "error": "InternalError",
                "what": f"{type(exc).__name__}: {exc}",
                "where": where,
                "fix": "please report it",
                "exit_code": int(ExitCode.FAIL),
            }
            sys.stdout.write(dumps(error) + "\n")
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} — details in {where}; "
            "please report it",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(int(ExitCode.FAIL))
