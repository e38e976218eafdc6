"""vLLM's log lines shortened for the Server page's narrow pane (core/server/log_lines.py), on real vLLM 0.26 output."""

from pathlib import Path

from llmdesk.core.server.log_lines import compact, message_of

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "vllm-samples"  # real vLLM 0.26.0 output


def test_a_line_keeps_its_time_and_message_and_drops_what_repeats():
    line = "(APIServer pid=845) INFO 11-27 22:32:58 [api_server.py:677] Starting vLLM server on http://0.0.0.0:8000"
    assert compact(line) == "22:32:58 Starting vLLM server on http://0.0.0.0:8000"
    assert message_of(line) == "Starting vLLM server on http://0.0.0.0:8000"


def test_another_process_and_a_level_above_info_are_named():
    assert compact("(EngineCore_DP0 pid=12) ERROR 11-27 22:34:27 [core.py:1330] CUDA out of memory") == \
        "22:34:27 ERROR [EngineCore_DP0] CUDA out of memory"
    assert compact("(EngineCore pid=941) WARNING 11-27 22:31:40.123 [utils.py:9] slow") == \
        "22:31:40 WARNING [EngineCore] slow"
    # a traceback's lines come from the process without a logger record
    assert compact("(EngineCore pid=941) Traceback (most recent call last):") == \
        "[EngineCore] Traceback (most recent call last):"


def test_lines_that_are_not_vllms_logger_come_unchanged():
    for line in ("[W1127 22:32:10.157659943 socket.cpp:207] [c10d] The hostname of the client socket",
                 '  File "/srv/site/vllm/v1/engine/core_client.py", line 963, in __init__',
                 "Collecting vllm==0.26.0", ""):
        assert compact(line) == line


def test_every_line_of_a_real_start_is_shorter_and_loses_no_message():
    lines = (SAMPLES / "tiny-server.log").read_text(encoding="utf-8").splitlines()
    prefixed = [line for line in lines if line.startswith("(APIServer pid=") and " INFO " in line]
    assert len(prefixed) > 20
    for line in prefixed:
        short = compact(line)
        assert len(short) <= len(line) - 40 and "pid=" not in short, line
        assert short.endswith(message_of(line)), line


def test_a_very_long_line_is_cut_and_says_how_much_is_left():
    config = "(EngineCore pid=9) INFO 11-27 22:31:30 [core.py:93] Initializing a V1 LLM engine with config: " + "x" * 3000
    short = compact(config)
    assert short.startswith("22:31:30 [EngineCore] Initializing a V1 LLM engine with config: xxx")
    assert short.endswith("… (+2,802 characters)") and len(short) < 300


def test_uvicorns_lines_lose_their_padding():
    assert compact('(APIServer pid=845) INFO:     127.0.0.1:53358 - "GET /v1/models HTTP/1.1" 200 OK') == \
        '127.0.0.1:53358 - "GET /v1/models HTTP/1.1" 200 OK'
    assert compact("(APIServer pid=845) ERROR:    Exception in ASGI application") == \
        "ERROR Exception in ASGI application"


def test_a_progress_bar_redrawn_in_place_shows_its_last_state():
    line = ("(EngineCore pid=7) Loading safetensors checkpoint shards:   0% Completed | 0/4\r"
            "Loading safetensors checkpoint shards:  50% Completed | 2/4\r"
            "Loading safetensors checkpoint shards: 100% Completed | 4/4\r\n")
    assert compact(line) == "[EngineCore] Loading safetensors checkpoint shards: 100% Completed | 4/4"


def test_terminal_colours_are_dropped():
    line = "(APIServer pid=5) \x1b[32mINFO\x1b[0m 11-27 22:32:58 [api_server.py:677] Starting vLLM server"
    assert compact(line) == "22:32:58 Starting vLLM server"
