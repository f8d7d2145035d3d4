"""Stage 2, the reward model: training (`train`), evaluation, scoring, cross-validation and the EduAlign consistency
experiment. It reads labels written by stage 1; the model's definition is `core.reward_model` (policy scores with it)."""
