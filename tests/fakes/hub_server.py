"""A local stand-in for the Hugging Face Hub, spoken to by the real huggingface_hub client.

Routes and headers follow the shared reference hub.md section 1.12 (verified against
huggingface_hub 1.33 and 2.4). Point the client at it with HF_ENDPOINT=server.url.

    with HubStandIn() as hub:
        hub.add_model("org/name", files={"config.json": b"{...}"}, safetensors={"BF16": 8_030_261_248},
                      extra={"tags": ["text-generation", "base_model:quantized:org/base"]})
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    safetensors: dict[str, int] | None = None  # dtype -> element count, as the Hub reports it
    gated: bool = False
    extra: dict = field(default_factory=dict)  # more model_info fields (tags, cardData, downloads…)
    sizes: dict[str, int] = field(default_factory=dict)  # reported sizes of files not served (weights)
    lfs: tuple[str, ...] = ()  # files stored in LFS: they get lfs metadata and X-Linked-Etag (sha256)
    corrupt: tuple[str, ...] = ()  # files whose served bytes differ from the sha256 the Hub announces
    # a hostile mirror: another commit hash, other ETags, bytes sent past a file's announced size
    commit: str = SHA
    etags: dict[str, str] = field(default_factory=dict)
    extra_bytes: dict[str, int] = field(default_factory=dict)

    def model_info(self, with_sizes: bool) -> dict:
        siblings = []
        for name in [*self.files, *self.sizes]:
            entry: dict = {"rfilename": name}
            if with_sizes:
                entry["size"] = self.sizes.get(name, len(self.files.get(name, b"")))
                entry["blobId"] = hashlib.sha1(name.encode()).hexdigest()
                if name in self.lfs:
                    entry["lfs"] = {"sha256": self.sha256(name), "size": entry["size"], "pointerSize": 134}
            siblings.append(entry)
        info = {"_id": "0" * 24, "id": self.repo_id, "modelId": self.repo_id, "sha": self.commit, "private": False,
                "gated": "manual" if self.gated else False, "disabled": False, "downloads": 5, "likes": 1,
                "lastModified": "2026-09-25T14:34:16.000Z", "createdAt": "2026-07-18T08:56:00.000Z",
                "library_name": "transformers", "pipeline_tag": "text-generation", "tags": ["safetensors"],
                "siblings": siblings, **self.extra}
        if self.safetensors:
            info["safetensors"] = {"parameters": self.safetensors, "total": sum(self.safetensors.values())}
        return info

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files.get(name, b"")).hexdigest()

    def served_bytes(self, name: str) -> bytes:
        body = self.files[name]
        return body[:-1] + bytes([body[-1] ^ 0xFF]) if name in self.corrupt and body else body

    def tree(self) -> list[dict]:
        entries = []
        for name in [*self.files, *self.sizes]:
            size = self.sizes.get(name, len(self.files.get(name, b"")))
            entry = {"type": "file", "oid": hashlib.sha1(name.encode()).hexdigest(), "size": size, "path": name}
            if name in self.lfs:
                entry["lfs"] = {"oid": self.sha256(name), "size": size, "pointerSize": 134}
            entries.append(entry)
        return entries


class HubStandIn:
    """page_size: how many models one /api/models page holds before a Link: rel="next" header.
    drop_after: {file name: bytes} — the connection is cut after that many bytes, once per file.
    offline: every request fails at the socket (the network is down).
    chunk_delay: seconds to wait between chunk_size pieces of a file body (0: send at once), so that
    a client can be cancelled mid-file. request_headers[i] holds the headers of requests[i].
    limit_per_page: treat /api/models' `limit` as the real Hub does, as the page size (the Link
    header keeps going; huggingface.js relies on it), instead of a cap across pages."""

    def __init__(self, page_size: int = 50, limit_per_page: bool = False):
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[str] = []
        self.page_size = page_size
        self.limit_per_page = limit_per_page
        self.drop_after: dict[str, int] = {}
        self.offline = False
        self.request_headers: list = []  # email.message.Message: .get() ignores case
        self.chunk_delay = 0.0
        self.lfs_redirect: str | None = None  # another server's root: LFS files are sent there with a 302, as the Hub's CDN
        self.chunk_size = 16 * 1024
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
        self.requests.append(f"{handler.command} {handler.path}")
        self.request_headers.append(handler.headers)
        if self.offline:
            handler.close_connection = True
            handler.connection.close()
            return
        query = parse_qs(url.query)
        if path == "/api/models":
            return self._list_models(handler, query, head)
        if path.startswith("/api/models/"):
            parts = path[len("/api/models/"):].split("/")
            repo = self.repos.get("/".join(parts[:2]))
            if repo is None:
                return self._send(handler, 404, b'{"error":"Repository not found"}',
                                  {"X-Error-Code": "RepoNotFound"}, head)
            if len(parts) > 3 and parts[2] == "tree":
                return self._send(handler, 200, json.dumps(repo.tree()).encode(),
                                  {"Content-Type": "application/json"}, head)
            body = json.dumps(repo.model_info(with_sizes=query.get("blobs") == ["true"])).encode()
            return self._send(handler, 200, body, {"Content-Type": "application/json"}, head)
        parts = path.lstrip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(handler, self.repos.get("/".join(parts[:2])), "/".join(parts[4:]), head)
        self._send(handler, 404, b"", {}, head)

    def _list_models(self, handler: BaseHTTPRequestHandler, query: dict, head: bool) -> None:
        """GET /api/models: search (substring of the id), author, filter (tags, all must match),
        gated, pipeline_tag, num_parameters ("min:6B,max:128B" on the safetensors or GGUF count),
        sort (descending), limit, expand (only those fields plus _id and id, as the Hub does) and
        offset-based Link pagination."""
        models = list(self.repos.values())
        needle = (query.get("search") or [""])[0].lower()
        models = [m for m in models if needle in m.repo_id.lower()]
        if author := (query.get("author") or [None])[0]:
            models = [m for m in models if m.repo_id.split("/")[0] == author]
        for tag in query.get("filter", []) + query.get("filter[]", []):
            models = [m for m in models if tag in m.extra.get("tags", []) or tag == m.extra.get("pipeline_tag")]
        if gated := (query.get("gated") or [None])[0]:
            models = [m for m in models if m.gated == (gated == "true")]
        if pipeline := (query.get("pipeline_tag") or [None])[0]:
            models = [m for m in models if m.model_info(False).get("pipeline_tag") == pipeline]
        if bounds := (query.get("num_parameters") or [None])[0]:
            models = [m for m in models if _in_parameter_range(m, bounds)]
        if sort := (query.get("sort") or [None])[0]:
            models.sort(key=lambda m: m.model_info(False).get(sort) or 0, reverse=True)
        offset = int((query.get("offset") or ["0"])[0])
        limit = int((query.get("limit") or [str(len(models))])[0])  # a limit counts across pages
        if self.limit_per_page:  # the real Hub: limit is the page size, and pages go on
            page = models[offset:offset + min(self.page_size, limit)]
            limit = len(models)
        else:
            page = models[offset:offset + self.page_size][:max(0, limit - offset)]
        headers = {"Content-Type": "application/json"}
        if offset + len(page) < min(len(models), limit):
            rest = {k: v for k, v in query.items() if k != "offset"}
            rest["offset"] = [str(offset + len(page))]
            headers["Link"] = f'<{self.url}/api/models?{urlencode(rest, doseq=True)}>; rel="next"'
        expand = set(query.get("expand", []) + query.get("expand[]", []))
        infos = [m.model_info(with_sizes=False) for m in page]
        if expand:
            infos = [{k: v for k, v in info.items() if k in expand or k in ("_id", "id")} for info in infos]
        body = json.dumps(infos).encode()
        self._send(handler, 200, body, headers, head)

    def _resolve(self, handler: BaseHTTPRequestHandler, repo: FakeRepo | None, name: str, head: bool) -> None:
        if repo is None:
            return self._send(handler, 404, b"", {"X-Error-Code": "RepoNotFound"}, head)
        if repo.gated:
            return self._send(handler, 403, b"Access to model is restricted.",
                              {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"}, head)
        if name not in repo.files:
            return self._send(handler, 404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": SHA}, head)
        body = repo.served_bytes(name)
        headers = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        if name in repo.lfs:
            headers.update({"ETag": f'"{repo.sha256(name)}"', "X-Linked-Etag": f'"{repo.sha256(name)}"',
                            "X-Linked-Size": str(len(body))})
        else:
            headers["ETag"] = f'"{hashlib.sha1(repo.files[name]).hexdigest()}"'
        if name in repo.etags:
            headers["ETag"] = headers["X-Linked-Etag"] = f'"{repo.etags[name]}"'
        if self.lfs_redirect and name in repo.lfs:
            location = self.lfs_redirect + handler.path
            return self._send(handler, 302, b"", {**headers, "Location": location}, head)
        if not head and name in repo.extra_bytes:  # HEAD announces the file; GET sends more
            body += b"\0" * repo.extra_bytes[name]
        start, end, status = 0, len(body) - 1, 200
        if (ranged := handler.headers.get("Range")) and not head:
            first, _, last = ranged.split("=", 1)[1].partition("-")
            start, end, status = int(first), min(int(last) if last else len(body) - 1, len(body) - 1), 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
        chunk = body[start:end + 1]
        cut = self.drop_after.pop(name, None) if not head else None
        if cut is not None:  # send the headers for the whole range, then hang up part-way
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(chunk)))
            handler.end_headers()
            handler.wfile.write(chunk[:cut])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if self.chunk_delay and not head:
            return self._send_slowly(handler, status, chunk, headers)
        self._send(handler, status, chunk, headers, head)

    def _send_slowly(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for start in range(0, len(body), self.chunk_size):
                if start:
                    time.sleep(self.chunk_delay)
                handler.wfile.write(body[start:start + self.chunk_size])
                handler.wfile.flush()
        except OSError:  # the client went away (cancelled)
            handler.close_connection = True

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict, head: bool) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)


_UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def _in_parameter_range(repo: FakeRepo, bounds: str) -> bool:
    """The Hub's num_parameters filter, e.g. "min:6B,max:128B"; repos without a count never match."""
    count = sum(repo.safetensors.values()) if repo.safetensors else (repo.extra.get("gguf") or {}).get("total")
    if not count:
        return False
    for part in bounds.split(","):
        key, _, value = part.partition(":")
        number = float(value[:-1]) * _UNITS[value[-1].upper()] if value[-1:].isalpha() else float(value)
        if (key == "min" and count < number) or (key == "max" and count > number):
            return False
    return True
