"""Failures as values the UI and the CLI can show: a title, a plain explanation, what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    title: str
    explanation: str
    fix: str | None = None  # what the user can do about it, in one sentence

    def as_dict(self) -> dict[str, str | None]:
        return {"title": self.title, "explanation": self.explanation, "fix": self.fix}


class ProblemError(Exception):
    """An expected failure that carries a Problem; anything else is a bug and is logged."""

    def __init__(self, problem: Problem):
        super().__init__(problem.title)
        self.problem = problem


class BadInput(ProblemError):
    """The user asked for something impossible (CLI exit code 2)."""


def problem_from_exception(exc: BaseException, doing: str) -> Problem:
    """Turn any exception into something a person can read; the traceback goes to the log."""
    if isinstance(exc, ProblemError):
        return exc.problem
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return Problem(f"Could not finish {doing}", f"{exc.strerror}{where}.",
                       "Check the path, free disk space and permissions, then try again.")
    detail = str(exc) or type(exc).__name__
    return Problem(f"Something went wrong while {doing}", detail,
                   "The full details are in the log file; please include it in a bug report.")
