"""Experiments that train several policies and evaluate them side by side: the reward-weight sweep (`sweep`)."""
