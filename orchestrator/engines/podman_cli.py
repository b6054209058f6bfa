"""`docker cp` and `docker commit` as Packer runs them, on Podman: run by Podman's `docker`
shim as a script (`python -I podman_cli.py URL cp|commit ARGS...`), with the standard
library only, so that it costs no import of Rolecast.

Where Podman's CLI answers otherwise than Docker's in what Packer (and Rolecast's stage
commits) use:
- `cp DIR CONTAINER:PATH/`: Docker makes PATH when it is missing; Podman refuses a trailing
  slash on a missing one (`could not be found on container`). Without the slash both make
  it, with the directory's content.
- `commit --change`: Docker reads the instructions as a Dockerfile does (quotes and
  escapes); Podman keeps the quotes of WORKDIR (`"/srv/app"`, which no container then
  starts in: `Cwd must be an absolute path`) and the escapes of an ENV or LABEL value
  (`\\"`), and reads one KEY=VALUE an instruction. The changes are given to Podman
  unescaped, one variable or label each.
- `commit` keeps no stop signal of the container (Docker keeps `run --stop-signal`'s), and
  keeps `ENTRYPOINT [""]` as `[""]` where Docker stores none.
- `commit` prints the image id as `sha256:HEX` on Docker, the bare HEX on Podman; Packer
  reports what it printed (`Image ID: ...`), which Rolecast reads.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys


def podman_argv(address: str) -> list[str]:
    """`podman` on the engine at `address` (its API service), not on this machine's storage."""
    return ["podman", "--remote", "--url", address]


def copy_arguments(args: list[str]) -> list[str]:
    """`cp SRC DEST`, with a directory's destination in a container without its slash."""
    if len(args) == 2 and os.path.isdir(args[0]):
        source, target = args
        container, sep, path = target.partition(":")
        if sep and path.endswith("/") and path.rstrip("/"):
            return [source, f"{container}:{path.rstrip('/')}"]
    return args


def unescaped(value: str) -> str:
    """A value without the escape of `$` that Docker's reading needs (`\\$HOME`)."""
    return value.replace("\\$", "$")


def podman_changes(change: str) -> list[str]:
    """One Dockerfile instruction of `docker commit --change`, as Podman reads it."""
    instruction, _, rest = change.strip().partition(" ")
    keyword = instruction.upper()
    try:
        words = shlex.split(rest)
    except ValueError:  # unbalanced quotes: Podman says what it makes of them
        return [change]
    if keyword == "ENTRYPOINT" and rest.strip().replace(" ", "") == '[""]':
        return ["ENTRYPOINT []"]  # no entrypoint: Docker stores none, Podman would keep [""]
    if keyword == "WORKDIR" and words:
        return [f"WORKDIR {' '.join(words)}"]
    if keyword in ("LABEL", "ENV") and words and all("=" in w for w in words):
        # Podman strips one pair of quotes around the value and keeps the rest as written,
        # `$` included: it expands no variable, so Docker's escape `\$` is not needed.
        pairs = (w.split("=", 1) for w in words)
        return [f'{keyword} {key}="{unescaped(value)}"' for key, value in pairs]
    return [change]


def commit_arguments(args: list[str]) -> list[str]:
    """`commit` options with every change (`--change X`, `--change=X`, `-c X`) translated."""
    out: list[str] = []
    pending = iter(args)
    for arg in pending:
        if arg in ("--change", "-c"):
            value = next(pending, None)
            if value is None:
                return [*out, arg]
            for change in podman_changes(value):
                out += ["--change", change]
        elif arg.startswith("--change="):
            for change in podman_changes(arg.removeprefix("--change=")):
                out += ["--change", change]
        else:
            out.append(arg)
    return out


VALUED_OPTIONS = {"--change", "-c", "--message", "-m", "--author", "-a", "--format", "-f"}
VALUED_OPTIONS |= {"--iidfile"}
DEFAULT_STOP_SIGNAL = "15"


def container_of(args: list[str]) -> str | None:
    """The container a `commit` names: its first argument that is no option or value."""
    pending = iter(args)
    for arg in pending:
        if arg in VALUED_OPTIONS:
            next(pending, None)
        elif not arg.startswith("-"):
            return arg
    return None


def with_stop_signal(args: list[str], signal: str) -> list[str]:
    """Docker commits the container's stop signal (`run --stop-signal`), Podman does not:
    a signal other than SIGTERM is given as a change, unless one is given already."""
    changes = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--change"]
    if not signal.isdigit() or signal == DEFAULT_STOP_SIGNAL:
        return args
    if any(c.strip().upper().startswith("STOPSIGNAL") for c in changes):
        return args
    return ["--change", f"STOPSIGNAL {signal}", *args]


def image_id(printed: str) -> str:
    """The id `podman commit` printed, as Docker prints it."""
    text = printed.strip()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return f"sha256:{text}"
    return text


def main(argv: list[str]) -> int:
    address, command, *args = argv
    podman = podman_argv(address)
    if command == "cp":
        os.execvp(podman[0], [*podman, "cp", *copy_arguments(args)])
    if command == "commit":
        args = commit_arguments(args)
        container = container_of(args)
        if container is not None:
            signal = subprocess.run(
                [*podman, "container", "inspect", "--format", "{{.Config.StopSignal}}", container],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            ).stdout.strip()
            args = with_stop_signal(args, signal)
        done = subprocess.run([*podman, "commit", *args], stdout=subprocess.PIPE)
        if done.returncode == 0:
            print(image_id(done.stdout.decode()), flush=True)
        return done.returncode
    os.execvp(podman[0], [*podman, command, *args])
    return 127  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
