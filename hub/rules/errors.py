"""Rule-file errors: each names the file, the line, the field path and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass

from hub.errors import RuleError


@dataclass(frozen=True)
class RuleProblem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RuleFileError(RuleError):
    """One or more problems in rule files; str() lists them one per line."""

    def __init__(self, problems: list[RuleProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
