"""The drift comparison's parts (`models.drift`, `models.profile`): thresholds from YAML, PSI, terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.prepared import prepare
from models.config_file import ConfigError
from models.drift import DEFAULT_DRIFT_CONFIG, load_drift_config, psi
from models.profile import CONFIDENCE_EDGES, case_figures, histogram, is_term, unseen_terms


def test_the_shipped_thresholds_load_and_a_bad_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = load_drift_config()
    assert DEFAULT_DRIFT_CONFIG.is_file() and config.psi.watch == 0.1 and config.psi.drift == 0.25
    bad = tmp_path / "drift.yaml"
    bad.write_text("psi: {watch: 0.3, drift: 0.2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"drift.yaml: psi: .*drift must be at least watch"):
        load_drift_config(bad)
    bad.write_text("psi: {watch: 0.1, drift: 0.2}\nthreshold: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="threshold"):
        load_drift_config(bad)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    same = psi([0.5, 0.3, 0.2], [0.5, 0.3, 0.2], 1000, 1000)
    small = psi([0.5, 0.3, 0.2], [0.45, 0.33, 0.22], 1000, 1000)
    large = psi([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 1000, 1000)
    assert same == pytest.approx(0, abs=1e-12) and 0 < small < 0.1 < 0.25 < large
    assert psi([1.0, 0.0], [0.0, 1.0], 100, 100) < 20  # an empty bin is smoothed, not infinite


def test_histogram_bins_and_the_band_states() -> None:
    shares = histogram([0.05, 0.95, 1.0, 0.5], CONFIDENCE_EDGES)
    assert shares[0] == shares[5] == 0.25 and shares[9] == 0.5  # 1.0 falls in the last bin
    band = load_drift_config().psi
    assert [band.state(v) for v in (None, 0.05, 0.1, 0.3)] == ["ok", "ok", "watch", "drift"]


def test_new_terms_are_words_in_enough_cases_outside_the_known_vocabulary() -> None:
    cases = [case_figures(prepare("无人机扰民", f"无人机噪音 电话13800138000 第{i}次"), "城乡建设", 0.9, None)
             for i in range(6)]
    terms = unseen_terms(cases, {"噪音"}, min_cases=5, limit=10)
    names = [t["term"] for t in terms]
    assert names[0] == "无人机" and terms[0]["cases"] == 6 and terms[0]["count"] == 12
    assert "噪音" not in names and all(is_term(n) for n in names)
    assert not is_term("第") and not is_term("138") and not is_term("**")
