"""The TF-IDF + logistic regression baseline every RM table is compared with (one classifier per dimension).

Features: word 1-2-grams of the response and word unigrams of the end of the context (the last turns),
class-balanced logistic regression. Predicts the most probable level and the expected level as the score.
"""
from __future__ import annotations

import numpy as np

from core.rubric import Rubric
from core.schema import LabeledItem
from hpc_rm.data import MISSING, label_matrix

CONTEXT_TAIL_CHARS = 600


def _frame(items: list[LabeledItem]):
    import pandas as pd

    return pd.DataFrame({
        "response": [i.response for i in items],
        "context_tail": [i.context[-CONTEXT_TAIL_CHARS:] for i in items],
    })


def _pipeline(seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    features = ColumnTransformer([
        ("response", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), "response"),
        ("context", TfidfVectorizer(min_df=2, sublinear_tf=True), "context_tail"),
    ])
    return make_pipeline(features, LogisticRegression(C=2.0, class_weight="balanced", max_iter=2000,
                                                      random_state=seed))


class TfidfBaseline:
    def __init__(self, rubric: Rubric, seed: int = 0):
        self.rubric, self.seed = rubric, seed
        self.models: dict[str, object] = {}

    def fit(self, items: list[LabeledItem]) -> "TfidfBaseline":
        from sklearn.dummy import DummyClassifier

        labels = label_matrix(items, self.rubric)
        frame = _frame(items)
        for j, name in enumerate(self.rubric.names):
            mask = labels[:, j] != MISSING
            y = labels[mask, j]
            # With a single level in the training labels there is nothing to learn: predict it.
            model = _pipeline(self.seed) if np.unique(y).size > 1 else DummyClassifier(strategy="most_frequent")
            self.models[name] = model.fit(frame[mask], y) if mask.any() else None
        return self

    def predict_proba(self, items: list[LabeledItem]) -> dict[str, np.ndarray]:
        """Probability of each level 0..max_score per dimension, shape (len(items), max_score + 1)."""
        frame = _frame(items)
        probas = {}
        for d in self.rubric.dimensions:
            model = self.models.get(d.name)
            proba = np.zeros((len(items), d.max_score + 1))
            if model is None:
                proba[:, d.max_score // 2] = 1.0
            else:  # a level missing from the training labels keeps probability 0
                proba[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(frame)
            probas[d.name] = proba
        return probas

    def predict(self, items: list[LabeledItem]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(scores, levels) per dimension, like HPCRewardModel.predict: expected level and most probable level."""
        return scores_and_levels(self.predict_proba(items))


def scores_and_levels(probas: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(expected level, most probable level) per dimension from per-level probabilities."""
    scores = {name: p @ np.arange(p.shape[1], dtype=float) for name, p in probas.items()}
    levels = {name: p.argmax(1) for name, p in probas.items()}
    return scores, levels
