"""The docs state only what exists: every test a guarantee cites, every command a shell block
shows (the make target, the script, its flags), every count of cases, every link between docs.

Each check is a small function run twice: once on the real docs, and once on a made-up line
that breaks it, so that a check that could never fail is caught too.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
GUARANTEES = REPO / "docs" / "guarantees.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
MAKEFILE = REPO / "Makefile"
BENCH_ENTRY = REPO / "bench" / "run.py"

# Tools a doc may show without this repository defining them: only well-formedness is checked.
EXTERNAL_TOOLS = {"aws", "npx", "git", "jq", "echo", "cat", "curl", "cd", "ls", "export", "pip", "python3", "sudo", "apt-get"}
SHELL_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>sh|bash|console)\s*$")
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "twenty": 20,
}  # fmt: skip
NUMBER = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
HISTORY = re.compile(
    r"issue [0-9]+|\bpoint [0-9]+\b|\b(first|second|third|fourth|fifth|sixth|seventh|eighth|last|this|previous) session\b"
    r"|\brounds? of work\b",
    re.IGNORECASE,
)


def as_number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


# ---------------------------------------------------------------------------------------------
# Citations: `tests/x/test_y.py`, `tests/x/test_y.py::test_z`, and `::test_z` reusing the file
# ---------------------------------------------------------------------------------------------

CITATION = re.compile(r"`(?P<path>tests/[\w/]+\.py)?(?:::(?P<name>[A-Za-z_]\w*(?:::\w+)?))?`")


@dataclass(frozen=True)
class Citation:
    path: str
    name: str | None  # None: the whole file is cited
    end: int  # offset just after the citation in the text (counts follow it)


def citations(text: str) -> list[Citation]:
    """Every test citation in order; a bare `::name` reuses the file of the citation before it."""
    found: list[Citation] = []
    current_path: str | None = None
    for match in CITATION.finditer(text):
        path, name = match.group("path"), match.group("name")
        if path is None and name is None:
            continue
        if path is None:
            if current_path is None:
                raise AssertionError(f"`::{name}` cites no file: no `tests/...py` citation comes before it")
            path = current_path
        current_path = path
        found.append(Citation(path, name, match.end()))
    return found


def defined_tests(path: Path) -> set[str]:
    """Test functions defined in a file, as `name` or `Class::name`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{item.name}" for item in node.body if isinstance(item, ast.FunctionDef))
    return names


def broken_citations(text: str, root: Path = REPO) -> list[str]:
    problems = []
    for citation in citations(text):
        file = root / citation.path
        if not file.is_file():
            problems.append(f"{citation.path}: no such file")
        elif citation.name is not None and citation.name not in defined_tests(file):
            problems.append(f"{citation.path}::{citation.name}: not defined in that file")
    return problems


def test_the_guarantees_cite_their_tests() -> None:
    # Given the guarantees, each promise followed by the tests that prove it
    # When its citations are listed, Then there is one or more for each promise
    promises = [line for line in GUARANTEES.read_text(encoding="utf-8").splitlines() if line.startswith("- ")]
    assert len(promises) > 40
    assert all(citations(promise) for promise in promises)


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_every_test_a_doc_cites_exists(doc: Path) -> None:
    # Given a doc (the guarantees above all), When every cited test file and function is looked up,
    # Then each names a file that exists and a test defined in it
    assert broken_citations(doc.read_text(encoding="utf-8")) == []


def test_a_citation_of_a_missing_test_or_file_is_reported() -> None:
    # Given a made-up guarantee citing a real file, a test it lacks through `::`, and a missing file
    text = (
        "- `tests/unit/test_docs.py::test_the_guarantees_cite_their_tests`, "
        "`::test_that_does_not_exist`; `tests/unit/test_no_such_file.py`."
    )
    # When checked, Then the two broken ones are reported and the real one is not
    assert broken_citations(text) == [
        "tests/unit/test_docs.py::test_that_does_not_exist: not defined in that file",
        "tests/unit/test_no_such_file.py: no such file",
    ]


# ---------------------------------------------------------------------------------------------
# Counts: "(43 events)" after a parametrized test, "(all four tests)" after a file
# ---------------------------------------------------------------------------------------------

COUNT_AFTER = re.compile(rf"\s*\((?P<all>all )?(?P<number>{NUMBER}) (?P<noun>[a-z]+)", re.IGNORECASE)


def module_lists(tree: ast.Module) -> dict[str, ast.expr]:
    return {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def cases_of(value: ast.expr, lists: dict[str, ast.expr]) -> int:
    """How many cases a parametrize list holds: a literal's length, or that of the list a comprehension walks."""
    if isinstance(value, ast.Name):
        return cases_of(lists[value.id], lists)
    if isinstance(value, ast.List | ast.Tuple) and not any(isinstance(item, ast.Starred) for item in value.elts):
        return len(value.elts)
    if isinstance(value, ast.ListComp):
        return cases_of(value.generators[0].iter, lists)
    raise AssertionError(f"cannot count the cases of {ast.unparse(value)}")


def parametrized_cases(path: Path, test_name: str) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lists = module_lists(tree)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == test_name:
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize"):
                    return cases_of(decorator.args[1], lists)
    raise AssertionError(f"{path.name}::{test_name} is not parametrized: a count after it cannot be checked")


def test_functions_in(path: Path) -> int:
    return sum(1 for name in defined_tests(path) if name.split("::")[-1].startswith("test_"))


test_functions_in.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def wrong_counts(text: str, root: Path = REPO) -> list[str]:
    """Every count written right after a citation, against what the cited tests hold."""
    problems = []
    for citation in citations(text):
        match = COUNT_AFTER.match(text, citation.end)
        if match is None or not (root / citation.path).is_file():
            continue
        stated = as_number(match.group("number"))
        if citation.name is None:
            if match.group("noun") != "tests":
                continue
            actual = test_functions_in(root / citation.path)
        else:
            actual = parametrized_cases(root / citation.path, citation.name)
        if stated != actual:
            problems.append(f"{citation.path}{'::' + citation.name if citation.name else ''}: says {stated}, has {actual}")
    return problems


def unanchored_test_counts(text: str) -> list[str]:
    """A phrase like "all three tests" that follows no file citation cannot be checked: refuse it."""
    anchored = {
        COUNT_AFTER.match(text, citation.end).start("number")  # type: ignore[union-attr]
        for citation in citations(text)
        if COUNT_AFTER.match(text, citation.end)
    }
    return [
        match.group(0)
        for match in re.finditer(rf"\b(all )?{NUMBER} tests\b", text, re.IGNORECASE)
        if match.start(2) not in anchored
    ]


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_every_count_a_doc_states_matches_the_tests(doc: Path) -> None:
    # Given a doc, where "(N events)" follows a parametrized test and "(all N tests)" a test file
    text = doc.read_text(encoding="utf-8")
    # When each count is compared with the cases and functions the cited file defines
    # Then they agree, and no count of tests floats free of the file it counts
    assert wrong_counts(text) == []
    assert unanchored_test_counts(text) == []


def test_a_count_that_drifted_from_its_test_is_reported(tmp_path: Path) -> None:
    # Given a test file of two tests, one parametrized over four cases through a comprehension
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_made_up.py").write_text(
        "import pytest\n"
        "CASES = [1, 2, 3, 4]\n"
        "RUNS = [pytest.param(case, state) for case in CASES for state in ('a', 'b')]\n"
        "@pytest.mark.parametrize(('case', 'state'), RUNS)\n"
        "def test_cases(case, state): pass\n"
        "def test_other(): pass\n"
    )
    # And made-up lines that count five cases, three tests, and four tests of no file
    text = (
        "`tests/test_made_up.py::test_cases` (5 files); `tests/test_made_up.py` (all three tests); and all four tests somewhere."
    )
    # When checked, Then both wrong counts and the unanchored one are reported
    assert wrong_counts(text, root=tmp_path) == [
        "tests/test_made_up.py::test_cases: says 5, has 4",
        "tests/test_made_up.py: says 3, has 2",
    ]
    assert unanchored_test_counts(text) == ["all four tests"]
    # And the right counts pass
    assert (
        wrong_counts("`tests/test_made_up.py::test_cases` (four files), `tests/test_made_up.py` (all 2 tests)", root=tmp_path)
        == []
    )


# ---------------------------------------------------------------------------------------------
# Commands in shell blocks: make targets and variables, scripts and their flags
# ---------------------------------------------------------------------------------------------


def shell_blocks(text: str) -> Iterator[str]:
    """The body of every ```sh / ```bash / ```console block (also indented under a list item)."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = SHELL_FENCE.match(lines[index])
        index += 1
        if fence is None:
            continue
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            line = lines[index].strip()
            if fence.group("lang") == "console":
                line = line[2:] if line.startswith("$ ") else ""  # output lines are not commands
            body.append(line)
            index += 1
        index += 1
        yield "\n".join(body)


SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;"}
REDIRECTIONS = {">", ">>", "<", "&>"}
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
PLACEHOLDER = re.compile(r"<[\w-]+>")  # `<env>`, `<account>`: the docs' own convention, not a redirection


def command_lines(block: str) -> Iterator[str]:
    """A block's lines, backslash continuations joined."""
    yield from (line for line in block.replace("\\\n", " ").splitlines() if line.strip())


def simple_commands(line: str) -> Iterator[list[str]]:
    """Split one line into simple commands (words), past pipes, `&&`, `$(...)`, redirections and comments."""
    lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    command: list[str] = []
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in SEPARATORS:
            if command:
                yield command
            command = []
        elif token in REDIRECTIONS:
            skip_next = True
        elif not command and ASSIGNMENT.match(token):
            continue  # VAR=value before a command, or a plain assignment (`X=$(cmd)` lexes as `X=$`, `(`, `cmd`)
        else:
            command.append(token)
    if command:
        yield command


def makefile() -> tuple[set[str], set[str]]:
    """The Makefile's targets and the variables it reads."""
    text = MAKEFILE.read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w.-]*):(?!=)", text, re.MULTILINE))
    variables = set(re.findall(r"\$\((\w+)\)", text)) | set(re.findall(r"^(\w+) *\?=", text, re.MULTILINE))
    return targets, variables


def argparse_flags(script: Path) -> set[str]:
    """Every option string the script's argparse accepts (plus -h/--help)."""
    flags = {"-h", "--help"}
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            flags.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-")
            )
    return flags


def unknown_flags(words: list[str], script: Path) -> list[str]:
    accepted = argparse_flags(script)
    flags = []
    for word in words:
        if word == "--":
            break  # what follows goes to another program
        if word.startswith("-") and word != "-":
            flags.append(word.split("=", 1)[0])
    return [flag for flag in flags if flag not in accepted]


def make_problems(words: list[str]) -> list[str]:
    targets, variables = makefile()
    problems = []
    for word in words[1:]:
        if "=" in word:
            name, value = word.split("=", 1)
            if name not in variables:
                problems.append(f"make: the Makefile reads no variable {name}")
            elif name == "BENCH_ARGS":
                problems += [f"bench: no flag {flag}" for flag in unknown_flags(shlex.split(value), BENCH_ENTRY)]
        elif word.startswith("-"):
            continue
        elif word not in targets:
            problems.append(f"make: no target {word}")
    return problems


def command_problems(words: list[str], root: Path = REPO) -> list[str]:
    program = words[0]
    if program == "make":
        return make_problems(words)
    if program.startswith(("./scripts/", "scripts/")):
        script = root / program.removeprefix("./")
        if not script.is_file():
            return [f"{program}: no such script"]
        if not os.access(script, os.X_OK):
            return [f"{program}: not executable"]
        return [f"{program}: does not accept {flag}" for flag in unknown_flags(words[1:], script)]
    if program in EXTERNAL_TOOLS or program.startswith(".venv/bin/"):
        return []
    return [f"{program}: neither a make target, one of our scripts, nor a known tool"]


def doc_command_problems(text: str) -> list[str]:
    problems = []
    for block in shell_blocks(text):
        for line in command_lines(block):
            try:
                commands = list(simple_commands(line))
            except ValueError as error:  # unbalanced quotes
                problems.append(f"not well-formed ({error}): {line!r}")
                continue
            for words in commands:
                problems += command_problems(words)
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_every_command_a_doc_shows_exists_with_its_flags(doc: Path) -> None:
    # Given a doc's shell blocks
    text = doc.read_text(encoding="utf-8")
    # When each command is split out and looked up in the Makefile, scripts/ and their argparse
    # Then every target, variable, script and flag exists, and the rest is well-formed shell
    assert doc_command_problems(text) == []


def test_the_readme_shows_its_commands_in_shell_blocks() -> None:
    # Given the README, When its shell commands are listed, Then the two commands and the scripts are among them
    programs = {
        " ".join(words[:2])
        for block in shell_blocks(README.read_text(encoding="utf-8"))
        for line in command_lines(block)
        for words in simple_commands(line)
    }
    assert {"make demo", "make test"} <= programs
    assert any(program.startswith("./scripts/status") for program in programs)


def test_a_command_that_drifted_from_the_repository_is_reported() -> None:
    # Given a made-up doc showing a missing target, an unread variable, a missing script,
    # a flag a script lacks, a bench flag that does not exist, a non-executable file and broken quoting
    text = "\n".join(
        [
            "```sh",
            "make tests",
            "make synth ENVIRONMENT=dev",
            "./scripts/statuss --date 2026-01-30",
            "echo '{}' | ./scripts/invoke --time 60 ingest -   # a comment --not-a-flag",
            "LOG=$(./scripts/status --since 5m)",
            'make bench BENCH_ARGS="--sizes 100 --rows 5"',
            "scripts/demo.py",
            "rm -rf build",
            "```",
            "   ```console",
            "   $ make lint",
            "   --output-not-a-command",
            "   ```",
            "```bash",
            "aws lambda invoke --payload '{\"unclosed",
            "```",
        ]
    )
    # When checked, Then each is reported, and the valid commands are not
    assert doc_command_problems(text) == [
        "make: no target tests",
        "make: the Makefile reads no variable ENVIRONMENT",
        "./scripts/statuss: no such script",
        "./scripts/invoke: does not accept --time",
        "./scripts/status: does not accept --since",
        "bench: no flag --rows",
        "scripts/demo.py: not executable",
        "rm: neither a make target, one of our scripts, nor a known tool",
        "not well-formed (No closing quotation): 'aws lambda invoke --payload \\'{\"unclosed'",
    ]


# ---------------------------------------------------------------------------------------------
# Links between docs, the README's shape, and no history
# ---------------------------------------------------------------------------------------------

LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    slugs = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE):
        slugs.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return slugs


def broken_links(doc: Path, text: str) -> list[str]:
    problems = []
    for match in LINK.finditer(text):
        target = match.group("target")
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no such heading")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_every_link_between_docs_lands(doc: Path) -> None:
    # Given a doc's relative links, When each file and heading is looked up, Then it exists
    assert broken_links(doc, doc.read_text(encoding="utf-8")) == []


def test_a_link_to_a_missing_doc_or_heading_is_reported() -> None:
    # Given links to a real heading, a missing heading and a missing file
    text = "[a](docs/guarantees.md#nothing-lost-nothing-half-published) [b](docs/guarantees.md#no-such) [c](docs/nope.md)"
    # When checked, Then only the two broken ones are reported
    assert broken_links(README, text) == ["docs/guarantees.md#no-such: no such heading", "docs/nope.md: no such file"]


def test_the_readme_is_short_and_keeps_its_two_commands_and_guarantees_heading() -> None:
    # Given the README, Then a user reads it in minutes, it shows the two commands and heads its promises
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert "make demo" in text
    assert "make test" in text
    assert re.search(r"^## Guarantees$", text, re.MULTILINE)


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_no_doc_tells_the_projects_history(doc: Path) -> None:
    # Given a doc, When searched for issue numbers, sessions and rounds of work, Then none is found
    assert [match.group(0) for match in HISTORY.finditer(doc.read_text(encoding="utf-8"))] == []


def test_history_in_a_doc_is_found() -> None:
    # Given made-up lines that tell history, When searched, Then each is found
    text = "Fixed in issue 16, point 3; measured in the sixth session; after two rounds of work."
    assert [match.group(0) for match in HISTORY.finditer(text)] == ["issue 16", "point 3", "sixth session", "rounds of work"]
