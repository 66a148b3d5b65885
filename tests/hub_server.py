"""A loopback fake of the Hugging Face Hub HTTP API, for push/pull tests without internet (stdlib only).

It answers the calls that huggingface_hub 2.4 and transformers 5.24 make for `create_repo`,
`push_to_hub` / `upload_folder` / `create_commit`, `model_info`, `list_repo_files`, `hf_hub_download`
and `from_pretrained` (transformers-v5-notes §4.2). Repos live in memory; by default every file is stored
as a regular git blob because preupload answers `uploadMode: "regular"`, which keeps LFS and Xet out of it.

`FakeHub(lfs=True)` answers `uploadMode: "lfs"` as the Hub does (a `filter=lfs` pattern of the repo's
`.gitattributes`, a binary sample or over 10 MB) and serves the legacy Git LFS batch API (basic transfer,
then verify) and `lfsFile` commit operations: `datasets.DatasetDict.push_to_hub` needs it, because it
deletes each Parquet shard once `preupload_lfs_files` returns. It has no Xet storage, and huggingface_hub
uploads LFS files through Xet whenever `hf_xet` is installed, so its clients must set `HF_HUB_DISABLE_XET=1`.

`huggingface_hub.constants.ENDPOINT` is read when huggingface_hub is imported, and transformers caches
one `HfApi`, so clients must get `HF_ENDPOINT` before their first import: tests run them in
subprocesses with `hub_subprocess_env(...)` (see `tests/hub_fixtures.py`).

Run by hand: `python tests/hub_server.py` prints the endpoint and serves until Ctrl-C or `--lifetime`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
# An excerpt of what a new Hub repo starts with (the Hub's list is longer).
GITATTRIBUTES = (
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)
SHA40 = re.compile(r"^[0-9a-f]{40}$")
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores larger files in LFS whatever .gitattributes says
LFS_JSON = "application/vnd.git-lfs+json"


def git_blob_sha(content: bytes) -> str:
    """Git's blob id, which the Hub sends as the ETag and tree `oid` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The Git LFS pointer file git stores for an LFS file; its blob id is the tree `oid` of that file."""
    sha = hashlib.sha256(content).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(content)}\n".encode()


def lfs_patterns(gitattributes: bytes) -> list[str]:
    """The patterns `.gitattributes` sends through the LFS filter."""
    lines = (line.split() for line in gitattributes.decode(errors="replace").splitlines())
    return [words[0] for words in lines if len(words) > 1 and "filter=lfs" in words[1:]]


def matches_lfs(path: str, patterns: list[str]) -> bool:
    # As git: a pattern without a slash matches the file name at any depth, one with a slash the whole path.
    return any(fnmatch.fnmatchcase(path if "/" in pattern else path.rsplit("/", 1)[-1], pattern)
               for pattern in patterns)


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> {path: content}
    messages: dict[str, str] = field(default_factory=dict)
    lfs_paths: dict[str, frozenset[str]] = field(default_factory=dict)  # commit sha -> paths stored in LFS
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content uploaded to LFS storage

    def commit(
        self, files: dict[str, bytes], message: str, parent: str | None, lfs: set[str] = frozenset()
    ) -> str:
        digest = hashlib.sha1((parent or "").encode() + message.encode())
        for path in sorted(files):
            blob = lfs_pointer(files[path]) if path in lfs else files[path]
            digest.update(path.encode() + b"\0" + git_blob_sha(blob).encode())
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        self.messages[sha] = message
        self.lfs_paths[sha] = frozenset(lfs)
        return sha

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.refs:
            return self.refs[revision]
        return revision if SHA40.match(revision) and revision in self.commits else None


class FakeHub:
    """An in-memory Hub on `127.0.0.1:<random port>`, served from a daemon thread.

    Args:
        token (`str`, *optional*): when set, writes need `Authorization: Bearer <token>` (reads are public).
        max_lifetime_s (`float`): the server shuts itself down after this long, so a hung test cannot
            leave it running.
        lfs (`bool`, defaults to `False`): answer preupload with `"lfs"` where the Hub would and serve the
            Git LFS batch API; clients must then set `HF_HUB_DISABLE_XET=1` (see the module docstring).

    Attributes:
        url (`str`): the endpoint to export as `HF_ENDPOINT`.
        requests (`list[tuple[str, str]]`): `(method, path)` of every request, for asserting what was called.
        unhandled (`list[tuple[str, str]]`): the requests answered 404 because no route matched; a test
            should assert it is empty, so a new client call cannot silently degrade the round trip.
    """

    def __init__(self, token: str | None = "hf_fake_token", max_lifetime_s: float = 600.0, lfs: bool = False):
        self.token = token
        self.lfs = lfs
        self.max_lifetime_s = max_lifetime_s
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not running; call start() or use it as a context manager.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_HubHandler):
            pass

        Handler.hub = hub
        # Port 0: the OS picks a free port, so parallel test runs cannot collide.
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True).start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeHub:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """Contents of `repo_id` at `revision` (for assertions in tests)."""
        repo = self.repos[(repo_type, repo_id)]
        return dict(repo.commits[repo.resolve(revision)])

    def lfs_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> set[str]:
        """The paths of `repo_id` at `revision` that are stored in LFS (committed as `lfsFile`)."""
        repo = self.repos[(repo_type, repo_id)]
        return set(repo.lfs_paths[repo.resolve(revision)])


class _HubHandler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects

    def log_message(self, format, *args):
        pass

    # ---- plumbing -----------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        self._send(
            status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        """JSON error with the headers huggingface_hub maps to exceptions (`X-Error-Code`)."""
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # streamed uploads (LFS PUT)
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorised(self) -> bool:
        if self.hub.token is None or self.headers.get("Authorization") == f"Bearer {self.hub.token}":
            return True
        self._error(401, "Invalid credentials: the fake Hub expects its token in HF_TOKEN.")
        return False

    def _repo(self, repo_type: str, repo_id: str) -> _Repo | None:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None:
            self._error(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        with self.hub.lock:
            self.hub.requests.append((self.command, split.path))
            try:
                self._route(parts, query)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                self._error(400, f"Bad request: {exc!r}")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def _route(self, parts: list[str], query: dict[str, str]) -> None:
        method = self.command
        if parts[:2] == ["api", "whoami-v2"]:
            return self._json(
                200, {"type": "user", "name": "fake-user", "orgs": [], "auth": {"type": "access_token"}}
            )
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(self._body()))
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            self._body()
            return self._json(200, {"errors": [], "warnings": []})
        if parts[:1] == ["lfs-storage"] and len(parts) == 5 and method == "PUT":
            # Stands in for the storage bucket the batch API points uploads at (presigned: no token needed).
            repo = self.hub.repos.get((parts[1], f"{parts[2]}/{parts[3]}"))
            return self._error(404, "No such upload") if repo is None else self._lfs_store(repo, parts[4])
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in REPO_TYPES:
            repo = self._repo(REPO_TYPES[parts[1]], f"{parts[2]}/{parts[3]}")
            return None if repo is None else self._repo_api(repo, parts[4:], query)
        # File downloads: /{ns}/{name}/resolve/{rev}/{path} for models, /datasets/... and /spaces/... otherwise.
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(repo_type, f"{parts[0]}/{parts[1]}")
            return None if repo is None else self._resolve(repo, parts[3], "/".join(parts[4:]))
        # Git LFS: POST /{ns}/{name}.git/info/lfs/objects/{batch,verify} (datasets/ and spaces/ prefixed).
        lfs_call = len(parts) == 6 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"]
        if self.hub.lfs and lfs_call and parts[5] in ("batch", "verify") and method == "POST":
            repo = self._repo(repo_type, f"{parts[0]}/{parts[1].removesuffix('.git')}")
            if repo is None or not self._authorised():
                return None
            return self._lfs_batch(repo) if parts[5] == "batch" else self._lfs_verify(repo)
        return self._unhandled()

    def _unhandled(self) -> None:
        self.hub.unhandled.append((self.command, self.path))
        self._error(404, f"The fake Hub does not implement {self.command} {self.path}")

    # ---- API endpoints ------------------------------------------------------------------------------

    def _create_repo(self, payload: dict) -> None:
        if not self._authorised():
            return
        if not payload.get("organization"):
            return self._error(400, "The fake Hub needs a namespaced repo id 'org/name'.")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.url}/{prefix}{repo_id}"
        if (repo_type, repo_id) in self.hub.repos:
            # The real Hub's 409 carries the URL too; create_repo(exist_ok=True) reads it.
            message = "You already created this repo"
            return self._json(409, {"error": message, "url": url}, {"X-Error-Message": message})
        repo = _Repo(repo_type, repo_id, private=payload.get("visibility") == "private")
        repo.refs["main"] = repo.commit({".gitattributes": GITATTRIBUTES}, "initial commit", None)
        self.hub.repos[(repo_type, repo_id)] = repo
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _repo_api(self, repo: _Repo, rest: list[str], query: dict[str, str]) -> None:
        method = self.command
        if not rest or rest[0] == "revision":
            sha = repo.resolve(rest[1] if len(rest) > 1 else "main")
            if sha is None:
                return self._error(404, f"Invalid rev id: {rest[1:]}", "RevisionNotFound")
            return self._json(200, self._info(repo, sha))
        action, revision = rest[0], (rest[1] if len(rest) > 1 else "main")
        if action in ("preupload", "commit", "branch") and method == "POST" and not self._authorised():
            return None
        if action == "branch" and method == "POST":
            body = self._body()
            start = json.loads(body).get("startingPoint") if body else None
            repo.refs[revision] = repo.resolve(start or "main")
            return self._json(200, {})
        if "create_pr" in query:
            return self._error(400, "The fake Hub does not support pull requests (create_pr).")
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = repo.commits[sha]
        if action == "preupload" and method == "POST":
            wanted = json.loads(self._body())["files"]
            lfs = repo.lfs_paths[sha]
            patterns = lfs_patterns(files.get(".gitattributes", b""))
            answers = []
            for f in wanted:
                path = f["path"]
                # Without lfs=True never LFS/Xet: contents come inline (base64) in the commit.
                mode = "lfs" if self.hub.lfs and (
                    matches_lfs(path, patterns) or f["size"] > LFS_THRESHOLD
                    or b"\0" in base64.b64decode(f.get("sample", ""))
                ) else "regular"
                # The oid lets clients skip unchanged files: sha256 for LFS files, the git blob id otherwise.
                oid, content = None, files.get(path)
                if content is not None:
                    oid = hashlib.sha256(content).hexdigest() if path in lfs else git_blob_sha(content)
                answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return self._json(200, {"files": answers})
        if action == "commit" and method == "POST":
            return self._commit(repo, revision, sha, self._body())
        if action == "tree" and method == "GET":
            prefix = "/".join(rest[2:])
            if prefix and not any(name.startswith(prefix.rstrip("/") + "/") for name in files):
                # As the Hub: a folder that holds nothing does not exist (HfFileSystem.find relies on the 404).
                return self._error(404, f"{prefix} does not exist on {revision}", "EntryNotFound")
            recursive = query.get("recursive", "").lower() == "true"
            return self._json(200, self._tree(files, repo.lfs_paths[sha], prefix, recursive))
        return self._unhandled()

    # ---- Git LFS (lfs=True) -------------------------------------------------------------------------

    def _lfs_batch(self, repo: _Repo) -> None:
        """The LFS batch API's upload operation, basic transfer: a PUT to storage, then a verify call."""
        request = json.loads(self._body())
        if request.get("operation") != "upload" or "basic" not in request.get("transfers", ["basic"]):
            return self._error(400, "The fake Hub answers LFS batch uploads with the basic transfer only.")
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        storage = f"{self.hub.url}/lfs-storage/{repo.repo_type}/{repo.repo_id}"
        objects = []
        for obj in request["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in repo.lfs_objects:  # already stored objects get no actions: nothing to upload
                answer["actions"] = {
                    "upload": {"href": f"{storage}/{obj['oid']}"},
                    "verify": {"href": f"{self.hub.url}/{prefix}{repo.repo_id}.git/info/lfs/objects/verify"},
                }
            objects.append(answer)
        self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   {"Content-Type": LFS_JSON})

    def _lfs_store(self, repo: _Repo, oid: str) -> None:
        content = self._body()
        if hashlib.sha256(content).hexdigest() != oid:
            return self._error(400, f"Uploaded content does not hash to {oid}.")
        repo.lfs_objects[oid] = content
        return self._send(200)

    def _lfs_verify(self, repo: _Repo) -> None:
        obj = json.loads(self._body())
        content = repo.lfs_objects.get(obj["oid"])
        if content is None or len(content) != obj["size"]:
            return self._error(404, f"LFS object {obj['oid']} ({obj['size']} bytes) is not in storage.")
        return self._json(200, {"success": True}, {"Content-Type": LFS_JSON})

    def _info(self, repo: _Repo, sha: str) -> dict:
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        return {
            "_id": sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "lastModified": now,
            "createdAt": now,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": [{"rfilename": path} for path in sorted(repo.commits[sha])],
        }

    def _commit(self, repo: _Repo, revision: str, parent: str, body: bytes) -> None:
        files = dict(repo.commits[parent])
        lfs = set(repo.lfs_paths[parent])
        message = ""
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary", "")
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise ValueError(f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
                lfs.discard(value["path"])
            elif key == "lfsFile" and self.hub.lfs:
                if value.get("algo", "sha256") != "sha256" or value["oid"] not in repo.lfs_objects:
                    message = f"LFS object {value['oid']} of {value['path']} was never uploaded."
                    return self._error(400, message)
                files[value["path"]] = repo.lfs_objects[value["oid"]]
                lfs.add(value["path"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
                lfs.discard(value["path"])
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(folder)}
                lfs = {p for p in lfs if p in files}
            else:
                # lfsFile only occurs with lfs=True, copies never; fail loudly if they do.
                return self._error(400, f"The fake Hub does not support commit operation {key!r}.")
        sha = repo.commit(files, message, parent, lfs)
        repo.refs[unquote(revision)] = sha
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._json(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.hub.url}/{prefix}{repo.repo_id}/commit/{sha}",
                "commitMessage": message,
            },
        )

    @staticmethod
    def _tree(files: dict[str, bytes], lfs: frozenset[str], prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        start = prefix + "/" if prefix else ""
        entries: dict[str, dict] = {}
        for path, content in sorted(files.items()):
            if not path.startswith(start):
                continue
            rest = path[len(start) :]
            if "/" in rest:
                folders = rest.split("/")[:-1]
                # Non-recursive listings show only the first folder level; recursive ones show them all.
                for depth in range(1, (len(folders) if recursive else 1) + 1):
                    folder = start + "/".join(folders[:depth])
                    entries.setdefault(
                        folder,
                        {
                            "type": "directory",
                            "oid": git_blob_sha(folder.encode()),
                            "size": 0,
                            "path": folder,
                        },
                    )
                if not recursive:
                    continue
            entry = {"type": "file", "oid": git_blob_sha(content), "size": len(content), "path": path}
            if path in lfs:  # as the Hub: the oid is the pointer's blob id, the size the content's
                pointer = lfs_pointer(content)
                entry["oid"] = git_blob_sha(pointer)
                entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content),
                                "pointerSize": len(pointer)}
            entries[path] = entry
        return list(entries.values())

    def _resolve(self, repo: _Repo, revision: str, path: str) -> None:
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        content = repo.commits[sha].get(path)
        if content is None:
            self.send_response(404)
            for key, value in {
                "X-Error-Code": "EntryNotFound",
                "X-Repo-Commit": sha,
                "Content-Length": "0",
            }.items():
                self.send_header(key, value)
            self.end_headers()
            return None
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{git_blob_sha(content)}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        if path in repo.lfs_paths[sha]:
            # The Hub redirects LFS files to its CDN, naming the content in X-Linked-*; this serves them here.
            headers["ETag"] = headers["X-Linked-Etag"] = f'"{hashlib.sha256(content).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(content))
        match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if match:  # resumed downloads ask for the tail only
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(content) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            return self._send(206, content[start : end + 1], headers)
        return self._send(200, content, headers)


def main() -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Serve a loopback fake Hugging Face Hub.")
    parser.add_argument(
        "--lifetime", type=float, default=3600.0, help="seconds before the server stops itself"
    )
    parser.add_argument("--token", default="hf_fake_token", help="token clients must send for writes")
    args = parser.parse_args()
    with FakeHub(token=args.token, max_lifetime_s=args.lifetime) as hub:
        print(f"HF_ENDPOINT={hub.url} HF_TOKEN={args.token}", flush=True)
        try:
            time.sleep(args.lifetime)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
