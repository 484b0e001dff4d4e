"""deploy/prometheus: the example scrape config and alert rules load, and every series they name is one
the service exports (a renamed metric fails here, not silently in production)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from serving.metrics import instruments
from serving.routes import router

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
SERIES = re.compile(r"\btriage_[a-z_]+\b")


def exported_series() -> set[str]:
    instruments()
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("triage_"):
            continue
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_scrape_config_loads_and_names_its_rules_and_the_metrics_path() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert list(job["http_headers"]) == ["X-API-Key"], "GET /metrics needs an admin key on the API port"


def test_alert_rules_load_and_use_only_exported_series() -> None:
    rules = yaml.safe_load((PROMETHEUS / "triage-rules.yml").read_text(encoding="utf-8"))
    exported = exported_series()
    assert {"triage_cases_total", "triage_http_request_duration_seconds_bucket", "triage_database_up"} <= exported
    seen = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
            used = set(SERIES.findall(rule["expr"]))
            assert used and used <= exported, (rule["alert"], used - exported)
            seen.append(rule["alert"])
    assert len(seen) == len(set(seen)), "alert names are unique"


def test_the_latency_rule_names_a_real_route_template() -> None:
    rules = (PROMETHEUS / "triage-rules.yml").read_text(encoding="utf-8")
    templates = {route.path for route in router.routes}
    for route in re.findall(r'route="([^"]+)"', rules):
        assert route in templates, route
