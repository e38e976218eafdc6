from llmdesk.core.base.errors import BadInput, Problem, ProblemError, problem_from_exception


def test_problem_errors_keep_their_words():
    problem = Problem("Port 8000 is taken", "Another program listens there.", "Use port 8001.")
    assert problem_from_exception(BadInput(problem), "starting") is problem
    assert problem_from_exception(ProblemError(problem), "starting").fix == "Use port 8001."


def test_os_errors_name_the_file():
    err = PermissionError(13, "Permission denied", "/models/x")
    assert problem_from_exception(err, "saving the model") == Problem(
        "Could not finish saving the model", "Permission denied (/models/x).",
        "Check the path, free disk space and permissions, then try again.")


def test_other_exceptions_are_a_bug_report_not_a_traceback():
    problem = problem_from_exception(KeyError(), "parsing")
    assert problem.title == "Something went wrong while parsing" and problem.explanation == "KeyError"
