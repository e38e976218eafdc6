"""How llmdesk talks to the Hugging Face Hub: the token it sends, and the Hub's exceptions as Problems.

Every module of this package that calls the Hub wraps the call in `hub_errors` and sends `hub_token()`.
"""

from __future__ import annotations

from pathlib import Path

from llmdesk.core.base.errors import BadInput, Problem, ProblemError
from llmdesk.core.base.secrets import load_hf_token
from llmdesk.core.fit.model_config import BadModelConfig

# --- errors -------------------------------------------------------------------------------------

class hub_errors:
    """Turn huggingface_hub's exceptions into Problems a person can act on.

    `with hub_errors("org/name"):` around calls about one repo; `with hub_errors():` around a
    listing (search), where a 404/401 is not about a missing repo."""

    def __init__(self, repo_id: str | None = None):
        self.repo_id = repo_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, ProblemError):
            return False
        from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                            LocalEntryNotFoundError, OfflineModeIsEnabled,
                                            RepositoryNotFoundError)

        repo = self.repo_id
        if isinstance(exc, GatedRepoError) and repo:
            raise ProblemError(Problem(
                f"{repo} is gated", "Its authors ask you to accept their terms before downloading it, "
                "and llmdesk has no Hugging Face token that was granted access.",
                f"Request access on https://huggingface.co/{repo}, then add your token "
                "(Settings, or the HF_TOKEN environment variable).")) from exc
        if isinstance(exc, RepositoryNotFoundError) and repo:
            raise BadInput(Problem(
                f"No model called {repo}", "The Hugging Face Hub has no such repository, or it is "
                "private and your token cannot see it.", "Check the spelling (owner/name).")) from exc
        if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
            raise BadModelConfig(Problem(f"{repo or 'The repository'} is missing a file",
                                         str(exc).splitlines()[0], None)) from exc
        if isinstance(exc, OfflineModeIsEnabled):
            raise ProblemError(Problem(
                "Hugging Face access is switched off", "HF_HUB_OFFLINE=1 is set, so llmdesk does not "
                "contact the Hub.", "Unset HF_HUB_OFFLINE to search and download; local models still "
                "work.")) from exc
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, HfHubHTTPError) and status == 401:
            raise ProblemError(Problem(
                "Hugging Face refused the token", "The Hub answered 401: the token llmdesk sent is "
                "invalid or expired.", "Replace the token (Settings, or HF_TOKEN), or remove it to "
                "browse public models.")) from exc
        if isinstance(exc, HfHubHTTPError) and status == 429:
            raise ProblemError(Problem(
                "Hugging Face is limiting requests", "The Hub answered 429 (too many requests).",
                "Wait a minute and try again; signed-in users (with a token) get higher limits.")) from exc
        if isinstance(exc, (HfHubHTTPError, OSError, LocalEntryNotFoundError, RepositoryNotFoundError)) \
                or type(exc).__module__.startswith(("httpx", "requests")):
            raise ProblemError(Problem(
                "Could not reach the Hugging Face Hub", str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "Check the network connection (or a proxy) and try again; local models still work.")) from exc
        return False

def check_repo_id(text: str) -> str:
    """`text` if it is a Hub repo id (owner/name), else BadInput saying what was given and the form
    expected; a path on this computer is told apart, since a person may mean a local model."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not text.strip():
        raise BadInput(Problem("No repo id given", "The model's name on the Hugging Face Hub is empty.",
                               "Give it as owner/name, e.g. Qwen/Qwen2.5-7B-Instruct."))
    looks_local = text.startswith(("/", ".", "~")) or Path(text).expanduser().exists()
    try:
        if looks_local:
            raise HFValidationError("a path")
        validate_repo_id(text)  # a bare legacy name ("gpt2") is valid: the Hub redirects it
    except HFValidationError:
        if looks_local:
            raise BadInput(Problem(f"'{text}' is a path, not a Hugging Face repo id",
                                   "This takes a model on the Hugging Face Hub, named owner/name.",
                                   f"For a model on this computer use llmdesk fit {text} or llmdesk serve {text}; "
                                   "for the Hub, give owner/name, e.g. Qwen/Qwen2.5-7B-Instruct.")) from None
        raise BadInput(Problem(f"Not a Hugging Face repo id: '{text}'",
                               "A repo id is owner/name: letters, digits, '-', '_' and '.', one slash.",
                               "Give it as owner/name, e.g. Qwen/Qwen2.5-7B-Instruct.")) from None
    return text


def hub_token(token: str | None) -> str | None:
    """The token to send: the caller's, else the one llmdesk stores (HF_TOKEN, keyring, token file),
    which huggingface_hub alone would not find in the keyring."""
    return token or load_hf_token().token

