"""Settings parsed once from the environment: a wrong one names itself."""

from __future__ import annotations

import pytest

from functions.shared.settings import SettingsError, load_ingest_settings


def test_settings_errors_name_the_setting() -> None:
    # Given an environment without the bucket, When loaded, Then the error names SIGNALS_BUCKET
    with pytest.raises(SettingsError, match="SIGNALS_BUCKET is not set"):
        load_ingest_settings({})
    # Given a value outside its choices or range, Then the error names the setting and the value
    with pytest.raises(SettingsError, match="MISSING_ROWS must be one of keep, delete, got 'drop'"):
        load_ingest_settings({"SIGNALS_BUCKET": "b", "MISSING_ROWS": "drop"})
    with pytest.raises(SettingsError, match="GUARD_MAX_REJECT_RATIO must be between 0 and 1"):
        load_ingest_settings({"SIGNALS_BUCKET": "b", "GUARD_MAX_REJECT_RATIO": "5"})
