"""A small Dockerfile reader: enough of the syntax to check deploy/Dockerfile's stages.

It joins continued lines (skipping comment lines inside them, as Docker does), splits the
file into stages at each FROM, expands ${ARG} references from the ARG defaults in scope,
and keeps each instruction's arguments, with JSON (exec) forms decoded. It also returns the
`# hadolint ignore=` directives with the comment block above each one.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

ARG_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclasses.dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, CMD, ...
    arguments: str  # the text after the keyword, continuations joined
    line: int  # 1-based line of the keyword


@dataclasses.dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]
    args: dict[str, str]  # ARG defaults in scope at the end of the stage

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        if not found:
            raise AssertionError(f"stage {self.name or self.image} has no {keyword}")
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON array of the stage's last KEYWORD (ENTRYPOINT, CMD, VOLUME)."""
        instruction = self.last(keyword)
        value = json.loads(instruction.arguments)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise AssertionError(f"line {instruction.line}: {keyword} is not in exec (JSON array) form")
        return value

    def env(self) -> dict[str, str]:
        """ENV values in `ENV KEY=VALUE ...` form, ARG references expanded."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in instruction.arguments.split():
                key, sep, value = pair.partition("=")
                if not sep:
                    raise AssertionError(f"line {instruction.line}: use the ENV KEY=VALUE form")
                values[key] = expand(value, self.args)
        return values


@dataclasses.dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]
    ignore_directives: list[tuple[int, list[str], list[str]]]  # (line, rules, comment block above)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise AssertionError(f"the Dockerfile has no stage named {name}")


def expand(text: str, args: dict[str, str]) -> str:
    return ARG_REF.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first line number, joined text) for each instruction; comment lines dropped."""
    result: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not current:
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        elif stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        result.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        result.append((start, " ".join(current)))
    return result


def _ignore_directives(lines: list[str]) -> list[tuple[int, list[str], list[str]]]:
    directives = []
    for index, raw in enumerate(lines):
        match = re.match(r"\s*#\s*hadolint\s+ignore=(\S+)", raw)
        if not match:
            continue
        block: list[str] = []
        above = index - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            block.insert(0, lines[above].strip().lstrip("#").strip())
            above -= 1
        directives.append((index + 1, match.group(1).split(","), block))
    return directives


def parse(path: pathlib.Path) -> Dockerfile:
    lines = path.read_text().splitlines()
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in _logical_lines(lines):
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            words = expand(arguments, global_args).split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name, instructions=[], args={}))
            continue
        if keyword == "ARG":
            key, sep, default = arguments.partition("=")
            scope = stages[-1].args if stages else global_args
            if sep:
                scope[key] = default
            elif stages and key in global_args:
                scope[key] = global_args[key]
            if not stages:
                continue
        if not stages:
            raise AssertionError(f"line {number}: {keyword} before the first FROM")
        stages[-1].instructions.append(Instruction(keyword, arguments, number))
    return Dockerfile(global_args, stages, _ignore_directives(lines))


def healthcheck(stage: Stage) -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (--interval=...) and its exec-form command."""
    instruction = stage.last("HEALTHCHECK")
    options: dict[str, str] = {}
    rest = instruction.arguments
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    if keyword.upper() != "CMD":
        raise AssertionError(f"line {instruction.line}: HEALTHCHECK without CMD")
    value = json.loads(command)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise AssertionError(f"line {instruction.line}: HEALTHCHECK CMD is not in exec (JSON array) form")
    return options, value
