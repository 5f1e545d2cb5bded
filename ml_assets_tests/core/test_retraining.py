"""When to retrain: the performance-decay rule and the triggers, without Dagster."""

from ml_assets.config import parse_settings
from ml_assets.core.retraining import assess_decay, performance_floor, retrain_triggers


def settings(**extra):
    return parse_settings({"name": "t", "target": "y", "task": "classification", **extra}, "t.yaml")


def test_floor_defaults_to_the_gate_of_the_primary_metric():
    assert performance_floor(settings()) == 0.7
    assert performance_floor(settings(retrain={"performance_floor": 0.9})) == 0.9
    regression = parse_settings({"name": "t", "target": "y", "task": "regression",
                                 "gates": {"primary_metric": "rmse", "max": {"rmse": 10}}}, "t.yaml")
    assert performance_floor(regression) == 10


def test_decay_by_margin_and_by_floor():
    s = settings()
    steady = assess_decay(0.97, 0.99, s)
    assert not steady["decayed"] and "within the margin" in steady["reason"]
    dropped = assess_decay(0.90, 0.99, s)
    assert dropped["decayed"] and "fell from 0.990" in dropped["reason"]
    below = assess_decay(0.65, 0.68, s)
    assert below["decayed"] and "floor 0.700" in below["reason"]


def test_error_metrics_decay_upward():
    s = parse_settings({"name": "t", "target": "y", "task": "regression",
                        "gates": {"primary_metric": "rmse"}, "retrain": {"decay_margin": 1.0}}, "t.yaml")
    assert assess_decay(15.0, 10.0, s)["decayed"]
    assert not assess_decay(9.0, 10.0, s)["decayed"]


def test_triggers():
    assert retrain_triggers(False, False, None) == ["no_champion"]
    assert retrain_triggers(True, False, {"decayed": False}) == []
    assert retrain_triggers(True, True, {"decayed": True}) == ["drift", "decay"]


def test_bad_schedule_settings_are_named():
    import pytest

    from ml_assets.config import PipelineFileError

    with pytest.raises(PipelineFileError, match="retrain.cron"):
        settings(retrain={"cron": "every monday"})
    with pytest.raises(PipelineFileError, match="retrain.timezone"):
        settings(retrain={"timezone": "Mars/Olympus"})
