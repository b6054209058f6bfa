"""Global options after the command, as Git and Docker users type them: `rolecast build -C
DIR web` is read as `rolecast -C DIR build web`."""

from __future__ import annotations

from typing import Any

# The options of the app's callback that may also follow the command.
GLOBAL_VALUED = frozenset({"-f", "--file", "-C", "--directory", "-i", "--inventory"})
GLOBAL_VALUED |= frozenset({"-H", "--docker-host"})
GLOBAL_FLAGS = frozenset({"-v", "--verbose"})


def _split(token: str) -> tuple[str, bool]:
    """The option a token names, and whether its value is attached (`--file=x`, `-Cdir`)."""
    if token.startswith("--"):
        name, eq, _ = token.partition("=")
        return name, bool(eq)
    if len(token) > 2 and token[:2] in GLOBAL_VALUED:
        return token[:2], True
    return token, False


def _options(command: Any) -> tuple[set[str], set[str]]:
    """(every option name of a command, those that take a value)."""
    names: set[str] = set()
    valued: set[str] = set()
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") != "option":
            continue
        opts = {*param.opts, *param.secondary_opts}
        names |= opts
        if not param.is_flag and not param.count:
            valued |= opts
    return names, valued


def hoist_global_options(args: list[str], group: Any) -> list[str]:
    """Move the global options found after the command (and before `--`) in front of it,
    except where the command has an option of that name itself (`build -v`)."""
    _, top_valued = _options(group)
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        name, attached = _split(args[i])
        i += 2 if name in top_valued and not attached else 1
    if i >= len(args) or args[i] == "--":
        return list(args)
    prefix, words, i = list(args[:i]), [args[i]], i + 1
    command = getattr(group, "commands", {}).get(words[0])
    while command is not None and hasattr(command, "commands") and i < len(args):
        if args[i].startswith("-"):
            break
        command = command.commands.get(args[i])
        words.append(args[i])
        i += 1
    own, own_valued = _options(command)
    hoisted: list[str] = []
    rest: list[str] = []
    while i < len(args):
        token = args[i]
        if token == "--":
            rest += args[i:]
            break
        name, attached = _split(token)
        takes_value = not attached and i + 1 < len(args)
        if name in own:
            rest += args[i : i + 2] if name in own_valued and takes_value else [token]
            i += 2 if name in own_valued and takes_value else 1
        elif name in GLOBAL_VALUED:
            hoisted += args[i : i + 2] if takes_value else [token]
            i += 2 if takes_value else 1
        elif name in GLOBAL_FLAGS:
            hoisted.append(token)
            i += 1
        else:
            rest.append(token)
            i += 1
    return prefix + hoisted + words + rest
