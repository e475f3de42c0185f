"""Driving the web page in headless Chromium (the ``browser_page`` fixture,
tests/browser/conftest.py): the images a person picks, dropping files, and reading what
each image's card says."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The first images of a session may wait for a worker to boot and load TensorFlow.
RESULT_TIMEOUT_MS = 180_000


@dataclass
class BrowserPage:
    page: Any
    errors: list[str] = field(default_factory=list)


def page_images(per_class: int, first: int) -> tuple[list[dict], dict[str, str]]:
    """Held-out JPEGs as Playwright file payloads, and file name -> true label."""
    files, truth = [], {}
    for i in range(per_class):
        for label in CLASSES:
            name = f"{label} {i}.jpg"
            files.append({"name": name, "mimeType": "image/jpeg",
                          "buffer": image_bytes(label, HELD_OUT_SEED + first + i)})
            truth[name] = label
    return files, truth


def drop_files(page: Any, files: list[dict]) -> None:
    """Drop ``files`` on the drop zone, as dragging them from a file manager would."""
    payload = [{"name": f["name"], "type": f["mimeType"], "b64": base64.b64encode(f["buffer"])
                .decode()} for f in files]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, {type: f.type}));
            }
            return transfer;
        }""", payload)
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def wait_for_every_card(page: Any, count: int, timeout: float = RESULT_TIMEOUT_MS) -> None:
    page.wait_for_function(
        """count => {
            const cards = document.querySelectorAll(".card");
            return cards.length === count && [...cards].every(
                c => c.dataset.status === "done" || c.dataset.status === "failed");
        }""", arg=count, timeout=timeout)


def card_labels(page: Any) -> dict[str, str]:
    """What each card says: file name -> top-1 label (or the failure)."""
    return page.eval_on_selector_all(
        ".card", """cards => Object.fromEntries(cards.map(c => [
            c.dataset.name,
            c.dataset.status === "done" ? c.querySelector(".label").firstChild.textContent
                                        : c.querySelector(".label").textContent]))""")
