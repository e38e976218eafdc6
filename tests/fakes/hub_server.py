"""A local stand-in for the Hugging Face Hub, spoken to by the real huggingface_hub client.

Routes and headers follow the shared reference hub.md section 1.12 (verified against
huggingface_hub 1.33 and 2.4). Point the client at it with HF_ENDPOINT=server.url.

    with HubStandIn() as hub:
        hub.add_model("org/name", files={"config.json": b"{...}"}, safetensors={"BF16": 8_030_261_248})
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    safetensors: dict[str, int] | None = None  # dtype -> element count, as the Hub reports it
    gated: bool = False
    extra: dict = field(default_factory=dict)  # more model_info fields (tags, cardData, downloads…)
    sizes: dict[str, int] = field(default_factory=dict)  # reported sizes of files not served (weights)

    def model_info(self, with_sizes: bool) -> dict:
        siblings = []
        for name in [*self.files, *self.sizes]:
            entry: dict = {"rfilename": name}
            if with_sizes:
                entry["size"] = self.sizes.get(name, len(self.files.get(name, b"")))
                entry["blobId"] = hashlib.sha1(name.encode()).hexdigest()
            siblings.append(entry)
        info = {"_id": "0" * 24, "id": self.repo_id, "modelId": self.repo_id, "sha": SHA, "private": False,
                "gated": "manual" if self.gated else False, "disabled": False, "downloads": 5, "likes": 1,
                "lastModified": "2026-09-25T14:34:16.000Z", "createdAt": "2026-07-18T08:56:00.000Z",
                "library_name": "transformers", "pipeline_tag": "text-generation", "tags": ["safetensors"],
                "siblings": siblings, **self.extra}
        if self.safetensors:
            info["safetensors"] = {"parameters": self.safetensors, "total": sum(self.safetensors.values())}
        return info


class HubStandIn:
    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                stand_in._route(self, head=True)

            def do_GET(self):
                stand_in._route(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add_model(self, repo_id: str, **kwargs) -> FakeRepo:
        repo = FakeRepo(repo_id, **kwargs)
        self.repos[repo_id] = repo
        return repo

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _route(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        url = urlsplit(handler.path)
        path = unquote(url.path)
        self.requests.append(f"{handler.command} {path}")
        query = parse_qs(url.query)
        if path.startswith("/api/models/"):
            parts = path[len("/api/models/"):].split("/")
            repo = self.repos.get("/".join(parts[:2]))
            if repo is None:
                return self._send(handler, 404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}, head)
            body = json.dumps(repo.model_info(with_sizes=query.get("blobs") == ["true"])).encode()
            return self._send(handler, 200, body, {"Content-Type": "application/json"}, head)
        parts = path.lstrip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self.repos.get("/".join(parts[:2]))
            name = "/".join(parts[4:])
            if repo is None:
                return self._send(handler, 404, b"", {"X-Error-Code": "RepoNotFound"}, head)
            if repo.gated:
                return self._send(handler, 403, b"Access to model is restricted.",
                                  {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"}, head)
            if name not in repo.files:
                return self._send(handler, 404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": SHA}, head)
            body = repo.files[name]
            etag = hashlib.sha1(body).hexdigest()
            return self._send(handler, 200, body, {"X-Repo-Commit": SHA, "ETag": f'"{etag}"'}, head)
        self._send(handler, 404, b"", {}, head)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict, head: bool) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)
