"""``aotrun IMAGE [GUEST ARGS...]``: verify a signed image and run the guest."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aotc import __version__
from aotc.errors import AotcError, GuestFault


@click.command(context_settings={"allow_interspersed_args": False,
                                 "help_option_names": ["-h", "--help"]})
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("guest_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--trust", "trust", multiple=True, type=click.Path(path_type=Path),
              help="Also trust this public key (repeatable).")
@click.option("--strace", is_flag=True, help="Log every guest system call to stderr.")
@click.option("--argv0", default=None, help="The guest's argv[0] (default: the image path).")
@click.option("--clear-env", is_flag=True, help="Start the guest with an empty environment.")
@click.option("-E", "--env", "env_items", multiple=True, metavar="NAME=VALUE",
              help="Set a guest environment variable (repeatable).")
@click.option("--engine", type=click.Choice(["aot", "kvm"]), default="aot", show_default=True,
              help="How guest code runs: the image's translated code (aot) or a KVM vCPU (kvm; "
                   "images of x86_64 guests use it by default).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop the guest after SECONDS (exit status 124; kvm engine).")
@click.option("--max-memory", default=None, metavar="BYTES",
              help="Cap guest memory, e.g. 64M: growth beyond fails with ENOMEM; a guest that "
                   "needs more at start exits with status 125 (kvm engine).")
@click.version_option(__version__, prog_name="aotrun")
def main(image: Path, guest_args: tuple[str, ...], trust: tuple[Path, ...], strace: bool,
         argv0: str | None, clear_env: bool, env_items: tuple[str, ...], engine: str = "aot",
         timeout: float | None = None, max_memory: str | None = None) -> None:
    """Run IMAGE, an image made by `aotc build`, passing GUEST_ARGS to the guest."""
    import os

    from runtime.machine import run_image

    env = {} if clear_env else dict(os.environ)
    for item in env_items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--env")
        env[name] = value
    try:
        status = run_image(image, guest_args, trust=trust, env=env, argv0=argv0,
                           strace=sys.stderr if strace else None, engine=engine,
                           timeout=timeout, max_memory=_size_option(max_memory))
    except GuestFault as e:
        sys.stdout.flush()
        print(f"aotrun: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except AotcError as e:
        print(f"aotrun: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.exit(status)


def _size_option(text: str | None) -> int | None:
    from runtime.kvm.limits import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--max-memory") from None


if __name__ == "__main__":
    main()
