import pytest

from llmdesk.core.base.errors import BadInput
from llmdesk.core.chat.client import ChatParams, ReplyStats
from llmdesk.core.chat.session import (PRESETS, Turn, format_param, oldest_droppable, params_from_dict,
                                       params_to_dict, parse_param, parse_stop, request_messages, stats_text)


def test_params_round_trip_through_the_stored_shape():
    params = ChatParams(temperature=0.3, top_k=40, max_tokens=512, stop=("\n\n", "END"), seed=7,
                        repetition_penalty=1.1)
    stored = params_to_dict(params)
    assert stored == {"temperature": 0.3, "top_k": 40, "max_tokens": 512, "stop": ["\n\n", "END"], "seed": 7,
                      "repetition_penalty": 1.1}
    assert params_from_dict(stored) == params


def test_params_from_old_or_odd_data_keep_what_makes_sense():
    assert params_from_dict(None) == ChatParams()
    assert params_from_dict({"temperature": "hot", "top_k": 5.0, "max_tokens": True, "stop": ["x", 3, ""],
                             "unknown": 1}) == ChatParams(top_k=5, stop=("x",))


def test_presets_are_distinct_and_server_defaults_send_nothing():
    assert PRESETS["Server defaults"].body() == {}
    assert len({params_to_dict(p).__repr__() for p in PRESETS.values()}) == len(PRESETS)


@pytest.mark.parametrize("name,text,value", [
    ("temperature", "", None), ("temperature", " 0.7 ", 0.7), ("temperature", "0", 0.0),
    ("top_k", "-1", -1), ("max_tokens", "4096", 4096), ("seed", "-5", -5), ("presence_penalty", "-2", -2.0),
])
def test_parse_param_accepts(name, text, value):
    assert parse_param(name, text) == value


@pytest.mark.parametrize("name,text,words", [
    ("temperature", "2.5", "between 0 and 2"), ("top_p", "abc", "not a number"),
    ("max_tokens", "0", "from 1"), ("max_tokens", "1.5", "not a whole number"),
    ("repetition_penalty", "0", "between 0.01 and 10"),
])
def test_parse_param_refuses_with_the_field_named(name, text, words):
    with pytest.raises(BadInput) as info:
        parse_param(name, text)
    assert words in (info.value.problem.title + " " + info.value.problem.explanation)


def test_stop_strings_one_per_line_with_escapes():
    assert parse_stop("END\n\\n\\n\n\nObservation:") == ("END", "\n\n", "Observation:")
    assert parse_stop("") == ()


def test_format_param():
    assert (format_param(None), format_param(0.7), format_param(40), format_param(1.0)) == ("", "0.7", "40", "1")


def test_request_messages_system_then_included_turns():
    turns = [Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "old", excluded=True),
             Turn("assistant", "old reply", excluded=True), Turn("user", "now?")]
    assert request_messages("Be brief.", turns) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "now?"}]
    assert request_messages("  ", [Turn("user", "x")]) == [{"role": "user", "content": "x"}]


def test_an_empty_stopped_reply_is_skipped_and_two_user_turns_are_joined():
    turns = [Turn("user", "first"), Turn("assistant", ""), Turn("user", "second")]
    assert request_messages("", turns) == [{"role": "user", "content": "first\n\nsecond"}]


def test_oldest_droppable_is_the_first_included_exchange_never_the_question():
    turns = [Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c"), Turn("assistant", "d"), Turn("user", "e")]
    assert oldest_droppable(turns) == [0, 1]
    turns[0] = Turn("user", "a", excluded=True)
    turns[1] = Turn("assistant", "b", excluded=True)
    assert oldest_droppable(turns) == [2, 3]
    assert oldest_droppable([Turn("user", "only")]) == []
    assert oldest_droppable([Turn("user", "q"), Turn("assistant", "partial")]) == []


def test_stats_text():
    stats = ReplyStats(ttft_s=0.2134, tokens_per_s=84.23, prompt_tokens=35, completion_tokens=1200,
                       finish_reason="length")
    assert stats_text(stats) == ("213 ms to first token · 84.2 tokens/s · 35 prompt + 1,200 reply tokens"
                                 " · stopped at max tokens")
    assert stats_text({"ttft_s": 2.5, "completion_tokens": 3}) == "2.50 s to first token · 3 reply tokens"
    assert stats_text(None) == "" and stats_text({}) == ""
