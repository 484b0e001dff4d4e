"""Dependency audit: pip-audit over the packages installed in the project's virtual environment.

    .venv/bin/python .ci/audit.py [--strict]        # or: make audit

pip-audit runs from a virtual environment of its own (`.venv/tools/pip-audit`, made on first use with the
pinned version below), so the tool and what it pulls in are neither audited nor installed beside the
service. It reads `pip freeze --exclude-editable` of the project's environment (the tree constraints.txt
pins) and asks PyPI's advisory data about each exact version (`--no-deps`: nothing is resolved).

Exit status, so CI fails only on what someone can act on:

* 1: a vulnerability with a fixed release that is not in `.ci/pip-audit-ignore.txt` (upgrade the pin, or
  add the id there with the reason it cannot be upgraded yet);
* 0: nothing found, or only findings without a fix (printed), or the audit could not be made: pip-audit
  could not be installed, or PyPI's per-release data did not answer and packages were skipped (printed as a
  warning naming how many). `--strict` (or AUDIT_STRICT=1) turns these into failures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT_VERSION = "2.10.1"
TOOL_VENV = ROOT / ".venv" / "tools" / "pip-audit"
IGNORE_FILE = Path(__file__).resolve().parent / "pip-audit-ignore.txt"


def ignored_ids(path: Path) -> dict[str, str]:
    """`ID  # reason` per line; an id without a reason is refused, so every exception stays explained."""
    ids: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if path.exists() else ():
        entry, _, reason = line.partition("#")
        if not entry.strip():
            continue
        if not reason.strip():
            raise SystemExit(f"{path.name}, line {number}: {entry.strip()} needs a reason after '#'")
        ids[entry.strip()] = reason.strip()
    return ids


def ensure_tool() -> Path | None:
    """pip-audit at the pinned version in its own environment, or None (with the reason printed)."""
    tool = TOOL_VENV / "bin" / "pip-audit"
    stamp = TOOL_VENV / f".pip-audit-{PIP_AUDIT_VERSION}"
    if tool.exists() and stamp.exists():
        return tool
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOL_VENV)], check=True)
        subprocess.run([str(TOOL_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        f"pip-audit=={PIP_AUDIT_VERSION}"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or "").strip()[-500:]
        print(f"warning: could not install pip-audit {PIP_AUDIT_VERSION} ({exc}; {said}); the audit was not made",
              file=sys.stderr)
        return None
    stamp.touch()
    return tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", default=os.environ.get("AUDIT_STRICT") == "1",
                        help="also fail when the audit could not be made or packages were skipped")
    args = parser.parse_args()
    ignore = ignored_ids(IGNORE_FILE)
    tool = ensure_tool()
    if tool is None:
        return 1 if args.strict else 0
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory(prefix="pip-audit-") as tmp:
        requirements, report = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        requirements.write_text(freeze, encoding="utf-8")
        command = [str(tool), "-r", str(requirements), "--no-deps", "--progress-spinner", "off", "-f", "json",
                   "-o", str(report)]
        for vuln_id in ignore:
            command += ["--ignore-vuln", vuln_id]
        run = subprocess.run(command, capture_output=True, text=True)
        if not report.exists():
            print(f"warning: pip-audit failed (exit {run.returncode}): {run.stderr.strip()[-500:]}", file=sys.stderr)
            return 1 if args.strict else 0
        data = json.loads(report.read_text(encoding="utf-8"))

    deps = data.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    findings = [(d["name"], d["version"], v) for d in deps for v in d.get("vulns", [])]
    fixable = [f for f in findings if f[2].get("fix_versions")]
    for name, version, vuln in findings:
        fix = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
        aliases = ", ".join(vuln.get("aliases") or [])
        print(f"{name} {version}: {vuln['id']} ({aliases}) fixed in {fix}")
    for vuln_id, reason in ignore.items():
        print(f"ignored {vuln_id}: {reason}")
    audited = len(deps) - len(skipped)
    print(f"pip-audit {PIP_AUDIT_VERSION}: {audited} of {len(deps)} packages audited, {len(findings)} "
          f"vulnerabilit{'y' if len(findings) == 1 else 'ies'} ({len(fixable)} with a fix), {len(ignore)} ignored")
    if skipped:
        print(f"warning: {len(skipped)} packages were not audited, e.g. {skipped[0]['skip_reason']} (PyPI's "
              "per-release JSON, which carries the advisories, did not answer)", file=sys.stderr)
    if fixable:
        print("error: upgrade the pins above, or add each id to .ci/pip-audit-ignore.txt with the reason",
              file=sys.stderr)
        return 1
    return 1 if args.strict and (skipped or findings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
