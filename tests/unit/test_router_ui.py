"""The web UI's files as the router serves them: the security headers, no inline code, nothing
from another origin, and labels for every text in both languages. (The UI in a browser against the
local cluster: tests/integration/test_ui.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tts_api.app import create_app
from tts_api.routes.ui import UI_DIR
from tts_api.settings import RouterSettings
from tts_crds.jobs import Phase

KEY_LITERAL = re.compile(r"""['"]((?:app|tab|key|speak|voices|jobs|status|state|error)\.[A-Za-z.]+)['"]""")
# t(`voices.type.${v.type}`): keys built at run time, and what they are built from
DYNAMIC_KEYS = {
    "voices.type.": ("builtin", "speaker", "clone"),
    "voices.clip.": ("file", "recording", "converted"),
    # t(`jobs.phase.${job.phase}`): a TtsJob's phases (tts_crds.jobs.Phase), "new" before the operator saw it
    "jobs.phase.": ("new", *(p.value for p in Phase)),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    # no lifespan: the static files need neither the Kubernetes API nor the router's state
    return TestClient(create_app(RouterSettings()))


def dictionary(lang: str) -> dict[str, str]:
    return json.loads((UI_DIR / "i18n" / f"{lang}.json").read_text())


class Page(HTMLParser):
    """What index.html contains that a CSP or a translation cares about."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.assets: list[str] = []
        self.inline: list[str] = []  # style attributes, on* handlers, <style> elements
        self.keys: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "style":
            self.inline.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"{tag} {name}={value}")
            if name.startswith("data-i18n") and value:
                self.keys.add(value)
            if name in ("src", "href") and value and value.startswith("ui/"):
                self.assets.append(value)


@pytest.fixture(scope="module")
def page() -> Page:
    parsed = Page()
    parsed.feed((UI_DIR / "index.html").read_text())
    return parsed


def test_index_at_the_root_with_a_strict_content_security_policy(client: TestClient):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "<title>kube-tts</title>" in resp.text
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"  # no 'unsafe-inline', no eval
    assert csp["connect-src"] == "'self'"
    assert csp["media-src"] == "'self' blob:"  # clips play from blob: URLs
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert client.head("/").status_code == 200


def test_every_asset_the_page_names_is_served_with_the_same_headers(client: TestClient, page: Page):
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json"}
    names = {*page.assets, *(f"ui/{p.relative_to(UI_DIR)}" for p in UI_DIR.rglob("*") if p.is_file())}
    names.discard("ui/index.html")
    assert {"ui/app.js", "ui/style.css", "ui/icon.svg", "ui/i18n/zh.json"} <= names
    for name in sorted(names):
        resp = client.get(f"/{name}")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"].startswith(types[Path(name).suffix]), (name, resp.headers["content-type"])
        assert "connect-src 'self'" in resp.headers["content-security-policy"], name


def test_missing_files_and_paths_outside_the_ui_are_404_in_openai_shape(client: TestClient):
    for path in ("/ui/nope.js", "/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/..%2fapp.py"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "not_found", path
    # the UI's routes are not part of the API's schema
    assert not {"/", "/ui/config.json"} & set(client.get("/openapi.json").json()["paths"])


def test_no_inline_code_and_nothing_from_another_origin(page: Page):
    assert page.scripts == [{"type": "module", "src": "ui/app.js"}]
    assert page.inline == []
    for path in UI_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            urls = set(re.findall(r"https?://[^\s'\"<>)]+", text)) - {"http://www.w3.org/2000/svg"}
            assert not urls, f"{path.name} refers to another origin: {urls}"
            assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|\beval\(|new Function", text), path.name


def test_both_languages_label_every_text(page: Page):
    en, zh = dictionary("en"), dictionary("zh")
    assert set(en) == set(zh), set(en) ^ set(zh)
    used = set(page.keys)
    for script in UI_DIR.glob("*.js"):
        used |= set(KEY_LITERAL.findall(script.read_text()))
    for prefix, values in DYNAMIC_KEYS.items():
        used |= {prefix + v for v in values}
    assert used - set(en) == set(), "keys used but not translated"
    assert set(en) - used == set(), "translations nobody uses"
    assert all(en[k].strip() and zh[k].strip() for k in en)
    # placeholders survive translation
    for k in en:
        assert set(re.findall(r"\{\w+\}", en[k])) == set(re.findall(r"\{\w+\}", zh[k])), k
    chinese = [k for k in zh if re.search(r"[\u4e00-\u9fff]", zh[k])]
    assert len(chinese) > 0.9 * len(zh), "most Chinese labels should be in Chinese"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (make ui-deps) to parse the page's modules")
@pytest.mark.parametrize("module", sorted(p.name for p in UI_DIR.glob("*.js")))
def test_every_module_of_the_page_parses(module: str):
    """A syntax error in one module blanks the whole page; the browser tests would only time out."""
    source = (UI_DIR / module).read_text()
    result = subprocess.run(["node", "--input-type=module", "--check"], input=source, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_transcriptions_have_a_body_limit_of_their_own():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from tts_api.app import BodyLimit

    async def echo(request):
        return PlainTextResponse(str(len(await request.body())))

    inner = Starlette(
        routes=[Route(p, echo, methods=["POST"]) for p in ("/v1/audio/speech", "/v1/audio/transcriptions")]
    )
    client = TestClient(BodyLimit(inner, limit=1024, paths={"/v1/audio/transcriptions": 4096}))
    speech = client.post("/v1/audio/speech", content=b"x" * 2048)
    assert speech.status_code == 413 and speech.json()["error"]["code"] == "request_too_large"
    assert client.post("/v1/audio/transcriptions", content=b"x" * 2048).text == "2048"
    assert client.post("/v1/audio/transcriptions", content=b"x" * 5000).status_code == 413
