"""API keys the test session configures (`TRIAGE_API_KEYS`), one per role, and headers that carry them."""

from __future__ import annotations

INTAKE_KEY = "test-intake-key-0123456789abcdef"
REVIEWER_KEY = "test-reviewer-key-0123456789abcdef"
ADMIN_KEY = "test-admin-key-0123456789abcdef"
#: Department keys (`name:department:key:DEPARTMENT`): each sees and acts on its own department's warnings only.
BUILDING_KEY = "test-building-dept-key-0123456789abcdef"
ENVIRONMENT_KEY = "test-environment-dept-key-0123456789abcdef"
API_KEYS = (
    f"ticket-system:intake:{INTAKE_KEY},reviewer-li:reviewer:{REVIEWER_KEY},ops:admin:{ADMIN_KEY},"
    f"building-bureau:department:{BUILDING_KEY}:城乡建设,environment-bureau:department:{ENVIRONMENT_KEY}:环境保护"
)

INTAKE = {"X-API-Key": INTAKE_KEY}
REVIEWER = {"X-API-Key": REVIEWER_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
BUILDING = {"X-API-Key": BUILDING_KEY}
ENVIRONMENT = {"X-API-Key": ENVIRONMENT_KEY}
