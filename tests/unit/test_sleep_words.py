"""core/server/sleep_words.py: one wording of the sleep gate's state for the Server page and the CLI."""

from llmdesk.core.server.sleep_words import sleep_text


def test_each_state_in_words():
    assert sleep_text({"state": "awake"}) == "Awake"
    assert sleep_text({"state": "awake", "in_flight": 3, "last_resume": {"seconds": 2.21}}) == (
        "Awake, 3 request(s) in flight; last resume took 2.2 s")
    assert sleep_text({"state": "pausing", "in_flight": 2, "reason": "idle"}) == (
        "Pausing after its idle time: waiting for 2 request(s) in flight to finish…")
    assert sleep_text({"state": "pausing"}) == "Pausing: freeing the GPU…"
    assert sleep_text({"state": "resuming", "reason": "request"}) == (
        "Resuming for a request: loading the model back onto the GPU…")


def test_paused_says_what_was_freed_and_how_it_comes_back_for_each_reader():
    snapshot = {"state": "paused", "last_pause": {"reason": "control", "seconds": 0.06}, "wake_on_request": True,
                "gpu_freed_bytes": 70 * 1024**3}
    assert sleep_text(snapshot) == ("Paused from the command line in 0.1 s: 70.0 GiB of GPU memory freed. "
                                    "The next request wakes it; or press Resume.")
    refused = dict(snapshot, wake_on_request=False, gpu_freed_bytes=None)
    assert sleep_text(refused, resume="run llmdesk server resume") == (
        "Paused from the command line in 0.1 s. Requests are refused (503) until you run llmdesk server resume.")
    assert sleep_text({"state": "paused"}).startswith("Paused. Requests are refused")  # nothing else known
