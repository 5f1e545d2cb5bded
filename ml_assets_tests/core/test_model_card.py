"""The model card from a full evaluation report and from one stored by earlier code."""

from ml_assets.core.model_card import NOT_RECORDED, model_card


def full_report() -> dict:
    return {
        "data_version": "bc-0123456789ab",
        "task": "classification",
        "primary_metric": "roc_auc",
        "train_rows": 455,
        "test_rows": 114,
        "metrics": {"roc_auc": 0.9967, "accuracy": 0.9649},
        "champion": {"version": 1},
        "decision": {"promote": True, "reason": "the challenger's roc_auc is 0.004 higher than "
                     "the champion's, 95% interval [-0.002, 0.011] (paired bootstrap)"},
        "model_search": {
            "metric": "roc_auc", "scoring": "roc_auc", "cv_folds": 3, "search_rows": 455,
            "budget_seconds": 120, "seconds": 4.1, "stopped_by_budget": False, "searched": True,
            "chosen": {"candidate": "linear #2", "estimator": "LogisticRegression",
                       "params": {"C": 0.1}, "cv_score": 0.993,
                       "reason": "best mean cross-validated roc_auc (0.993) of 2 candidates"},
            "candidates": [
                {"candidate": "linear #2", "family": "linear", "estimator": "LogisticRegression",
                 "params": {"C": 0.1}, "cv_score": 0.993, "cv_std": 0.004, "fit_seconds": 0.021,
                 "rows": 455, "round": 2, "status": "chosen"},
                {"candidate": "random_forest #1", "family": "random_forest",
                 "estimator": "RandomForestClassifier", "params": {"min_samples_leaf": 1},
                 "cv_score": 0.951, "cv_std": 0.01, "fit_seconds": 0.3, "rows": 150, "round": 1,
                 "status": "eliminated in round 1"},
            ],
        },
        "paired_comparison": {
            "metric": "roc_auc", "method": "paired bootstrap", "confidence": 0.95,
            "tolerance": 0.01, "difference": 0.004, "ci_low": -0.002, "ci_high": 0.011,
            "n_rows": 114, "resamples": 1000, "seed": 42, "verdict": "not different",
            "summary": "The challenger is not different from the champion on 114 rows.",
        },
        "metric_intervals": {
            "roc_auc": {"value": 0.9967, "ci_low": 0.9891, "ci_high": 1.0, "confidence": 0.95},
            "accuracy": {"value": 0.9649, "ci_low": 0.9298, "ci_high": 0.9912, "confidence": 0.95},
        },
        "slices": {
            "metric": "roc_auc", "min_rows": 30, "max_drop": 0.05, "failures": [],
            "rows": [{"column": "mean radius", "slice": "[6.98, 12.3)", "rows": 38,
                      "challenger": 0.99, "champion": 0.98, "difference": 0.01, "decides": True}],
        },
        "feature_importance": [
            {"feature": "worst area", "importance": 0.0213, "std": 0.004},
            {"feature": "mean texture", "importance": 0.0051, "std": 0.002},
        ],
    }


def section(card: str, title: str) -> str:
    """The text of one `## title` section."""
    start = card.index(f"## {title}\n")
    end = card.find("\n## ", start + 1)
    return card[start:] if end == -1 else card[start:end]


SECTIONS = ["Data", "Model", "Held-out metrics", "Slices", "Top features", "Promotion decision"]


def test_a_full_report_fills_every_section():
    card = model_card(full_report(), pipeline_name="breast_cancer", model_version=2,
                      data_rows=569, data_columns=30)

    assert card.startswith("# Model card: breast_cancer version 2\n")
    assert [line[3:] for line in card.splitlines() if line.startswith("## ")] == SECTIONS
    assert NOT_RECORDED not in card

    data = section(card, "Data")
    assert "`bc-0123456789ab`" in data
    assert "rows: 569 (training 455, held out 114)" in data
    assert "feature columns: 30" in data

    model = section(card, "Model")
    assert "chosen: linear #2 (LogisticRegression)" in model
    assert "params: C=0.1" in model
    assert "best mean cross-validated roc_auc (0.993) of 2 candidates" in model
    assert "3-fold cross-validated roc_auc on 455 training rows" in model
    assert "| linear #2 | LogisticRegression | 0.993 | 0.021 | chosen |" in model
    assert ("| random_forest #1 | RandomForestClassifier | 0.951 | 0.3 | eliminated in round 1 |"
            in model)

    metrics = section(card, "Held-out metrics")
    assert "| roc_auc | 0.997 | [0.989, 1.000] |" in metrics
    assert "| accuracy | 0.965 | [0.930, 0.991] |" in metrics

    slices = section(card, "Slices")
    assert "| mean radius | [6.98, 12.3) | 38 | 0.990 | 0.980 | +0.010 | yes |" in slices

    features = section(card, "Top features")
    assert features.index("| worst area | 0.0213 | 0.004 |") < features.index(
        "| mean texture | 0.0051 | 0.002 |")

    decision = section(card, "Promotion decision")
    assert "decision: promoted to champion" in decision
    assert "95% interval [-0.002, 0.011] (paired bootstrap)" in decision
    assert ("paired comparison (paired bootstrap, roc_auc): difference challenger - champion "
            "+0.004, interval [-0.002, 0.011] at 95%, verdict not different") in decision
    assert "on 114 held-out rows neither model was trained on, 1000 resamples, seed 42" in decision


def test_a_report_of_earlier_code_says_what_was_not_recorded():
    report = {k: v for k, v in full_report().items()
              if k not in {"model_search", "paired_comparison", "metric_intervals", "slices",
                           "feature_importance"}}
    report["decision"] = {"promote": False, "reason": "roc_auc 0.990 is below the champion's 0.995"}

    card = model_card(report, pipeline_name="breast_cancer", model_version=3,
                      data_rows=None, data_columns=None)

    assert [line[3:] for line in card.splitlines() if line.startswith("## ")] == SECTIONS
    assert "feature columns: not recorded" in section(card, "Data")
    assert "Chosen estimator and search: not recorded." in section(card, "Model")
    # The plain values stand without intervals.
    assert "| roc_auc | 0.997 | not recorded |" in section(card, "Held-out metrics")
    assert "Slices: not recorded." in section(card, "Slices")
    assert "Permutation importance: not recorded." in section(card, "Top features")
    decision = section(card, "Promotion decision")
    assert "decision: not promoted" in decision
    assert "roc_auc 0.990 is below the champion's 0.995" in decision
    assert "paired comparison with the champion: not recorded" in decision


def test_a_first_version_has_no_comparison_and_a_fixed_model_no_search():
    report = full_report()
    report["champion"] = None
    report["paired_comparison"] = None
    report["slices"] = None
    report["feature_importance"] = []
    report["model_search"] = {
        "metric": "rmse", "scoring": "neg_root_mean_squared_error", "cv_folds": 3,
        "searched": False,
        "chosen": {"candidate": "linear #1", "estimator": "Ridge", "params": {},
                   "cv_score": None, "reason": "model.estimator fixes it"},
        "candidates": [{"candidate": "linear #1", "estimator": "Ridge", "params": {},
                        "cv_score": None, "fit_seconds": 0.01, "status": "chosen"}],
    }

    card = model_card(report, pipeline_name="visits", model_version=1, data_rows=442,
                      data_columns=10)

    model = section(card, "Model")
    assert "params: defaults" in model
    assert "search: none (the pipeline file fixes `model.estimator`)" in model
    assert "| linear #1 | Ridge | n/a | 0.01 | chosen |" in model
    assert "paired comparison with the champion: none (there was no champion)" in card
    assert "No slices: `slices.columns` names no column." in section(card, "Slices")
    assert "could not be computed" in section(card, "Top features")


def test_cross_validated_errors_show_in_their_own_sign():
    report = full_report()
    report["model_search"]["metric"] = "rmse"
    report["model_search"]["scoring"] = "neg_root_mean_squared_error"
    report["model_search"]["candidates"][0]["cv_score"] = -53.77

    card = model_card(report, pipeline_name="visits", model_version=1, data_rows=442,
                      data_columns=10)

    assert "| linear #2 | LogisticRegression | 53.770 |" in section(card, "Model")


def test_delong_draws_no_resamples():
    report = full_report()
    report["paired_comparison"].update(method="DeLong", resamples=None)

    card = model_card(report, pipeline_name="breast_cancer", model_version=2, data_rows=569,
                      data_columns=30)

    decision = section(card, "Promotion decision")
    assert "paired comparison (DeLong, roc_auc)" in decision
    assert "on 114 held-out rows neither model was trained on; tolerance 0.01" in decision
    assert "resamples" not in decision
