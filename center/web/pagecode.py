"""The page's code, pinned: the HTML names every script and the style sheet with its SHA-384
(Subresource Integrity; an import map's "integrity" pins the modules the scripts import), so
the browser runs nothing but what this HTML names. The HTML is made here from the files
installed with Trygg, when the console starts; its SHA-256 is the page's fingerprint, shown on
the staff member's key screen and printed by `trygg center web --fingerprint` from the installed
files, for IT to compare out of band (docs/console.md: what this bounds and what it does not).
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
STYLE = "style.css"
ENTRY = "app.js"
MODULES = ("app.js", "envelope.js", "vendor/preact-htm.js", "vendor/hpke.js")  # every module the page loads


@dataclass(frozen=True)
class PageCode:
    html: bytes
    importmap_csp: str  # the CSP source that lets exactly this inline import map run
    fingerprint: str  # SHA-256 of html, hex

    def fingerprint_words(self) -> str:
        """The first 128 bits in groups of four, as the key screen shows them."""
        return " ".join(self.fingerprint[i : i + 4] for i in range(0, 32, 4))


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def build(static: Path = STATIC) -> PageCode:
    """The HTML for these files; raises FileNotFoundError naming a file that was not built."""
    pins = {f"/static/{name}": sri((static / name).read_bytes()) for name in MODULES}
    importmap = json.dumps({"integrity": pins}, sort_keys=True, separators=(",", ":"))
    template = (static / "index.html").read_text()
    html = (template.replace("{{importmap}}", importmap)
            .replace("{{style_integrity}}", sri((static / STYLE).read_bytes()))
            .replace("{{app_integrity}}", pins[f"/static/{ENTRY}"])).encode()
    csp = "'sha256-" + base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode() + "'"
    return PageCode(html, csp, hashlib.sha256(html).hexdigest())
