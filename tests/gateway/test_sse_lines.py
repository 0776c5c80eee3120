from gateway.clients.vllm import _sse_lines


async def _collect(chunks: list[bytes]) -> list[str]:
    async def source():
        for chunk in chunks:
            yield chunk

    return [line async for line in _sse_lines(source())]


async def test_lines_split_on_newline_only_even_inside_json_strings():
    event = 'data: {"content": "a\u2028b\u0085c\x1dd"}'.encode()
    # Split mid-event and mid-UTF-8 sequence: lines still come out whole.
    raw = event + b"\n\ndata: [DONE]\n\n"
    lines = await _collect([raw[:20], raw[20:23], raw[23:]])
    assert lines == [event.decode(), "", "data: [DONE]", ""]


async def test_crlf_and_a_trailing_partial_line():
    assert await _collect([b"data: 1\r\n", b"data: 2"]) == ["data: 1", "data: 2"]
