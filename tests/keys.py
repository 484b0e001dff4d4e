"""API keys the test session configures (`TRIAGE_API_KEYS`), one per role, and headers that carry them."""

from __future__ import annotations

INTAKE_KEY = "test-intake-key-0123456789abcdef"
REVIEWER_KEY = "test-reviewer-key-0123456789abcdef"
ADMIN_KEY = "test-admin-key-0123456789abcdef"
API_KEYS = f"ticket-system:intake:{INTAKE_KEY},reviewer-li:reviewer:{REVIEWER_KEY},ops:admin:{ADMIN_KEY}"

INTAKE = {"X-API-Key": INTAKE_KEY}
REVIEWER = {"X-API-Key": REVIEWER_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
