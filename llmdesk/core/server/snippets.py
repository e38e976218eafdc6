"""Ready-to-paste clients for a server's OpenAI endpoint: curl, Python, JavaScript and the values a
tool asks for. Every value is quoted for the language it lands in: a model named after a folder may
hold a quote, and a pasted snippet must never run anything but the request (pure; no I/O)."""

from __future__ import annotations

import json
import shlex


def snippets(url: str, model: str, api_key: str | None) -> dict[str, str]:
    """Clients for the OpenAI base URL `url` (ending in /v1)."""
    key = api_key or "EMPTY"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]}, ensure_ascii=False)
    js = json.dumps  # a JSON string is a valid JavaScript and Python string literal
    return {
        "curl": (f"curl {shlex.quote(url + '/chat/completions')} \\\n  -H 'Content-Type: application/json' \\\n"
                 f"  -H {shlex.quote('Authorization: Bearer ' + key)} \\\n  -d {shlex.quote(body)}"),
        "Python": (f"from openai import OpenAI\n\nclient = OpenAI(base_url={js(url)}, api_key={js(key)})\n"
                   f"reply = client.chat.completions.create(\n    model={js(model)},\n"
                   f"    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\n"
                   f"print(reply.choices[0].message.content)"),
        "JavaScript": (f"import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: {js(url)}, "
                       f"apiKey: {js(key)} }});\nconst reply = await client.chat.completions.create({{\n"
                       f"  model: {js(model)},\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\n"
                       f"console.log(reply.choices[0].message.content);"),
        "Tools": (f"Any OpenAI-compatible tool (IDEs, agents, scripts):\n  base URL   {url}\n"
                  f"  API key    {key}\n  model      {model}"),
    }
