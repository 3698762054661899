from trimkit.backends.prefill_meter import MIN_PREFILL_FOR_MEASUREMENT, PrefillMeter
from trimkit.profile import ModelProfile


def test_first_long_measurement_replaces_the_estimate_and_later_ones_blend_in():
    profile = ModelProfile(prefill_tps=50_000.0)
    meter = PrefillMeter(profile)
    meter.record(MIN_PREFILL_FOR_MEASUREMENT - 1, 10.0)
    assert (meter.last_tps, profile.prefill_tps) == (10.0, 50_000.0)
    meter.record(MIN_PREFILL_FOR_MEASUREMENT, 1_000.0)
    assert profile.prefill_tps == 1_000.0
    meter.record(5_000, 2_000.0)
    assert profile.prefill_tps == 1_500.0 and meter.last_tps == 2_000.0
