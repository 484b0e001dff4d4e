"""Demo API keys for `make run`: one per role, made once, kept in a private file, printed at start.

A newcomer needs keys to try the API and the reviewer page; production sets `TRIAGE_API_KEYS` itself
(ideally as `sha256:` digests). The file is an env file (`TRIAGE_API_KEYS=...`) with mode 0600 under
`var/`, which git ignores; it is never overwritten, so keys stay stable across restarts.

    python -m serving.demo_keys [PATH [BASE_URL]]    # default var/demo-api-keys.env http://127.0.0.1:8000
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from serving.auth import Role, new_key, parse_api_keys

DEFAULT_PATH = Path("var") / "demo-api-keys.env"
DEMO_NAMES = {Role.intake: "ticket-system", Role.reviewer: "reviewer-demo", Role.admin: "admin-demo",
              Role.department: "building-demo"}
#: The department the demo department key acts for (its warnings: `GET /v1/warnings`).
DEMO_DEPARTMENT = "城乡建设"
VARIABLE = "TRIAGE_API_KEYS"


def ensure_demo_keys(path: Path = DEFAULT_PATH) -> dict[Role, tuple[str, str]]:
    """The demo keys in `path` (created with fresh random keys if missing): role -> (name, key)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        spec = ",".join(_entry(role, name) for role, name in DEMO_NAMES.items())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{VARIABLE}={spec}\n")
    keys = read_demo_keys(path)
    missing = [role for role in DEMO_NAMES if role not in keys]
    if missing:  # a file from before a role existed: its keys stay, the new role's key is added
        spec = path.read_text(encoding="utf-8").split(f"{VARIABLE}=", 1)[1].splitlines()[0]
        spec = ",".join([spec, *(_entry(role, DEMO_NAMES[role]) for role in missing)])
        path.write_text(f"{VARIABLE}={spec}\n", encoding="utf-8")
        keys = read_demo_keys(path)
    return keys


def _entry(role: Role, name: str) -> str:
    key = new_key()
    return f"{name}:{role.value}:{key}:{DEMO_DEPARTMENT}" if role is Role.department else f"{name}:{role.value}:{key}"


def read_demo_keys(path: Path) -> dict[Role, tuple[str, str]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{VARIABLE}="):
            spec = line.split("=", 1)[1]
            parse_api_keys(spec)  # refuse a hand-edited file that the server would refuse
            keys: dict[Role, tuple[str, str]] = {}
            for entry in spec.split(","):
                name, role, key = entry.split(":", 2)
                if Role(role) is Role.department:
                    key = key.rpartition(":")[0]  # name:department:key:DEPARTMENT
                keys[Role(role)] = (name, key)
            return keys
    raise ValueError(f"{path}: no {VARIABLE}= line")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    base_url = args[1].rstrip("/") if len(args) > 1 else "http://127.0.0.1:8000"
    try:
        keys = ensure_demo_keys(path)
    except ValueError as exc:
        print(f"error: {exc}; delete the file to make new demo keys", file=sys.stderr)
        return 2
    print(f"Demo API keys (kept in {path}; send one in the X-API-Key header):")
    for role, (name, key) in keys.items():
        acts_for = f"  (warnings of {DEMO_DEPARTMENT})" if role is Role.department else ""
        print(f"  {role.value:<10} {name:<14} {key}{acts_for}")
    print(f"Reviewer page: {base_url}/review  (log in with the reviewer or admin key)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
