"""Print a report's HTML to an A4 PDF with headless Chromium (Debian's /usr/bin/chromium by default).

Chromium lays out the Chinese text with the machine's fonts and embeds the subsets it used, so the PDF
reads the same anywhere; the page size and margins come from the stylesheet's `@page` rule. It runs as a
subprocess with its own throw-away profile and a timeout, so a stuck browser fails the report, not the
caller. `TRIAGE_CHROMIUM` (`Settings.chromium`) names another binary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_SETTING = "TRIAGE_CHROMIUM"
DEFAULT_TIMEOUT_S = 90.0


class PdfError(RuntimeError):
    """The PDF could not be made; the message says why and what to do."""


def chromium_path(configured: str | None = None) -> str:
    """The Chromium to run (`configured`, else /usr/bin/chromium) as a path; PdfError if it is not there."""
    name = configured or DEFAULT_CHROMIUM
    found = shutil.which(name)
    if found is None:
        raise PdfError(f"Chromium not found at {name!r}: install it (apt-get install chromium) or set "
                       f"{CHROMIUM_SETTING} to its path; or write the report as .html")
    return found


def html_to_pdf(html: str, *, chromium: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """The PDF Chromium prints from `html` (a self-contained document)."""
    binary = chromium_path(chromium)
    with tempfile.TemporaryDirectory(prefix="triage-report-") as work:
        source, target = Path(work) / "report.html", Path(work) / "report.pdf"
        source.write_text(html, encoding="utf-8")
        command = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--no-pdf-header-footer",
            f"--user-data-dir={Path(work) / 'profile'}", f"--print-to-pdf={target}", source.as_uri(),
        ]
        try:
            # Its own process group, so a timeout ends the renderer and GPU children too, not only the parent.
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise PdfError(f"Chromium could not be started ({binary}): {exc.strerror or exc}") from None
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise PdfError(f"Chromium did not finish printing within {timeout_s:g} s") from None
        if not target.exists() or target.stat().st_size == 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise PdfError(f"Chromium exited with status {process.returncode} without writing the PDF: {tail[0]}")
        return target.read_bytes()
